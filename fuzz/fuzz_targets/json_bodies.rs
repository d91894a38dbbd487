//! Every JSON request body of `/v1/auth/*`, decoded exactly as a request's body is: no input
//! may panic, and an error never echoes the body (it may hold a password).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::http::{
    Credentials, LogoutRequest, NewAccount, PasswordChange, RefreshRequest, decode_json_object,
};

/// A secret-looking marker: if the body holds it, no error message may.
const MARKER: &str = "Zq7-secret-Zq7";

fn check<T: serde::de::DeserializeOwned>(body: &[u8]) {
    if let Err(error) = decode_json_object::<T>(body) {
        let text = format!("{error:?}");
        assert!(!text.contains(MARKER), "an error echoed the body: {text}");
    }
}

fuzz_target!(|body: &[u8]| {
    check::<NewAccount>(body);
    check::<Credentials>(body);
    check::<RefreshRequest>(body);
    check::<LogoutRequest>(body);
    check::<PasswordChange>(body);
});
