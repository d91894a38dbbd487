//! A signed-in user's own account: its password, its address and its deletion, each behind the
//! current password (and a code, to delete an account with TOTP on). Creating accounts is
//! `register`'s.

mod profile;
mod register;

use std::sync::Arc;

use super::factors::Proofs;
use super::notify::Link;
use super::{AuthError, Lockouts, Notifier, Passwords, Principal, RequestContext};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::domain::{Clock, Email, Timestamp};
use crate::store::{MfaStore, SessionStore, TokenPurpose, UserStore};

pub use register::Registration;

/// Changes to one's own account: it holds only the stores and services they use.
pub struct Accounts {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    /// The apps the user authorised, forgotten with the account.
    pub(in crate::auth) grants: Arc<dyn crate::store::GrantStore>,
    pub(in crate::auth) factors: Arc<dyn MfaStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) proofs: Arc<Proofs>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) mail: Arc<Notifier>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Accounts {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Changes the password after checking the current one, then revokes every other session of
    /// the user (OWASP Session Management Cheat Sheet: renew sessions on a credential change).
    /// A wrong current password counts as a failed login towards the email's lockout, so a
    /// stolen access token cannot be used to guess the password.
    pub async fn change_password(
        &self,
        context: &RequestContext,
        principal: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        self.passwords.check_current(context, principal, &user, current, "password_change").await?;
        let hash = self.passwords.new_hash(new, &user.email).await?;
        self.users.set_password_hash(user.id, &hash).await?;
        // Links mailed before the change (a reset, an email change) stop working.
        self.users.bump_credential_epoch(user.id).await?;
        let revoked =
            self.sessions.revoke_sessions_of(user.id, Some(principal.session), self.now()).await?;
        // Device tokens issued before the change no longer spare anyone a lockout, but the one
        // of the session that made the change.
        let forgotten = self.users.forget_devices(user.id, principal.device.as_ref()).await?;
        // A second step begun with the old password does not complete.
        self.factors.drop_challenges(user.id).await?;
        let event =
            AuditEvent::new(EventType::PasswordChange, Outcome::Success, context, self.now())
                .user(user.id)
                .detail(format!(
                    "{revoked} other sessions revoked, {forgotten} other devices forgotten"
                ));
        self.audit.record(event).await?;
        self.mail.notify(|t| t.password_changed(user.email.as_str())).await
    }

    /// `POST /v1/auth/email`: after the password, mails a confirmation link to the new address
    /// and a notice to the current one; the account moves when the link is used.
    pub async fn request_email_change(
        &self,
        context: &RequestContext,
        principal: &Principal,
        new_email: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        let new_email = Email::parse(new_email)?;
        self.passwords.check_current(context, principal, &user, password, "email_change").await?;
        if new_email == user.email {
            return Err(AuthError::InvalidQuery("new_email: it is the account's address".into()));
        }
        if self.users.user_by_email(&new_email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let ttl = self.mail.flows().email_token_ttl;
        let link = Link { purpose: TokenPurpose::ChangeEmail, ttl, void_older: true };
        self.mail
            .issue_link(&user, &new_email, link, |templates, address, token| {
                templates.confirm_new_address(address, token)
            })
            .await?;
        self.mail.notify(|t| t.address_change_requested(user.email.as_str())).await?;
        let event =
            AuditEvent::new(EventType::EmailChangeRequested, Outcome::Success, context, self.now())
                .user(user.id)
                .email(new_email.as_str());
        Ok(self.audit.record(event).await?)
    }

    /// `DELETE /v1/auth/me`: after the password (and, with TOTP on, a code), ends every session
    /// and deletes the account with its factors; its email can register again, and its audit
    /// events stay.
    pub async fn delete_account(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<(), AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        self.proofs
            .check_password_and_code(context, principal, &user, password, code, "account_deletion")
            .await?;
        // The last enabled admin stays (409), checked again in the deletion's transaction.
        super::admin::refuse_last_admin(self.users.as_ref(), user.id).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
        let deleted = self.users.delete_user(user.id).await?;
        if deleted == crate::store::AdminGuard::LastAdmin {
            return super::admin::guarded(deleted);
        }
        self.lockout.clear_devices(user.id).await?;
        self.grants.delete_grants_of(user.id).await?;
        let event =
            AuditEvent::new(EventType::AccountDeleted, Outcome::Success, context, self.now())
                .user(user.id)
                .email(user.email.as_str())
                .detail(format!("{ended} sessions ended"));
        self.audit.record(event).await?;
        self.mail.notify(|t| t.account_deleted(user.email.as_str())).await
    }
}
