//! `SessionStore` on Redis.
//!
//! A session is a hash (`s:<id>`), each refresh token a hash (`rt:<token hash>`) naming its
//! session, and each user a sorted set of session ids (`u:<user id>`) by creation time. Every key
//! expires with the session it belongs to. Rotation, revocation and revoke-all are scripts, so
//! of several concurrent rotations of one token exactly one finds it unrotated. The scripts
//! build keys from the prefix, so they need one Redis server (not a cluster).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;

use super::{RedisStore, failed};
use crate::domain::{SessionId, UserId};
use crate::store::codec::millis;
use crate::store::{
    NewSession, Rotation, SessionCursor, SessionRecord, SessionStore, StoreError, Timestamp,
    TokenHash,
};

/// ARGV: prefix, session id, user id, now, expires at, token hash, ip, user agent, cap, ends at,
/// device hash (or ''). Past the
/// cap the oldest members of the user's set leave it, and those still live end: only the excess
/// is visited, so the set, and every script that walks it, stays bounded by the cap. Returns how
/// many live sessions it ended.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, sid, user, now, exp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local s = p .. 's:' .. sid
redis.call('HSET', s, 'user', user, 'created_at', now, 'last_used_at', now, 'expires_at', exp,
  'ends_at', ARGV[10])
if ARGV[11] ~= '' then redis.call('HSET', s, 'device', ARGV[11]) end
if ARGV[7] ~= '' then redis.call('HSET', s, 'ip', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', s, 'user_agent', ARGV[8]) end
redis.call('PEXPIREAT', s, exp)
local t = p .. 'rt:' .. ARGV[6]
redis.call('HSET', t, 'session', sid, 'issued_at', now, 'expires_at', exp)
redis.call('PEXPIREAT', t, exp)
local u = p .. 'u:' .. user
redis.call('ZADD', u, now, sid)
if redis.call('PTTL', u) < tonumber(exp) - tonumber(now) then redis.call('PEXPIREAT', u, exp) end
local excess = redis.call('ZCARD', u) - tonumber(ARGV[9])
local ended = 0
if excess > 0 then
  for _, old in ipairs(redis.call('ZRANGE', u, 0, excess - 1)) do
    local o = p .. 's:' .. old
    local h = redis.call('HMGET', o, 'expires_at', 'revoked_at')
    if h[1] and (not h[2]) and tonumber(h[1]) > tonumber(now) then
      redis.call('HSET', o, 'revoked_at', now)
      ended = ended + 1
    end
    redis.call('ZREM', u, old)
  end
end
return ended
",
    )
});

/// ARGV: prefix, presented hash, successor hash, now, new expiry, grace (ms). The new expiry
/// never passes the session's absolute end.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, presented, successor = ARGV[1], ARGV[2], ARGV[3]
local now, exp, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tkey = p .. 'rt:' .. presented
local t = redis.call('HMGET', tkey, 'session', 'expires_at', 'rotated_at', 'successor')
if not t[1] then return {'invalid'} end
local sid = t[1]
local skey = p .. 's:' .. sid
local s = redis.call('HMGET', skey, 'user', 'expires_at', 'revoked_at', 'ends_at')
if (not s[1]) or s[3] or tonumber(s[2]) <= now then return {'invalid'} end
local user = s[1]
if not t[3] then
  if tonumber(t[2]) <= now then return {'invalid'} end
  if s[4] and tonumber(s[4]) < exp then exp = tonumber(s[4]) end
  local e = string.format('%.0f', exp)
  redis.call('HSET', tkey, 'rotated_at', ARGV[4], 'successor', successor)
  redis.call('PEXPIREAT', tkey, e)
  local nkey = p .. 'rt:' .. successor
  redis.call('HSET', nkey, 'session', sid, 'issued_at', ARGV[4], 'expires_at', e)
  redis.call('PEXPIREAT', nkey, e)
  redis.call('HSET', skey, 'last_used_at', ARGV[4], 'expires_at', e)
  redis.call('PEXPIREAT', skey, e)
  local u = p .. 'u:' .. user
  if redis.call('PTTL', u) < exp - now then redis.call('PEXPIREAT', u, e) end
  return {'rotated', sid, user}
