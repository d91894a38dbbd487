//! The in-process rate limiter: GCRA over a map of theoretical arrival times.
//!
//! It reads `tokio::time`, so tests can pause and advance time instead of sleeping. Budgets here
//! are per process: several instances need the Redis store to share them. The map is swept of
//! buckets that have refilled, so its size follows the clients of the last period, not all time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{RateDecision, RateLimitStore, StoreError};
use crate::domain::Rate;

/// Sweep the map every this many decisions.
const SWEEP_EVERY: u64 = 4096;

pub struct MemoryRateLimiter {
    origin: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Theoretical arrival time of each bucket, as time since `origin`.
    tats: HashMap<String, Duration>,
    decisions: u64,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self { origin: Instant::now(), state: Mutex::new(State::default()) }
    }
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
    async fn take(&self, key: &str, rate: Rate) -> Result<RateDecision, StoreError> {
        let now = Instant::now().duration_since(self.origin);
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

    const FIVE_PER_MINUTE: Rate = Rate { count: 5, period: Duration::from_secs(60) };

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_n_then_refused_until_one_interval_passes() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        for expected_remaining in (0..5).rev() {
            let decision = limiter.take("k", FIVE_PER_MINUTE).await?;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.take("k", FIVE_PER_MINUTE).await?;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(12));
        tokio::time::advance(Duration::from_secs(12)).await;
        assert!(limiter.take("k", FIVE_PER_MINUTE).await?.allowed);
        assert!(!limiter.take("k", FIVE_PER_MINUTE).await?.allowed);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_separate_budgets() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        for _ in 0..5 {
            limiter.take("a", FIVE_PER_MINUTE).await?;
        }
        assert!(!limiter.take("a", FIVE_PER_MINUTE).await?.allowed);
        assert!(limiter.take("b", FIVE_PER_MINUTE).await?.allowed);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn refused_requests_do_not_consume_the_budget() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        for _ in 0..50 {
            limiter.take("k", FIVE_PER_MINUTE).await?;
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..5 {
            assert!(limiter.take("k", FIVE_PER_MINUTE).await?.allowed);
        }
        Ok(())
    }
}
