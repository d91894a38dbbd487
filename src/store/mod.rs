//! Storage traits and their backends.
//!
//! The traits are small, speak domain types, and are the only thing the `auth` layer sees. Every
//! backend implements them with the same semantics, including expiry and atomic refresh-token
//! rotation, so backends are interchangeable. Nothing above this module sees a driver error: all
//! that leaves it is a `StoreError`.

mod codec;
pub mod memory;
pub mod postgres;
mod records;
pub mod redis;
pub mod sqlite;

use async_trait::async_trait;
use std::time::Duration;

use crate::audit::chain::Link;
use crate::audit::{AuditEvent, EventType};
use crate::domain::{Email, Rate, SessionId, UserId};

pub use records::{
    NewSession, NewUser, Rotation, SessionRecord, SigningKeyRecord, TokenHash, UserRecord,
};

/// Chrono timestamps are what every backend stores (as milliseconds since the epoch).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (for example, an email already registered).
    #[error("conflict")]
    Conflict,
    /// The backend could not be reached or did not answer in time; the caller answers 503.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data. The caller answers 500 and logs it.
    #[error("backend error: {0}")]
    Backend(String),
}

/// User accounts and the devices they have logged in from.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; `Conflict` if the email is taken.
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;
    /// Remembers a device token (by its hash) as one this user has logged in from.
    async fn remember_device(
        &self,
        user: UserId,
        device: &TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Whether the device token (by its hash) belongs to this user.
    async fn is_known_device(&self, user: UserId, device: &TokenHash) -> Result<bool, StoreError>;
}

/// Sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session with its first refresh token.
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError>;

    /// Atomically exchanges `presented` for `successor`.
    ///
    /// Exactly one of any number of concurrent calls with the same token sees `Rotated`. A token
    /// that was already rotated sees `Grace` if it was rotated at most `grace` ago and its
    /// successor is still current, and otherwise `Reused`, and its whole session is revoked.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError>;

    /// The session, if it exists, is not revoked and has not expired.
    async fn live_session(
        &self,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// The live session a current (not rotated, not expired) refresh token belongs to.
    async fn session_of_refresh_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// The user's live sessions, newest first.
    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError>;

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

/// The outcome of taking one request from a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The budget's burst size.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// When refused: the time until a request would be allowed.
    pub retry_after: Duration,
}

/// Request budgets (GCRA). One call is one atomic decision: there is no read-then-write window
/// in which two requests could both take the last unit.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn take(&self, key: &str, rate: Rate) -> Result<RateDecision, StoreError>;
}

/// The lockout rule: `threshold` failures within `window` lock for `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub duration: Duration,
}

/// Whether a credential check may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptGate {
    /// Counted as a failure in advance; `locks` is set when this attempt reached the threshold
    /// and engaged the lock (a success clears it again).
    Proceed { locks: bool },
    /// Locked: refused without checking anything.
    Locked { retry_after: Duration },
}

/// Failed-attempt counters and locks, by key (an email or a device).
///
/// An attempt is counted before its password is checked and forgiven on success, so that any
/// number of parallel guesses gets at most `threshold` checks: the count and the lock are one
/// atomic decision.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    async fn begin_attempt(
        &self,
        key: &str,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError>;
    /// Forgets the failures and any lock of `key` (after a success, or by an operator).
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
    /// Forgets every key that starts with `prefix`; returns how many there were.
    async fn clear_prefix(&self, prefix: &str) -> Result<u64, StoreError>;
    /// Whether `key` is locked now, and for how long.
    async fn locked_for(&self, key: &str, now: Timestamp) -> Result<Option<Duration>, StoreError>;
    /// Deletes counters whose window and lock have both passed.
    async fn purge_lockouts(&self, now: Timestamp, window: Duration) -> Result<u64, StoreError>;
}

/// Signing keys and server-side secrets, shared by every instance on the same database.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Stores `key` only if no signing key exists yet, so that instances starting together agree
    /// on one first key.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Stores a new signing key, which becomes the newest.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// The secret called `name`, created from `candidate` if it does not exist yet; every caller
    /// gets the same value.
    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;
}

/// Which audit events to read, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub user: Option<UserId>,
    pub kind: Option<EventType>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only events before this chain position (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}

/// The append-only, hash-chained audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` as the next link of the chain. Appends are serialised on the chain's
    /// head, so concurrent writers never fork it.
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events matching `filter`, newest first, each with its chain position.
    async fn query(&self, filter: &AuditFilter) -> Result<Vec<(i64, AuditEvent)>, StoreError>;
    /// Up to `limit` links after position `after`, in chain order.
    async fn links(&self, after: i64, limit: u32) -> Result<Vec<Link>, StoreError>;
    /// Events stored outside the chain (only a tampered trail has any).
    async fn unchained(&self) -> Result<u64, StoreError>;
    /// The chain's last position and hash.
    async fn head(&self) -> Result<(i64, Vec<u8>), StoreError>;
}

/// Whether the backend answers at all; used by `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The current time at the precision every backend stores (milliseconds), so that a value
/// returned right after a write equals the one read back later.
pub fn now() -> Timestamp {
    let at = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}