end
if now - tonumber(t[3]) < grace and t[4] == successor then
  local n = redis.call('HMGET', p .. 'rt:' .. successor, 'session', 'rotated_at')
  if n[1] and not n[2] then return {'grace', sid, user} end
end
redis.call('HSET', skey, 'revoked_at', ARGV[4])
redis.call('ZREM', p .. 'u:' .. user, sid)
return {'reused', sid, user}
",
    )
});

/// ARGV: prefix, user id, session id, now. Returns 1 if it revoked a live session of the user.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, user, sid, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local s = p .. 's:' .. sid
local h = redis.call('HMGET', s, 'user', 'expires_at', 'revoked_at')
if h[1] ~= user or h[3] or tonumber(h[2]) <= now then return 0 end
redis.call('HSET', s, 'revoked_at', ARGV[4])
redis.call('ZREM', p .. 'u:' .. user, sid)
return 1
",
    )
});

/// ARGV: prefix, user id, session id to keep (or ''), now. Returns how many it revoked.
static REVOKE_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, user, keep, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local u = p .. 'u:' .. user
local revoked = 0
for _, sid in ipairs(redis.call('ZRANGE', u, 0, -1)) do
  if sid ~= keep then
    local s = p .. 's:' .. sid
    local h = redis.call('HMGET', s, 'expires_at', 'revoked_at')
    if h[1] and (not h[2]) and tonumber(h[1]) > now then
      redis.call('HSET', s, 'revoked_at', ARGV[4])
      revoked = revoked + 1
    end
    redis.call('ZREM', u, sid)
  end
end
return revoked
",
    )
});

fn token_key(hash: &TokenHash) -> String {
    URL_SAFE_NO_PAD.encode(hash.0)
}

