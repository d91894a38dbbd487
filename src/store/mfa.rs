//! The second-factor trait: TOTP, recovery codes, passkeys and ceremonies in progress.

use async_trait::async_trait;

use super::{
    ChallengePurpose, ChallengeRecord, PasskeyRecord, StoreError, Timestamp, TokenHash, TotpRecord,
};
use crate::domain::UserId;

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
