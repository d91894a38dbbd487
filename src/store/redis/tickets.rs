//! `TicketStore` on Redis: a ticket is the hash `P ticket:kind:key` holding its value, the time
//! it is kept until and its count of takes; a take is one script, so exactly one of concurrent
//! takes is the first. The key expires when it is no longer kept, so nothing needs purging.

use std::sync::LazyLock;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;

use super::{RedisStore, failed};
use crate::store::{StoreError, Taken, TicketKind, TicketStore, Timestamp, TokenHash};

/// KEYS[1]: the ticket. ARGV: the value, the time it is kept until, now (milliseconds). 0 when
/// the key is kept at `now`.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local kept = tonumber(redis.call('HGET', KEYS[1], 'keep_until'))
if kept and kept > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'keep_until', ARGV[2], 'takes', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
",
    )
});

/// KEYS[1]: the ticket. ARGV: now (milliseconds). `false` when it is missing or no longer
/// kept, else {value, takes} after counting this take.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'value', 'keep_until')
if (not h[1]) or tonumber(h[2]) <= tonumber(ARGV[1]) then return false end
return {h[1], redis.call('HINCRBY', KEYS[1], 'takes', 1)}
",
    )
});

/// KEYS[1]: the ticket. ARGV: now (milliseconds). Its value while it is kept and never taken.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'value', 'keep_until', 'takes')
if (not h[1]) or tonumber(h[2]) <= tonumber(ARGV[1]) or tonumber(h[3]) ~= 0 then return false end
return h[1]
",
    )
});

impl RedisStore {
    fn ticket_key(&self, kind: TicketKind, key: &TokenHash) -> String {
        self.key(&["ticket", kind.as_str(), &URL_SAFE_NO_PAD.encode(key.0)])
    }
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn put_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        value: &[u8],
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let stored: i64 = PUT
            .key(self.ticket_key(kind, key))
            .arg(value)
            .arg(keep_until.timestamp_millis())
            .arg(now.timestamp_millis())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("store ticket"))?;
        if stored == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Taken, StoreError> {
        let taken: Option<(Vec<u8>, i64)> = TAKE
            .key(self.ticket_key(kind, key))
            .arg(now.timestamp_millis())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("take ticket"))?;
        Ok(match taken {
            None => Taken::Missing,
            Some((value, 1)) => Taken::First(value),
            Some((value, _)) => Taken::Again(value),
        })
    }

    async fn read_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        READ.key(self.ticket_key(kind, key))
            .arg(now.timestamp_millis())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("read ticket"))
    }

    async fn purge_tickets(&self, _now: Timestamp) -> Result<u64, StoreError> {
        Ok(0)
    }
}
