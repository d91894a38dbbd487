//! The lockout rule and what one attempt under it may do.

use std::time::Duration;

/// `threshold` failures within `window` lock for `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub duration: Duration,
}

/// Whether a credential check may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptGate {
    /// Counted as a failure in advance; `locks` is set when this attempt reached the threshold
    /// and engaged the lock (a success clears it again).
    Proceed { locks: bool },
    /// Locked: refused without checking anything.
    Locked { retry_after: Duration },
}
