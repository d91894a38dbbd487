//! The in-process rate limiter: GCRA over a map of theoretical arrival times.
//!
//! Time is passed in, so tests move it instead of sleeping. Budgets here are per process: several
//! instances need the Redis store to share them. The map is swept of buckets that have refilled,
//! so its size follows the clients of the last period, not all time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{RateDecision, RateLimitStore, StoreError, Timestamp};
use crate::domain::Rate;

/// Sweep the map every this many decisions.
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
pub struct MemoryRateLimiter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Theoretical arrival time of each bucket, as time since the epoch.
    tats: HashMap<String, Duration>,
    decisions: u64,
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }
}

/// One GCRA decision at time `now` for a bucket whose theoretical arrival time is `tat`:
/// returns the decision and the new arrival time, if the request is allowed.
pub fn gcra(rate: Rate, tat: Option<Duration>, now: Duration) -> (RateDecision, Option<Duration>) {
    let interval = rate.emission_interval();
    let burst = interval * rate.count;
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    let allow_at = new_tat.saturating_sub(burst);
    if now < allow_at {
        let decision = RateDecision {
            allowed: false,
            limit: rate.count,
            remaining: 0,
            retry_after: allow_at - now,
        };
        return (decision, None);
    }
    let headroom = (now + burst).saturating_sub(new_tat);
    let remaining = (headroom.as_nanos() / interval.as_nanos().max(1)) as u32;
    let decision = RateDecision {
        allowed: true,
        limit: rate.count,
        remaining: remaining.min(rate.count),
        retry_after: Duration::ZERO,
    };
    (decision, Some(new_tat))
}

#[async_trait]
impl RateLimitStore for MemoryRateLimiter {
    async fn take(
        &self,
        key: &str,
        rate: Rate,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let now = Duration::from_millis(u64::try_from(now.timestamp_millis()).unwrap_or(0));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (decision, new_tat) = gcra(rate, state.tats.get(key).copied(), now);
        if let Some(tat) = new_tat {
            state.tats.insert(key.to_owned(), tat);
        }
        state.decisions += 1;
        if state.decisions.is_multiple_of(SWEEP_EVERY) {
            // A bucket whose arrival time has passed is full again: same as no entry.
            state.tats.retain(|_, tat| *tat > now);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Clock, ManualClock};

    const FIVE_PER_MINUTE: Rate = Rate { count: 5, period: Duration::from_secs(60) };

    #[tokio::test]
    async fn the_map_forgets_buckets_that_have_refilled() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        let clock = ManualClock::new();
        for i in 0..SWEEP_EVERY {
            limiter.take(&format!("k{i}"), FIVE_PER_MINUTE, clock.now()).await?;
        }
        clock.advance(Duration::from_secs(13));
        for _ in 0..SWEEP_EVERY {
            limiter.take("one", FIVE_PER_MINUTE, clock.now()).await?;
        }
        let state = limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(state.tats.len(), 1);
        Ok(())
    }
}
