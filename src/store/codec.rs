//! How every backend encodes times and ids: milliseconds since the epoch, ids as strings.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{StoreError, Timestamp};

pub(crate) fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<Timestamp, StoreError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::backend("decode", format!("timestamp out of range: {ms}")))
}

pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The time from `now_ms` until `until_ms`, zero if that has passed.
pub(crate) fn remaining(until_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(until_ms.saturating_sub(now_ms)).unwrap_or(0))
}

pub(crate) fn parse_id<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(raw).ok_or_else(|| StoreError::backend("decode", format!("malformed id: {raw}")))
}
