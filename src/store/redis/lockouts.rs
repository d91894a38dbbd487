//! `LockoutStore` on Redis: the same rule as the SQL backends, as one script per attempt.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, failed, glob_escape};
use crate::domain::PERMANENT_LOCK_MS;
use crate::store::codec::remaining;
use crate::store::{AttemptGate, LockoutPolicy, LockoutStore, StoreError, Timestamp};

/// KEYS[1]: the counter. ARGV: now, window, threshold, duration, most consecutive failures, their
/// memory, the permanent lock (milliseconds). A running lock answers {'locked', until}; a passed
/// lock or window starts a fresh count, not a fresh count of consecutive failures. The key
/// expires when its window, its lock and the memory of its last failure have all passed; a
/// permanent lock never expires.
static BEGIN_ATTEMPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local threshold, duration = tonumber(ARGV[3]), tonumber(ARGV[4])
local max, memory, permanent = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local h = redis.call('HMGET', KEYS[1], 'failures', 'window_start', 'locked_until', 'consecutive',
  'last_failure_at')
local failures, window_start, locked_until = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
local consecutive, last_failure = tonumber(h[4]), tonumber(h[5])
local function ms(x) return string.format('%.0f', x) end
if locked_until and locked_until > now then
  return {'locked', ms(locked_until)}
end
if (not failures) or locked_until or window_start <= now - window then
  failures, window_start = 0, now
end
if (not consecutive) or (not last_failure) or last_failure <= now - memory then
  consecutive = 0
end
failures, consecutive = failures + 1, consecutive + 1
redis.call('HSET', KEYS[1], 'failures', failures, 'window_start', ms(window_start),
  'consecutive', consecutive, 'last_failure_at', ms(now))
if consecutive >= max then
  redis.call('HSET', KEYS[1], 'locked_until', ms(permanent))
  redis.call('PERSIST', KEYS[1])
  return {'counted', ms(permanent)}
end
local expires = math.max(window_start + window, now + memory)
if failures >= threshold then
  redis.call('HSET', KEYS[1], 'locked_until', ms(now + duration))
  expires = math.max(expires, now + duration)
  redis.call('PEXPIREAT', KEYS[1], ms(expires))
  return {'counted', ms(now + duration)}
end
redis.call('HDEL', KEYS[1], 'locked_until')
redis.call('PEXPIREAT', KEYS[1], ms(expires))
return {'counted', ''}
",
    )
});

#[async_trait]
impl LockoutStore for RedisStore {
    async fn begin_attempt(
        &self,
        key: &str,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError> {
        let now_ms = now.timestamp_millis();
        let (gate, until): (String, String) = BEGIN_ATTEMPT
            .key(self.key(&["lock", key]))
            .arg(now_ms)
            .arg(u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX))
            .arg(policy.threshold)
            .arg(u64::try_from(policy.duration.as_millis()).unwrap_or(u64::MAX))
            .arg(policy.max_failures)
            .arg(u64::try_from(policy.memory.as_millis()).unwrap_or(u64::MAX))
            .arg(PERMANENT_LOCK_MS)
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("count attempt"))?;
        let until: Option<i64> = until.parse().ok();
        Ok(match (gate.as_str(), until) {
            ("locked", Some(until)) => {
                AttemptGate::Locked { retry_after: remaining(until, now_ms) }
            }
            (_, until) => AttemptGate::Proceed { locks: until.is_some() },
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.key(&["lock", key]))
            .query_async::<i64>(&mut self.connection())
            .await
            .map_err(failed("clear lockout"))?;
        Ok(())
    }

    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.key(&["lock", prefix])));
        let mut connection = self.connection();
        let mut cursor: u64 = 0;
        let mut cleared = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(failed("clear lockouts by prefix"))?;
            if !keys.is_empty() {
                let deleted: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed("clear lockouts by prefix"))?;
                cleared += deleted;
            }
            if next == 0 {
                return Ok(cleared);
            }
            cursor = next;
        }
    }

    async fn locked_for(&self, key: &str, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let until: Option<i64> = redis::cmd("HGET")
            .arg(self.key(&["lock", key]))
            .arg("locked_until")
            .query_async(&mut self.connection())
            .await
            .map_err(failed("read lockout"))?;
        let now_ms = now.timestamp_millis();
        Ok(until.filter(|until| *until > now_ms).map(|until| remaining(until, now_ms)))
    }

    /// Counters expire by themselves.
    async fn purge_lockouts(&self, _: Timestamp, _: LockoutPolicy) -> Result<u64, StoreError> {
        Ok(0)
    }
}
