//! The refresh-token parser: no input panics, and a token that names an owner is exactly the
//! canonical form of that owner and 43 characters of random bits, so that no two spellings of
//! one token route to different keys.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use portcullis::crypto::tokens::{TOKEN_LEN, is_well_formed, refresh_token_owner};

fuzz_target!(|value: &str| {
    match refresh_token_owner(value) {
        Some(Some(owner)) => {
            let (_, random) = value.split_once('.').unwrap_or_default();
            assert!(is_well_formed(random));
            let canonical = URL_SAFE_NO_PAD.encode(owner.as_uuid().as_bytes());
            assert_eq!(format!("{canonical}.{random}"), value);
        }
        Some(None) => assert!(value.len() == TOKEN_LEN && is_well_formed(value)),
        None => {}
    }
});
