//! The `Authorization` header parser: no input panics, and a token is only ever found after a
//! `Bearer` scheme, trimmed, inside the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::http::bearer_token;

fuzz_target!(|value: &str| {
    if let Some(token) = bearer_token(value) {
        assert!(value.len() <= 4096);
        assert!(value.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer")));
        assert_eq!(token, token.trim());
        assert!(value.ends_with(token) || value.trim_end().ends_with(token));
    }
});
