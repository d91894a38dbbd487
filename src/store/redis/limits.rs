//! `RateLimitStore` on Redis: GCRA in one script, on the server's clock, so every instance takes
//! from the same budget with one atomic decision.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, failed};
use crate::domain::Rate;
use crate::store::{RateDecision, RateLimitStore, StoreError, Timestamp};

/// KEYS[1]: the bucket. ARGV[1]: emission interval, ARGV[2]: burst size (count), ARGV[3]: now.
/// Times in microseconds. Returns {allowed, remaining, retry_after}. The time is the caller's,
/// like every other time the stores see, so a budget behaves the same on every backend.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[3])
local interval = tonumber(ARGV[1])
local burst = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst
if now < allow_at then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now + burst - new_tat) / interval), 0}
",
    )
});

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn take(
        &self,
        key: &str,
        rate: Rate,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let interval = u64::try_from(rate.emission_interval().as_micros()).unwrap_or(u64::MAX);
        let (allowed, remaining, retry_us): (i64, i64, i64) = TAKE
            .key(self.key(&["rl", key]))
            .arg(interval.max(1))
            .arg(rate.count)
            .arg(now.timestamp_millis().saturating_mul(1000))
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("take from budget"))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit: rate.count,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(0).min(rate.count),
            retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
        })
    }
}