fn token_from_key(key: &str) -> Result<TokenHash, StoreError> {
    let bytes = URL_SAFE_NO_PAD.decode(key).map_err(|_| corrupt("device"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map(TokenHash).map_err(|_| corrupt("device"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::backend("read session", format!("malformed session data in Redis: {what}"))
}

fn timestamp(raw: Option<&String>) -> Result<Timestamp, StoreError> {
    raw.and_then(|v| v.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or_else(|| corrupt("timestamp"))
}

impl RedisStore {
    async fn script(
        &self,
        operation: &'static str,
        script: &Script,
        args: &[String],
    ) -> Result<redis::Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for arg in args {
            invocation.arg(arg);
        }
        invocation.invoke_async(&mut self.connection()).await.map_err(failed(operation))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(
        &self,
        session: &NewSession,
        max_sessions: u32,
    ) -> Result<u64, StoreError> {
        let args = [
            self.prefix.clone(),
            session.id.to_string(),
            session.user_id.to_string(),
            millis(session.created_at).to_string(),
            millis(session.expires_at.min(session.ends_at)).to_string(),
            token_key(&session.refresh_token),
            session.ip.clone().unwrap_or_default(),
            session.user_agent.clone().unwrap_or_default(),
            max_sessions.max(1).to_string(),
            millis(session.ends_at).to_string(),
            session.device.as_ref().map(token_key).unwrap_or_default(),
        ];
        let ended: u64 =
            redis::from_redis_value(self.script("create session", &CREATE, &args).await?)
                .map_err(|e| StoreError::backend("create session", e))?;
        Ok(ended)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError> {
        let args = [
            self.prefix.clone(),
            token_key(presented),
            token_key(successor),
            millis(now).to_string(),
            millis(expires_at).to_string(),
            grace.as_millis().to_string(),
        ];
        let reply: Vec<String> =
            redis::from_redis_value(self.script("rotate refresh token", &ROTATE, &args).await?)
                .map_err(|e| StoreError::backend("rotate refresh token", e))?;
        let ids = || -> Result<(SessionId, UserId), StoreError> {
            let session =
                reply.get(1).and_then(|s| SessionId::parse(s)).ok_or_else(|| corrupt("id"))?;
            let user =
                reply.get(2).and_then(|u| UserId::parse(u)).ok_or_else(|| corrupt("user"))?;
            Ok((session, user))
        };
        Ok(match reply.first().map(String::as_str) {
            Some("rotated") => {
                let (session, user) = ids()?;
                Rotation::Rotated { session, user }
            }
            Some("grace") => {
                let (session, user) = ids()?;
                Rotation::Grace { session, user }
            }
            Some("reused") => {
                let (session, user) = ids()?;
                Rotation::Reused { session, user }
            }
            _ => Rotation::Invalid,
        })
    }

    async fn live_session(
        &self,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(&["s", &id.to_string()]))
            .arg(&[
                "user",
                "created_at",
                "last_used_at",
                "expires_at",
                "revoked_at",
                "ip",
                "user_agent",
                "device",
            ])
            .query_async(&mut self.connection())
            .await
            .map_err(failed("read session"))?;
        let [user, created_at, last_used_at, expires_at, revoked_at, ip, user_agent, device] =
            <[Option<String>; 8]>::try_from(fields).map_err(|_| corrupt("fields"))?;
        let Some(user) = user else { return Ok(None) };
        let expired = expires_at
            .as_ref()
            .and_then(|e| e.parse::<i64>().ok())
            .is_none_or(|e| e <= millis(now));
        if revoked_at.is_some() || expired {
            return Ok(None);
        }
        Ok(Some(SessionRecord {
            id,
            user_id: UserId::parse(&user).ok_or_else(|| corrupt("user"))?,
            created_at: timestamp(created_at.as_ref())?,
            last_used_at: timestamp(last_used_at.as_ref())?,
            ip,
            user_agent,
            device: device.map(|d| token_from_key(&d)).transpose()?,
        }))
    }

    async fn session_of_refresh_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(&["rt", &token_key(token)]))
            .arg(&["session", "expires_at", "rotated_at"])
            .query_async(&mut self.connection())
            .await
            .map_err(failed("read refresh token"))?;
        let (Some(Some(session)), Some(Some(expires_at)), Some(None)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Ok(None);
        };
        if expires_at.parse::<i64>().is_ok_and(|e| e <= millis(now)) {
            return Ok(None);
        }
        let Some(session) = SessionId::parse(session) else { return Err(corrupt("session id")) };
        self.live_session(session, now).await
    }

    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // The set holds at most the session cap, newest first (score, then id, descending, as
        // the SQL store orders them); a page starts after the cursor.
        let entries: Vec<(String, i64)> = redis::cmd("ZREVRANGE")
            .arg(self.key(&["u", &user.to_string()]))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.connection())
            .await
            .map_err(failed("list sessions"))?;
        let after = after.map(|c| (millis(c.created_at), c.id.to_string()));
        let mut sessions = Vec::new();
        for (id, created) in entries {
            if sessions.len() >= limit as usize {
                break;
            }
            if after.as_ref().is_some_and(|(at, last)| (created, &id) >= (*at, last)) {
                continue;
            }
            let Some(id) = SessionId::parse(&id) else { continue };
            if let Some(session) = self.live_session(id, now).await?
                && session.user_id == user
            {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let args = [self.prefix.clone(), user.to_string(), id.to_string(), millis(now).to_string()];
        let revoked: i64 =
            redis::from_redis_value(self.script("revoke session", &REVOKE, &args).await?)
                .map_err(|e| StoreError::backend("revoke session", e))?;
        Ok(revoked == 1)
    }

    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(|k| k.to_string()).unwrap_or_default();
        let args = [self.prefix.clone(), user.to_string(), keep, millis(now).to_string()];
        let revoked: u64 = redis::from_redis_value(
            self.script("revoke sessions of user", &REVOKE_ALL, &args).await?,
        )
        .map_err(|e| StoreError::backend("revoke sessions of user", e))?;
        Ok(revoked)
    }

    /// Sessions and their tokens expire by themselves.
    async fn purge_sessions(&self, _: Timestamp, _: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }
}
