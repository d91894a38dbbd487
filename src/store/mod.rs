//! Storage traits and their backends.
//!
//! The traits are small, speak domain types, and are the only thing the `auth` layer sees. Every
//! backend implements them with the same semantics, including expiry and atomic refresh-token
//! rotation, so backends are interchangeable. Nothing above this module sees a driver error: all
//! that leaves it is a `StoreError`.

mod codec;
pub mod memory;
mod records;
pub mod redis;
pub mod sealed;
pub mod sql;

use async_trait::async_trait;
use std::time::Duration;

use crate::domain::audit::chain::{HeadSignature, Link};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::{Email, Rate, Role, SessionId, UserId};

pub use crate::domain::{AttemptGate, LockoutPolicy, Timestamp};

pub use records::{
    ChallengePurpose, ChallengeRecord, EmailTokenRecord, Factors, NewEmailToken, NewSession,
    NewUser, OutboxState, PasskeyRecord, QueuedMail, Rotation, SessionCursor, SessionRecord,
    SigningKeyRecord, TokenHash, TokenPurpose, TotpRecord, UserCursor, UserRecord,
};

/// The cause of a store error, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// All that leaves this module. Each error names the operation that failed and keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (for example, an email already registered).
    #[error("conflict")]
    Conflict,
    /// The backend could not be reached or did not answer in time; the caller answers 503.
    #[error("{operation}: backend unavailable")]
    Unavailable {
        operation: &'static str,
        #[source]
        cause: Cause,
    },
    /// Anything else: a bug or corrupt data. The caller answers 500 and logs it.
    #[error("{operation}: backend error")]
    Backend {
        operation: &'static str,
        #[source]
        cause: Cause,
    },
}

impl StoreError {
    pub fn unavailable(operation: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Unavailable { operation, cause: cause.into() }
    }

    pub fn backend(operation: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Backend { operation, cause: cause.into() }
    }

    /// The message with every cause, for the log: "rotate refresh token: backend unavailable:
    /// pool timed out".
    pub fn with_causes(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }
}

/// The outcome of a change that could leave the deployment without an enabled admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminGuard {
    /// The change was made.
    Done,
    /// There is no such account; nothing changed.
    NoAccount,
    /// Refused: the account is the last enabled admin and would no longer be one.
    LastAdmin,
}

