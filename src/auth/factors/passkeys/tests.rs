//! The passkey names and views.

use super::passkey_name;

#[test]
fn a_passkey_name_is_trimmed_bounded_and_defaulted() {
    assert_eq!(passkey_name(None).ok().as_deref(), Some("passkey"));
    assert_eq!(passkey_name(Some("  ")).ok().as_deref(), Some("passkey"));
    assert_eq!(passkey_name(Some(" laptop ")).ok().as_deref(), Some("laptop"));
    assert!(passkey_name(Some(&"x".repeat(65))).is_err());
    assert!(passkey_name(Some("a\u{7}b")).is_err());
    for sneaky in ["a\u{202E}b", "a\u{200B}b", "a\u{2066}b", "a\u{FEFF}b", "a\u{AD}b"] {
        assert!(passkey_name(Some(sneaky)).is_err(), "{sneaky:?}");
    }
}
