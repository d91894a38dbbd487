//! The account trait: users, their roles and state, and the devices they log in from.

use async_trait::async_trait;

use super::{NewUser, StoreError, Timestamp, TokenHash, UserCursor, UserRecord};
use crate::domain::{Email, Role, UserId};

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
    /// Sets or clears the name the user gave.
    async fn set_name(&self, id: UserId, name: Option<&str>) -> Result<(), StoreError>;
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
