//! `SessionStore` on Redis.
//!
//! Everything of one user lives under the user's hash tag, so that every script touches keys of
//! one slot and a Redis Cluster spreads users over its masters (`docs/REDIS.md`):
//!
//! - `P{user}:sessions`, a hash from session id to the session as JSON. It holds the user's live
//!   sessions, at most the session cap once a login has pruned it; a revoked session leaves it.
//! - `P{user}:rt:<token hash>`, one hash per refresh token, naming its session; it expires with
//!   the session it belongs to, and a rotated one stays as long, for reuse detection.
//!
//! Rotation, revocation and revoke-all are scripts (`scripts`) given every key they touch in
//! `KEYS[]`, so of several concurrent rotations of one token exactly one finds it unrotated, on
//! one server as on a cluster.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;
use serde::{Deserialize, Serialize};

use self::scripts::{COUNT, CREATE, REVOKE, REVOKE_ALL, ROTATE};
use super::{RedisStore, failed};
use crate::domain::{Amr, SessionId, UserId};
use crate::store::codec::{from_millis, millis};
use crate::store::{
    KindColumns, NewSession, Rotation, SessionCursor, SessionKind, SessionRecord, SessionStore,
    StoreError, Timestamp, TokenHash,
};

mod scripts;

/// A session as the user's hash holds it (times in milliseconds).
#[derive(Serialize, Deserialize)]
struct StoredSession {
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    ends_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// What the login proved, in its stored form; absent in sessions from before it was kept.
    #[serde(default)]
    amr: String,
    /// The kind, and a grant's client, scope and parent; absent in sessions of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<KindColumns<String>>,
}

impl StoredSession {
    fn decode(raw: &str) -> Result<Self, StoreError> {
        serde_json::from_str(raw).map_err(|_| corrupt("session"))
    }

    fn live(&self, now: Timestamp) -> bool {
        self.expires_at > millis(now)
    }

    fn record(self, id: SessionId, user: UserId) -> Result<SessionRecord, StoreError> {
        Ok(SessionRecord {
            id,
            user_id: user,
            created_at: from_millis(self.created_at)?,
            last_used_at: from_millis(self.last_used_at)?,
            ip: self.ip,
            user_agent: self.user_agent,
            amr: Amr::from_column(&self.amr),
            device: self.device.map(|d| token_from_key(&d)).transpose()?,
            kind: self.kind.map(SessionKind::from_columns).unwrap_or_default(),
        })
    }
}

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

impl RedisStore {
    fn sessions_key(&self, user: UserId) -> String {
        self.user_key(user, "sessions")
    }

    fn refresh_key(&self, user: UserId, token: &TokenHash) -> String {
        self.user_key(user, &format!("rt:{}", token_key(token)))
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
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
        let expires_at = millis(session.expires_at.min(session.ends_at));
        let stored = StoredSession {
            created_at: millis(session.created_at),
            last_used_at: millis(session.created_at),
            expires_at,
            ends_at: millis(session.ends_at),
            device: session.device.as_ref().map(token_key),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            amr: session.amr.to_column(),
            kind: (session.kind != SessionKind::Api).then(|| {
                let columns = session.kind.columns();
                KindColumns {
                    kind: columns.kind.to_owned(),
                    client_id: columns.client_id,
                    scope: columns.scope,
                    parent_id: columns.parent_id,
                    auth_time: columns.auth_time,
                }
            }),
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| StoreError::backend("create session", e))?;
        let keys = [
            self.sessions_key(session.user_id),
            self.refresh_key(session.user_id, &session.refresh_token),
        ];
        let args = [
            session.id.to_string(),
            json,
            stored.created_at.to_string(),
            expires_at.to_string(),
            max_sessions.max(1).to_string(),
        ];
        self.script("create session", &CREATE, &keys, &args).await
    }

