//! The lockout rule and what one attempt under it may do.

use std::time::Duration;

/// `threshold` failures within `window` lock for `duration`; `max_failures` failures without a
/// success, each within `memory` of the one before, lock until an unlock or a reset (NIST SP
/// 800-63B 5.2.2: no more than 100 consecutive failed attempts), however the locks in between
/// expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub duration: Duration,
    pub max_failures: u32,
    pub memory: Duration,
}

/// How long consecutive failures are remembered after the last one: without a failure for this
/// long, the count towards `max_failures` starts again.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30 * 86_400);

/// `locked_until` of a lock that only an unlock or a reset lifts, in milliseconds: the largest
/// integer a double holds exactly, so that SQL and the Redis scripts (Lua numbers) agree on it.
pub const PERMANENT_LOCK_MS: i64 = 9_007_199_254_740_991;

/// Whether a credential check may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptGate {
    /// Counted as a failure in advance; `locks` is set when this attempt reached the threshold
    /// and engaged the lock (a success clears it again).
    Proceed { locks: bool },
    /// Locked: refused without checking anything.
    Locked { retry_after: Duration },
}
