//! `LockoutStore` on Redis: the same rule as the SQL backends, as one script per attempt.
//!
//! A counter is `P lock:{group}` or `P lock:{group}:member`; the members of a group are listed
//! in `P lock-members:{group}` (by when each counter expires), under the same hash tag, so a
//! whole group is forgotten without scanning the keyspace.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, failed};
use crate::domain::PERMANENT_LOCK_MS;
use crate::store::codec::remaining;
use crate::store::{AttemptGate, LockKey, LockoutPolicy, LockoutStore, StoreError, Timestamp};

/// KEYS[1]: the counter, KEYS[2] (for a member of a group): the group's member list. ARGV: now,
/// window, threshold, duration, most consecutive failures, their memory, the permanent lock
/// (milliseconds), the member's name. A running lock answers {'locked', until}; a passed
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
local function listed(expires)
  if not KEYS[2] then return end
  redis.call('ZADD', KEYS[2], ms(expires), ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms(now))
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if tonumber(last[2]) >= permanent then
    redis.call('PERSIST', KEYS[2])
  else
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
end
if consecutive >= max then
  redis.call('HSET', KEYS[1], 'locked_until', ms(permanent))
  redis.call('PERSIST', KEYS[1])
  listed(permanent)
  return {'counted', ms(permanent)}
end
local expires = math.max(window_start + window, now + memory)
if failures >= threshold then
  redis.call('HSET', KEYS[1], 'locked_until', ms(now + duration))
  expires = math.max(expires, now + duration)
  redis.call('PEXPIREAT', KEYS[1], ms(expires))
  listed(expires)
  return {'counted', ms(now + duration)}
end
redis.call('HDEL', KEYS[1], 'locked_until')
redis.call('PEXPIREAT', KEYS[1], ms(expires))
listed(expires)
return {'counted', ''}
",
    )
});

/// KEYS[1]: the counter. ARGV: now, threshold, most consecutive failures, memory
/// (milliseconds). Takes one attempt back; the lock stays only if the counts without it still
/// reach the threshold or the most consecutive failures. A lock lifted here that was permanent
/// gets the expiry of an ordinary counter again.
static RELEASE_ATTEMPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local max, memory = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'failures', 'consecutive', 'locked_until')
local failures, consecutive = tonumber(h[1]), tonumber(h[2])
if not failures then return 0 end
failures = math.max(failures - 1, 0)
consecutive = math.max((consecutive or 1) - 1, 0)
redis.call('HSET', KEYS[1], 'failures', failures, 'consecutive', consecutive)
if h[3] and failures < threshold and consecutive < max then
  redis.call('HDEL', KEYS[1], 'locked_until')
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', now + memory))
  end
end
return 1
",
    )
});

impl RedisStore {
    fn lock_key(&self, key: &LockKey) -> String {
        match key.member_name() {
            Some(member) => format!("{}lock:{{{}}}:{member}", self.prefix, key.group()),
            None => format!("{}lock:{{{}}}", self.prefix, key.group()),
        }
    }

    fn members_key(&self, group: &str) -> String {
        format!("{}lock-members:{{{group}}}", self.prefix)
    }
}

#[async_trait]
impl LockoutStore for RedisStore {
    async fn begin_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut invocation = BEGIN_ATTEMPT.key(self.lock_key(key));
        if key.member_name().is_some() {
            invocation.key(self.members_key(key.group()));
        }
        let (gate, until): (String, String) = invocation
            .arg(now_ms)
            .arg(u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX))
            .arg(policy.threshold)
            .arg(u64::try_from(policy.duration.as_millis()).unwrap_or(u64::MAX))
            .arg(policy.max_failures)
            .arg(u64::try_from(policy.memory.as_millis()).unwrap_or(u64::MAX))
            .arg(PERMANENT_LOCK_MS)
            .arg(key.member_name().unwrap_or_default())
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

    async fn release_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        RELEASE_ATTEMPT
            .key(self.lock_key(key))
            .arg(now.timestamp_millis())
            .arg(policy.threshold)
            .arg(policy.max_failures)
            .arg(u64::try_from(policy.memory.as_millis()).unwrap_or(u64::MAX))
            .invoke_async::<i64>(&mut self.connection())
            .await
            .map_err(failed("release attempt"))?;
        Ok(())
    }

    async fn clear(&self, key: &LockKey) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.lock_key(key))
            .query_async::<i64>(&mut self.connection())
            .await
            .map_err(failed("clear lockout"))?;
        Ok(())
    }

    /// The group's counter, every member its list names, and the list: all under one hash tag,
    /// so one `DEL` removes them. A member counted between the read and the delete is a failure
    /// after the clearing, and stays.
    async fn clear_group(&self, group: &str) -> Result<u64, StoreError> {
        let mut connection = self.connection();
        let members_key = self.members_key(group);
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&members_key)
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await
            .map_err(failed("clear lockouts of a group"))?;
        let mut keys: Vec<String> = members
            .iter()
            .map(|member| self.lock_key(&LockKey::member(group, member.as_str())))
            .collect();
        keys.push(self.lock_key(&LockKey::subject(group)));
        let counters: u64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(failed("clear lockouts of a group"))?;
        redis::cmd("DEL")
            .arg(&members_key)
            .query_async::<u64>(&mut connection)
            .await
            .map_err(failed("clear lockouts of a group"))?;
        Ok(counters)
    }

    async fn locked_for(
        &self,
        key: &LockKey,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let until: Option<i64> = redis::cmd("HGET")
            .arg(self.lock_key(key))
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
