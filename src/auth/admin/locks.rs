//! What the operator lifts for a user who cannot get in: a lockout, or every second factor.

use super::Administration;
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, RequestContext};
use crate::domain::{Email, UserId};

impl Administration {
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
        self.lockout
            .lift_locks_by(context, record.email.as_str(), Some(user), &by, Some(admin))
            .await
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
            let locked = self.lockout.email_locked_for(&attempted).await?;
            if locked.is_none() {
                return Err(AuthError::NotFound);
            }
        }
        self.lockout.lift_locks(context, &attempted, user, by).await
    }

    /// `portcullis user reset-mfa`: removes every second factor of an account whose owner lost
    /// them, for an operator who has checked who is asking.
    pub async fn reset_second_factors(
        &self,
        context: &RequestContext,
        email: &str,
        by: &str,
    ) -> Result<u64, AuthError> {
        let user = self.passwords.find_user(email).await?.ok_or(AuthError::NotFound)?;
        let removed = self.factors.remove_factors(user.id).await?;
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaDisabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail(format!("every second factor removed ({removed}) {by}"));
        self.audit.record(event).await?;
        self.mail.notify(|t| t.mfa_changed(user.email.as_str(), "removed by an operator")).await?;
        Ok(removed)
    }
}
