//! Time, injected: every rule that depends on the time (expiry, grace, lockout, budgets) reads it
//! from a `Clock`, so that tests move time forward instead of sleeping.

use std::sync::Mutex;
use std::time::Duration;

/// A point in time, in UTC. Every backend stores it as milliseconds since the epoch.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    /// The current time at the precision every backend stores (milliseconds), so that a value
    /// returned right after a write equals the one read back later.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        to_millis(chrono::Utc::now())
    }
}

/// A clock that moves only when told to, for tests of expiry and refill.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock standing at the current system time.
    pub fn new() -> Self {
        Self(Mutex::new(SystemClock.now()))
    }

    /// A clock standing at `at`: in the past, for what a later reader (a command on the
    /// system's clock) sees of it.
    pub fn starting_at(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        to_millis(*self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn to_millis(at: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - start, chrono::Duration::seconds(90));
    }

    #[test]
    fn times_are_whole_milliseconds() {
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