    async fn rotate_refresh_token(
        &self,
        user: Option<UserId>,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError> {
        // A token that does not name its owner cannot be routed to its keys.
        let Some(user) = user else { return Ok(Rotation::Invalid) };
        let keys = [
            self.refresh_key(user, presented),
            self.refresh_key(user, successor),
            self.sessions_key(user),
        ];
        let args = [
            millis(now).to_string(),
            millis(expires_at).to_string(),
            grace.as_millis().to_string(),
            token_key(successor),
        ];
        let reply: Vec<String> = self.script("rotate refresh token", &ROTATE, &keys, &args).await?;
        let session =
            || reply.get(1).and_then(|s| SessionId::parse(s)).ok_or_else(|| corrupt("id"));
        let amr = Amr::from_column(reply.get(2).map_or("", String::as_str));
        let login_at = || {
            let millis = reply.get(3).and_then(|m| m.parse::<i64>().ok());
            millis.ok_or_else(|| corrupt("session")).and_then(from_millis)
        };
        Ok(match reply.first().map(String::as_str) {
            Some("rotated") => {
                Rotation::Rotated { session: session()?, user, amr, login_at: login_at()? }
            }
            Some("grace") => {
                Rotation::Grace { session: session()?, user, amr, login_at: login_at()? }
            }
            Some("reused") => Rotation::Reused { session: session()?, user },
            _ => Rotation::Invalid,
        })
    }

    async fn live_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.sessions_key(user))
            .arg(id.to_string())
            .query_async(&mut self.connection())
            .await
            .map_err(failed("read session"))?;
        let Some(raw) = raw else { return Ok(None) };
        let stored = StoredSession::decode(&raw)?;
        if !stored.live(now) {
            return Ok(None);
        }
        stored.record(id, user).map(Some)
    }

    async fn session_of_refresh_token(
        &self,
        user: Option<UserId>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(user) = user else { return Ok(None) };
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.refresh_key(user, token))
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
        self.live_session(user, session, now).await
    }

    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // The hash holds at most the session cap (plus what expired since the last login).
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.sessions_key(user))
            .query_async(&mut self.connection())
            .await
            .map_err(failed("list sessions"))?;
        let mut live = Vec::with_capacity(all.len());
        for (id, raw) in all {
            let stored = StoredSession::decode(&raw)?;
            let Some(id) = SessionId::parse(&id) else { return Err(corrupt("session id")) };
            if stored.live(now) {
                live.push((stored.created_at, id.to_string(), id, stored));
            }
        }
        // Newest first by creation time, then id, as the SQL store orders them.
        live.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let after = after.map(|c| (millis(c.created_at), c.id.to_string()));
        live.into_iter()
            .filter(|(created, id, _, _)| {
                after.as_ref().is_none_or(|(at, last)| (*created, id) < (*at, last))
            })
            .take(limit as usize)
            .map(|(_, _, id, stored)| stored.record(id, user))
            .collect()
    }

    /// Counted on the server: the hash also holds sessions that expired since the last login,
    /// which `HLEN` would count, and the sessions need not cross the network to be counted.
    async fn count_sessions(&self, user: UserId, now: Timestamp) -> Result<u64, StoreError> {
        let keys = [self.sessions_key(user)];
        self.script("count sessions", &COUNT, &keys, &[millis(now).to_string()]).await
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let keys = [self.sessions_key(user)];
        let args = [id.to_string(), millis(now).to_string()];
        let revoked: i64 = self.script("revoke session", &REVOKE, &keys, &args).await?;
        Ok(revoked == 1)
    }

    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let keys = [self.sessions_key(user)];
        let args = [keep.map(|k| k.to_string()).unwrap_or_default(), millis(now).to_string()];
        self.script("revoke sessions of user", &REVOKE_ALL, &keys, &args).await
    }

    /// Sessions and their tokens expire by themselves.
    async fn purge_sessions(&self, _: Timestamp, _: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }
}
