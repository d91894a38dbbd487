//! Lockout after repeated failed logins, which an attacker cannot turn against the owner.
//!
//! Failures are counted per email, whether or not an account exists (so a 423 tells nothing).
//! A login that presents a device token this account got from an earlier successful login is
//! counted against that device alone and is not held by the email's lock: an attacker can lock
//! strangers out, never the owner on a device used before (OWASP, "Slow Down Online Guessing
//! Attacks with Device Cookies").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuthError, AuthService, RequestContext};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::{Email, UserId};
use crate::store::{AttemptGate, LockKey, TokenHash};

pub(super) fn email_lock_key(attempted: &str) -> LockKey {
    LockKey::subject(super::limits::email_account_key(attempted))
}

pub(super) fn device_lock_key(user: UserId, device: &TokenHash) -> LockKey {
    LockKey::member(device_group(user), URL_SAFE_NO_PAD.encode(device.0))
}

pub(super) fn device_group(user: UserId) -> String {
    format!("device:{user}")
}

impl AuthService {
    /// Counts an attempt on `key` before its credential is checked; refuses it if `key` is
    /// locked. Returns whether this attempt engaged the lock.
    pub(super) async fn begin_attempt(&self, key: &LockKey) -> Result<bool, AuthError> {
        let policy = self.settings.lockout;
        match self.lockouts.begin_attempt(key, policy, self.now()).await? {
            AttemptGate::Proceed { locks } => Ok(locks),
            AttemptGate::Locked { retry_after } => {
                self.metrics.refusal("locked");
                Err(AuthError::Locked { retry_after })
            }
        }
    }

    /// Checks `password` for an attempt that `begin_attempt` counted on `key`. When no check was
    /// made (the hasher had no room, a store failed), the counted attempt is given back, so that
    /// requests refused with 503 never count as failed logins.
    pub(super) async fn check_counted_password(
        &self,
        key: &LockKey,
        password: crate::domain::Password,
        user: Option<&crate::store::UserRecord>,
    ) -> Result<bool, AuthError> {
        let checked = self.check_password(password, user).await;
        if checked.is_err()
            && let Err(error) =
                self.lockouts.release_attempt(key, self.settings.lockout, self.now()).await
        {
            tracing::warn!(error = error.with_causes(), "an attempt not checked stays counted");
        }
        checked
    }

    /// Forgets the failures of `key` after a successful check.
    pub(super) async fn forgive(&self, key: &LockKey) -> Result<(), AuthError> {
        Ok(self.lockouts.clear(key).await?)
    }

    /// Records that a failure engaged a lock.
    pub(super) async fn record_lockout(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        on_device: bool,
    ) -> Result<(), AuthError> {
        let mut event = AuditEvent::new(EventType::Lockout, Outcome::Failure, context, self.now())
            .email(attempted)
            .detail(if on_device { "device" } else { "email" });
        event.user_id = user;
        Ok(self.audit.record(event).await?)
    }

    /// Lifts every lock of a user: their email's and their devices'. The event names the admin
    /// who did it as its actor.
    pub async fn unlock_user(
        &self,
        context: &RequestContext,
        admin: UserId,
        user: UserId,
    ) -> Result<(), AuthError> {
        let record = self.users.user_by_id(user).await?.ok_or(AuthError::NotFound)?;
        let by = format!("admin {admin}");
        self.lift_locks_by(context, record.email.as_str(), Some(user), &by, Some(admin)).await
    }

    /// Lifts the lock of an email, whether or not it has an account. An address that is not an
    /// email is `InvalidEmail`; one that has neither an account nor a lock now is `NotFound`,
    /// and nothing is recorded for either.
    pub async fn unlock_email(
        &self,
        context: &RequestContext,
        email: &str,
        by: &str,
    ) -> Result<(), AuthError> {
        let parsed = Email::parse(email)?;
        let attempted = Email::normalise_key(email);
        let user = self.users.user_by_email(&parsed).await?.map(|u| u.id);
        if user.is_none() {
            let locked = self.lockouts.locked_for(&email_lock_key(&attempted), self.now()).await?;
            if locked.is_none() {
                return Err(AuthError::NotFound);
            }
        }
        self.lift_locks(context, &attempted, user, by).await
    }

    pub(super) async fn lift_locks(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        by: &str,
    ) -> Result<(), AuthError> {
        self.lift_locks_by(context, attempted, user, by, None).await
    }

    /// Lifts the locks, recording `actor`, the admin who asked, if one did.
    async fn lift_locks_by(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        by: &str,
        actor: Option<UserId>,
    ) -> Result<(), AuthError> {
        self.lockouts.clear(&email_lock_key(attempted)).await?;
        if let Some(user) = user {
            self.lockouts.clear_group(&device_group(user)).await?;
        }
        let mut event = AuditEvent::new(EventType::Unlock, Outcome::Success, context, self.now())
            .email(attempted)
            .detail(by);
        event.user_id = user;
        event.actor_id = actor;
        self.audit.record(event).await?;
        Ok(())
    }
}
