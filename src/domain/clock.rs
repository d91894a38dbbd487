//! Time, injected: every rule that depends on the time (expiry, grace, lockout, budgets) reads it
//! from a `Clock`, so that tests move time forward instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// A point in time, in UTC. Every backend stores it as milliseconds since the epoch.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    /// The current time at the precision every backend stores (milliseconds), so that a value
    /// returned right after a write equals the one read back later.
    fn now(&self) -> Timestamp;

    /// Waits until this clock reads `at` or later: the work that runs on a schedule (key reloads
    /// and rotations) waits on the clock the rules read, so a test moves it instead of sleeping.
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What a task waiting for `at` sleeps on the system's clock: the time left, read again after
/// each wake (the wall clock may have been set back meanwhile).
async fn system_sleep_until(clock: &dyn Clock, at: Timestamp) {
    while let Ok(left) = (at - clock.now()).to_std() {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left).await;
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        to_millis(chrono::Utc::now())
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(system_sleep_until(self, at))
    }
}

/// A clock that moves only when told to, for tests of expiry and refill. Tasks waiting on it
/// (`sleep_until`) wake when it is advanced past their time.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    advanced: Notify,
}

impl ManualClock {
    /// A clock standing at the current system time.
    pub fn new() -> Self {
        Self::starting_at(SystemClock.now())
    }

    /// A clock standing at `at`: in the past, for what a later reader (a command on the
    /// system's clock) sees of it.
    pub fn starting_at(at: Timestamp) -> Self {
        Self { now: Mutex::new(at), advanced: Notify::new() }
    }

    pub fn advance(&self, by: Duration) {
        {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        }
        self.advanced.notify_waiters();
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        to_millis(*self.now.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let advanced = self.advanced.notified();
                tokio::pin!(advanced);
                // Registered before the time is read, so an advance in between is not missed.
                advanced.as_mut().enable();
                if self.now() >= at {
                    return;
                }
                advanced.await;
            }
        })
    }
}

/// A configured duration as a chrono one; durations too long for chrono mean "forever".
pub fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
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

    #[tokio::test]
    async fn a_task_waiting_on_a_manual_clock_wakes_when_it_is_advanced_past_its_time() {
        let clock = std::sync::Arc::new(ManualClock::new());
        let at = clock.now() + chrono::Duration::seconds(5);
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(at).await }
        });
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "woke before its time");
        clock.advance(Duration::from_secs(1));
        let woke = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(woke.is_ok_and(|joined| joined.is_ok()), "did not wake once its time came");
    }

    #[test]
    fn times_are_whole_milliseconds() {
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
