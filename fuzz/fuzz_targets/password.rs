//! Password normalisation and both policies: no input panics, and the length rules agree with
//! the length cap that refuses oversized input before any hashing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::domain::{Email, Password, PasswordPolicy, PolicyViolation};

fuzz_target!(|input: (&str, &str)| {
    let (raw, email) = input;
    let password = Password::new(raw);
    let email = Email::parse(email).ok();
    for policy in [PasswordPolicy::Composition, PasswordPolicy::Nist] {
        let found = policy.violations(&password, email.as_ref());
        assert_eq!(found.contains(&PolicyViolation::TooLong), password.is_over_length_cap());
        assert_eq!(
            found.contains(&PolicyViolation::TooShort),
            password.char_count() < policy.min_chars()
        );
    }
});