/// User accounts and the devices they have logged in from.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; `Conflict` if the email is taken.
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;
    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<(), StoreError>;
    /// Moves the account's credential epoch on: every mail token issued under an earlier one
    /// stops working.
    async fn bump_credential_epoch(&self, id: UserId) -> Result<(), StoreError>;
    /// Up to `limit` accounts, newest first (creation time, then id), after `after`; with
    /// `prefix`, only those whose (normalised) email starts with it.
    async fn list_users(
        &self,
        prefix: Option<&str>,
        after: Option<&UserCursor>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Disables or enables the account. Disabling the last enabled admin is refused, checked in
    /// the same transaction as the change, so that of concurrent changes at most the ones that
    /// leave an enabled admin succeed.
    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<AdminGuard, StoreError>;
    /// Replaces the account's roles; taking the admin role from the last enabled admin is
    /// refused, as for `set_disabled`.
    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<AdminGuard, StoreError>;
    /// Whether the account is the only enabled admin: a change that takes its role, or the
    /// account, would be refused. Read outside any change, to refuse early; the change itself
    /// checks again.
    async fn is_last_admin(&self, id: UserId) -> Result<bool, StoreError>;
    /// Records a completed login.
    async fn record_login(&self, id: UserId, at: Timestamp) -> Result<(), StoreError>;
    /// Moves the account to `email`, verified; `Conflict` if another account has it.
    async fn change_email(&self, id: UserId, email: &Email) -> Result<(), StoreError>;
    /// Deletes the account with its devices, sessions and tokens (its audit events stay);
    /// deleting the last enabled admin is refused, as for `set_disabled`.
    async fn delete_user(&self, id: UserId) -> Result<AdminGuard, StoreError>;
    /// Remembers a device token (by its hash) as one this user logged in from at `now`, and
    /// forgets the user's devices beyond the `keep` most recently used. A device token of another
    /// user is left alone.
    async fn remember_device(
        &self,
        user: UserId,
        device: &TokenHash,
        now: Timestamp,
        keep: u32,
    ) -> Result<(), StoreError>;
    /// Whether the device token (by its hash) belongs to this user and was used at or after
    /// `used_since`.
    async fn is_known_device(
        &self,
        user: UserId,
        device: &TokenHash,
        used_since: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Forgets devices last used before `unused_since`; returns how many.
    async fn purge_devices(&self, unused_since: Timestamp) -> Result<u64, StoreError>;
    /// Forgets every device token of the user but `keep` (after a password change or reset);
    /// returns how many.
    async fn forget_devices(
        &self,
        user: UserId,
        keep: Option<&TokenHash>,
    ) -> Result<u64, StoreError>;
}

/// Tokens sent by mail, and the outbox that sends them: a message is stored in the transaction
/// that stores its token, and leaves the outbox only once it is delivered or given up.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Stores `token` and queues `mail` in one transaction. With `void_older`, the user's unused
    /// tokens of the same purpose stop working first.
    async fn issue_token(
        &self,
        token: &NewEmailToken,
        void_older: bool,
        mail: &QueuedMail,
    ) -> Result<(), StoreError>;
    /// Queues a message that carries no token (a notice).
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError>;
    /// The token with this hash, if it is for `purpose`, unused and unexpired; it stays usable.
    async fn peek_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError>;
    /// Uses up the token, as `peek_token` finds it: of concurrent calls, exactly one gets it.
    async fn spend_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError>;
    /// Voids every unused token of `purpose` of the user; returns how many.
    async fn void_tokens(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Deletes tokens that expired or were used more than `retention` ago.
    async fn purge_tokens(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError>;
    /// Claims up to `limit` messages that are due, oldest first, for `lease`: until the lease
    /// ends no other caller claims them.
    async fn claim_mail(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError>;
    /// Removes a message: delivered, or given up.
    async fn remove_mail(&self, id: &str) -> Result<(), StoreError>;
    /// Releases a message that could not be delivered, to be tried again at `due`.
    async fn defer_mail(&self, id: &str, due: Timestamp) -> Result<(), StoreError>;
    async fn outbox_state(&self) -> Result<OutboxState, StoreError>;
}

/// Second factors (TOTP, recovery codes, passkeys) and the ceremonies in progress. Each check
/// that must succeed once is one conditional write, so concurrent attempts get one winner.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Stores a pending TOTP enrolment (its sealed secret), replacing an earlier pending one;
    /// false, and nothing stored, if the account already has a confirmed TOTP.
    async fn start_totp(
        &self,
        user: UserId,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError>;
    /// Up to `limit` stored TOTP secrets of users after `after`, in user id order (to seal them
    /// again after a master key rotation).
    async fn totp_secrets(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<(UserId, Vec<u8>)>, StoreError>;
    /// Replaces the stored secret (to seal it again under a new master key).
    async fn replace_totp_secret(&self, user: UserId, secret: &[u8]) -> Result<(), StoreError>;
    /// Confirms a pending enrolment with the code of `step`, storing the recovery codes (by their
    /// hashes) in the same transaction; false if there is no pending enrolment or `step` is not
    /// later than the last accepted one.
    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Accepts the code of `step` for a confirmed TOTP only if `step` is later than the last
    /// accepted one (RFC 6238 §5.2): of concurrent calls with one step, one gets true.
    async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;
    /// Removes the TOTP factor and the recovery codes; false if there was no TOTP.
    async fn remove_totp(&self, user: UserId) -> Result<bool, StoreError>;
    /// Replaces every recovery code of the user.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[TokenHash],
    ) -> Result<(), StoreError>;
    /// Uses up an unused recovery code: of concurrent calls with one code, one gets true.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Stores a passkey; `Conflict` if its credential id is registered already.
    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError>;
    /// The user's passkeys, oldest first.
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError>;
    async fn passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Records a verified use: the updated credential, its counter, and the time. False, and
    /// nothing changed, if the stored counter is not below `sign_count` (unless both are 0: an
    /// authenticator that keeps no counter), so a cloned key's replayed counter loses.
    async fn record_passkey_use(
        &self,
        id: &str,
        credential: &str,
        sign_count: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Deletes one of the user's passkeys; false if the user has no such passkey.
    async fn remove_passkey(&self, user: UserId, id: &str) -> Result<bool, StoreError>;
    /// Removes every second factor of the user (TOTP, recovery codes, passkeys) and its
    /// ceremonies in progress; returns how many factors there were.
    async fn remove_factors(&self, user: UserId) -> Result<u64, StoreError>;
    /// Stores a ceremony in progress by the hash of its id.
    async fn put_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        record: &ChallengeRecord,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The ceremony, if it is for `purpose` and unexpired; it stays usable.
    async fn peek_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        now: Timestamp,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Takes the ceremony, as `peek_challenge` finds it, and deletes it: of concurrent calls,
    /// exactly one gets it.
    async fn take_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        now: Timestamp,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Deletes every ceremony in progress of the user (after a password change or reset, a
    /// second step begun with the old password must not complete); returns how many.
    async fn drop_challenges(&self, user: UserId) -> Result<u64, StoreError>;
    /// Deletes expired ceremonies; returns how many.
    async fn purge_challenges(&self, now: Timestamp) -> Result<u64, StoreError>;
}

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
    /// Takes one request from the budget `key` at `now`.
    async fn take(&self, key: &str, rate: Rate, now: Timestamp)
    -> Result<RateDecision, StoreError>;
}

/// What a failure counter counts: one subject (an email), or one member of a group (a device of
/// a user), so that a whole group can be forgotten at once without a scan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockKey {
    group: String,
    member: Option<String>,
}

impl LockKey {
    pub fn subject(group: impl Into<String>) -> Self {
        Self { group: group.into(), member: None }
    }

    pub fn member(group: impl Into<String>, member: impl Into<String>) -> Self {
        Self { group: group.into(), member: Some(member.into()) }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn member_name(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// The key as one string, `group` or `group:member`, for stores keyed by text.
    pub fn joined(&self) -> String {
        match &self.member {
            Some(member) => format!("{}:{member}", self.group),
            None => self.group.clone(),
        }
    }
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
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError>;
    /// Takes back one attempt counted by `begin_attempt` whose credential was right but did not
    /// complete a login (a password that still needs its second factor): the failures before
    /// it stay counted, and a lock this attempt engaged is lifted again.
    async fn release_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Forgets the failures and any lock of `key` (after a success, or by an operator).
    async fn clear(&self, key: &LockKey) -> Result<(), StoreError>;
    /// Forgets every key of `group`, its members included; returns how many there were.
    async fn clear_group(&self, group: &str) -> Result<u64, StoreError>;
    /// Whether `key` is locked now, and for how long.
    async fn locked_for(
        &self,
        key: &LockKey,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;
    /// Deletes counters whose window and lock have passed and whose last failure is older than
    /// the policy's memory.
    async fn purge_lockouts(
        &self,
        now: Timestamp,
        policy: LockoutPolicy,
    ) -> Result<u64, StoreError>;
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
    /// Deletes a signing key no token it signed can still be live with.
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;
    /// Replaces the stored private key of `kid` (to seal it again under a new master key).
    async fn replace_signing_key(&self, kid: &str, private_key: &[u8]) -> Result<(), StoreError>;
    /// The secret called `name`, created from `candidate` if it does not exist yet; every caller
    /// gets the same value.
    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Replaces the stored value of the secret `name` (to seal it again).
    async fn replace_secret(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// The append-only, hash-chained audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `events` as the next links of the chain, in order, all or none. Appends are
    /// serialised on the chain's head, so concurrent writers never fork it; a batch takes the
    /// head once for all of its events.
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Events matching `filter`, newest first, each with its chain position.
    async fn query(&self, filter: &AuditFilter) -> Result<Vec<(i64, AuditEvent)>, StoreError>;
    /// Up to `limit` links after position `after`, in chain order.
    async fn links(&self, after: i64, limit: u32) -> Result<Vec<Link>, StoreError>;
    /// Events stored outside the chain (only a tampered trail has any).
    async fn unchained(&self) -> Result<u64, StoreError>;
    /// The chain's last position and hash.
    async fn head(&self) -> Result<(i64, Vec<u8>), StoreError>;
    /// Stores `signature` as the newest head signature, if the newest stored is still `seen`
    /// (the one the signer read, `None` when there was none): at a later position it is added;
    /// at the newest's own position (a heartbeat of an unchanged head) it takes that one's
    /// place, so an idle trail keeps one signature, not one a minute. The check and the write
    /// are one step under the chain's head lock, so signers racing keep one chain. Returns
    /// false, storing nothing, when another signature came in between or the position is older.
    async fn add_head_signature(
        &self,
        signature: &HeadSignature,
        seen: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
    /// The newest head signature (at the highest position), if there is one.
    async fn newest_head_signature(&self) -> Result<Option<HeadSignature>, StoreError>;
    /// Up to `limit` head signatures after position `after` (-1 for all), in chain order.
    async fn head_signatures(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<HeadSignature>, StoreError>;
}

/// Whether the backend answers at all; used by `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
}
