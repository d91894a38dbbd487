//! The cursor of the pages that run newest first by creation time, then id (sessions, accounts):
//! the last row's time in milliseconds and its id, base64url, opaque to the client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AuthError;
use crate::domain::Timestamp;

/// The cursor after the row created at `created_at` with `id`.
pub(super) fn encode_cursor(created_at: Timestamp, id: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", created_at.timestamp_millis()))
}

/// The time and id a cursor of `encode_cursor` holds; anything else is a query error.
pub(super) fn decode_cursor<T>(
    raw: &str,
    parse_id: impl Fn(&str) -> Option<T>,
) -> Result<(Timestamp, T), AuthError> {
    let invalid = || AuthError::InvalidQuery("cursor is not one this server gave".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let (millis, id) = text.split_once(':').ok_or_else(invalid)?;
    let created_at = millis
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or_else(invalid)?;
    Ok((created_at, parse_id(id).ok_or_else(invalid)?))
}
