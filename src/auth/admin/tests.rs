//! Cursors and roles as admins send them.

use super::*;

#[test]
fn user_cursors_round_trip_and_junk_is_refused() {
    let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
    let id = UserId::new();
    let cursor = decode_cursor(&encode_cursor(now, id), UserId::parse).ok();
    assert_eq!(cursor, Some((now, id)));
    let bad_id =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "12:not-a-uuid");
    for junk in ["", "junk", &bad_id] {
        assert!(decode_cursor(junk, UserId::parse).is_err(), "{junk}");
    }
}

#[test]
fn roles_always_keep_user_and_refuse_unknown_names() {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(parse_roles(&[]).ok(), Some(vec![Role::User]));
    let admin = parse_roles(&names(&["admin", "admin"])).ok();
    assert_eq!(admin, Some(vec![Role::User, Role::Admin]));
    assert!(parse_roles(&names(&["root"])).is_err());
}
