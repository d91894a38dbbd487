//! Email normalisation: no input panics, an accepted address is its own lookup key, and the
//! stored form parses back to itself (a user who types what is stored reaches the same account).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::domain::Email;

fuzz_target!(|raw: &str| {
    let key = Email::normalise_key(raw);
    if let Ok(email) = Email::parse(raw) {
        assert_eq!(email.as_str(), key, "the stored form and the lookup key differ");
        assert!(email.as_str().len() <= 254);
        assert!(email.local_part().len() < email.as_str().len());
    }
});
