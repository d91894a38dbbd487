//! The session trait: sessions, their refresh tokens and the rotation that spends them.

use std::time::Duration;

use async_trait::async_trait;

use super::{NewSession, Rotation, SessionCursor, SessionRecord, StoreError, Timestamp, TokenHash};
use crate::domain::{SessionId, UserId};

/// Sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session with its first refresh token, then ends the user's oldest live sessions
    /// beyond the newest `max_sessions` (the new one included); returns how many it ended.
    async fn create_session(
        &self,
        session: &NewSession,
        max_sessions: u32,
    ) -> Result<u64, StoreError>;

    /// Atomically exchanges `presented` for `successor`.
    ///
    /// Exactly one of any number of concurrent calls with the same token sees `Rotated`. A token
    /// that was already rotated sees `Grace` if it was rotated at most `grace` ago and its
    /// successor is still current, and otherwise `Reused`, and its whole session is revoked.
    ///
    /// `user` is the owner the presented token names (it routes the lookup on a Redis Cluster);
    /// a token of another user is `Invalid`. `None` is a token from before tokens named their
    /// owner: the SQL store finds it by its hash, Redis cannot and answers `Invalid`.
    async fn rotate_refresh_token(
        &self,
        user: Option<UserId>,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError>;

    /// The user's session, if it exists, is not revoked and has not expired.
    async fn live_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// The live session a current (not rotated, not expired) refresh token belongs to; `user`
    /// as for `rotate_refresh_token`.
    async fn session_of_refresh_token(
        &self,
        user: Option<UserId>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Up to `limit` of the user's live sessions, newest first (by creation time, then id),
    /// starting after `after`.
    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// How many live sessions the user has: what `sessions_of` would list, without loading them.
    async fn count_sessions(&self, user: UserId, now: Timestamp) -> Result<u64, StoreError>;

    /// Revokes one of the user's sessions; false if the user has no such live session.
    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Revokes every live session of the user except `keep`; returns how many it revoked.
    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Deletes sessions that expired or were revoked more than `retention` ago.
    async fn purge_sessions(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError>;
}
