//! The in-process rate limiter: GCRA over sharded, bounded maps of theoretical arrival times.
//!
//! Time is passed in, so tests move it instead of sleeping. Budgets here are per process: several
//! instances need the Redis store to share them.
//!
//! Keys are chosen by clients (an IP, an attempted email), so the limiter must hold up against
//! someone who sends a new one with every request:
//!
//! - It is split into `SHARDS` maps, each behind its own mutex, and a key's shard is picked by a
//!   hash keyed with a secret drawn at start (std's SipHash `RandomState`), so requests on
//!   different keys rarely wait on one lock and nobody can aim keys at one shard.
//! - It holds at most `MAX_BUCKETS` buckets. A bucket whose arrival time has passed is full again,
//!   the same as no entry, so it can be forgotten: each shard is swept of those every
//!   `SWEEP_EVERY` of its decisions, so its size follows the clients of the last interval, and
//!   again when it is full.
//! - A shard still full after that sweep holds only budgets that are in use. It then refuses
//!   new keys, with the ordinary refusal (429 and `Retry-After` until its first bucket refills),
//!   and keeps enforcing the keys it holds. It never evicts a bucket in use: that would hand a
//!   spent budget back, and the cheapest way to reset someone's login budget would be to send
//!   requests under fresh keys. Failing closed costs a flood of fresh keys the denial of new
//!   clients, which is the lesser harm, and one that honest load never meets (see `MAX_BUCKETS`).
//!
//! Not `governor`'s keyed limiter: its quota is fixed per limiter, while `RateLimitStore` takes
//! the rate with every call (each budget and the audit sampling have their own); its clock is
//! its own, while ours is passed in; and its map has no bound, only a sweep.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{RateDecision, RateLimitStore, StoreError, Timestamp};
use crate::domain::Rate;

/// How many maps the buckets are spread over: enough that two cores rarely contend.
const SHARDS: usize = 64;

/// The most buckets held at once. A bucket lives from a request until its budget has refilled:
/// one emission interval per request taken (2 s for the default 30/min per IP). Honest load
/// holds the clients of the last few intervals, orders of magnitude fewer. A key is at most a
/// few hundred bytes (junk emails are hashed), so this bounds the limiter to a few tens of MB.
pub const MAX_BUCKETS: usize = 100_000;

/// The most buckets one shard holds.
const SHARD_CAPACITY: usize = MAX_BUCKETS / SHARDS;

/// Sweep a shard every this many of its decisions.
const SWEEP_EVERY: u64 = 256;

pub struct MemoryRateLimiter {
    /// Picks a key's shard; keyed with a secret of this process.
    picker: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    /// Theoretical arrival time of each bucket, as time since the epoch.
    tats: HashMap<String, Duration>,
    decisions: u64,
    /// Set when a sweep left the shard full: the first time a bucket refills. No sweep frees a
    /// place before then, so until then a new key is refused without one.
    full_until: Option<Duration>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::default()).collect();
        Self { picker: RandomState::new(), shards }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = self.picker.hash_one(key) as usize % SHARDS;
        // A panic cannot leave a map of plain values half-changed: the state is still usable.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shard {
    /// Forgets the buckets that have refilled by `now`.
    fn sweep(&mut self, now: Duration) {
        self.tats.retain(|_, tat| *tat > now);
        self.full_until = None;
    }

    /// Whether a new bucket fits, sweeping first if the shard is full. When it does not, the
    /// time until one refills.
    fn room(&mut self, now: Duration) -> Result<(), Duration> {
        if self.tats.len() < SHARD_CAPACITY {
            return Ok(());
        }
        if let Some(until) = self.full_until.filter(|until| *until > now) {
            return Err(until - now);
        }
        self.sweep(now);
        if self.tats.len() < SHARD_CAPACITY {
            return Ok(());
        }
        // Every bucket left is in use: its arrival time is later than `now`.
        let first = self.tats.values().min().copied().unwrap_or(now);
        self.full_until = Some(first);
        Err(first.saturating_sub(now))
    }

    fn take(&mut self, key: &str, rate: Rate, now: Duration) -> RateDecision {
        self.decisions += 1;
        if self.decisions.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
        let tat = self.tats.get(key).copied();
        let (decision, new_tat) = gcra(rate, tat, now);
        let Some(new_tat) = new_tat else { return decision };
        if tat.is_none()
            && let Err(retry_after) = self.room(now)
        {
            return RateDecision { allowed: false, limit: rate.count, remaining: 0, retry_after };
        }
        self.tats.insert(key.to_owned(), new_tat);
        decision
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
        Ok(self.shard(key).take(key, rate, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Clock, ManualClock};

    const FIVE_PER_MINUTE: Rate = Rate { count: 5, period: Duration::from_secs(60) };

    impl MemoryRateLimiter {
        fn buckets(&self) -> usize {
            self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).tats.len()).sum()
        }
    }

    #[tokio::test]
    async fn a_shard_forgets_buckets_that_have_refilled() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        let clock = ManualClock::new();
        for i in 0..1000 {
            limiter.take(&format!("k{i}"), FIVE_PER_MINUTE, clock.now()).await?;
        }
        clock.advance(Duration::from_secs(13));
        for _ in 0..SWEEP_EVERY {
            limiter.take("one", FIVE_PER_MINUTE, clock.now()).await?;
        }
        assert_eq!(limiter.shard("one").tats.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_flood_of_new_keys_stays_bounded_and_resets_no_budget() -> Result<(), StoreError> {
        let limiter = MemoryRateLimiter::new();
        let clock = ManualClock::new();
        for _ in 0..5 {
            assert!(limiter.take("victim", FIVE_PER_MINUTE, clock.now()).await?.allowed);
        }
        let mut refused = 0;
        for i in 0..MAX_BUCKETS * 2 {
            let decision = limiter.take(&format!("flood{i}"), FIVE_PER_MINUTE, clock.now()).await?;
            if !decision.allowed {
                assert!(decision.retry_after > Duration::ZERO);
                refused += 1;
            }
        }
        assert!(limiter.buckets() <= MAX_BUCKETS, "{} buckets", limiter.buckets());
        assert!(refused >= MAX_BUCKETS, "past the cap, new keys are refused: {refused}");
        let victim = limiter.take("victim", FIVE_PER_MINUTE, clock.now()).await?;
        assert!(!victim.allowed, "the flood did not hand the spent budget back");

        // Once the flood's buckets have refilled, they make room again.
        clock.advance(Duration::from_secs(13));
        assert!(limiter.take("newcomer", FIVE_PER_MINUTE, clock.now()).await?.allowed);
        Ok(())
    }
}
