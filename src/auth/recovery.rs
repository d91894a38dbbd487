//! The mail flows: address verification, password reset, email change, account deletion, and
//! the notices that tell an owner what changed.
//!
//! Each link carries a token of 256 random bits, stored only as its hash with the address it was
//! sent to, single use, short-lived, and good only where it belongs (a reset token does nothing
//! at `verify-email`, and stays usable). Each is bound to the account's credential epoch as it
//! was when the request that sent it was checked: a password change or reset, logout-all and any
//! change of a second factor move the epoch on, so a link an attacker asked for before the owner
//! took the account back stops working. The requests that mail a link to an address anyone can
//! name (resend, forgot) answer the same, in about the same time, whether the account exists or
//! not; they take from the IP budget of login and from a mail budget of the account, never from
//! its login budget, so that asking for someone's mail cannot keep them from signing in.

use std::time::{Duration, Instant};

use super::lockout::{device_lock_key, email_lock_key};
use super::{AuthError, AuthService, Principal, RequestContext, UserView, tokens};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::config::EmailVerification;
use crate::domain::{Email, Password};
use crate::mail::Message;
use crate::store::{LockKey, NewEmailToken, StoreError, TokenPurpose, UserRecord};

/// The least time `verify-email/resend` and `password/forgot` take, so that the work done for an
/// existing account (a token and a message written) does not show in the response time.
const ANSWER_FLOOR: Duration = Duration::from_millis(150);

impl AuthService {
    /// Mails a verification link for `address` to it.
    pub(super) async fn send_verification(&self, user: &UserRecord) -> Result<(), AuthError> {
        let ttl = self.settings.mail.email_token_ttl;
        let address = &user.email;
        self.issue_link(user, address, TokenPurpose::Verify, ttl, false, |token| {
            self.templates.verify(address.as_str(), token)
        })
        .await
    }

    /// Stores a fresh token and queues the message that carries it, in one transaction.
    async fn issue_link(
        &self,
        user: &UserRecord,
        address: &Email,
        purpose: TokenPurpose,
        ttl: Duration,
        void_older: bool,
        compose: impl FnOnce(&str) -> Message,
    ) -> Result<(), AuthError> {
        let token = tokens::random_token();
        let now = self.now();
        let mail = self.outbox.seal(&compose(&token)).map_err(internal)?;
        let record = NewEmailToken {
            hash: tokens::hash_token(&token),
            user: user.id,
            purpose,
            address: address.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).map_err(internal)?,
            epoch: user.credential_epoch,
        };
        self.outbox.store().issue_token(&record, void_older, &mail).await?;
        self.outbox.queued();
        Ok(())
    }

    /// Queues a notice (no token) to `address`.
    pub(super) async fn notify(&self, message: Message) -> Result<(), AuthError> {
        self.outbox.queue(&message).await.map_err(internal)
    }

    /// `POST /v1/auth/verify-email`: a verification token marks the address verified; an
    /// email-change token moves the account to the address it confirms.
    pub async fn verify_email(
        &self,
        context: &RequestContext,
        token: &str,
    ) -> Result<UserView, AuthError> {
        self.budgets.limit_credential_request(context, None).await?;
        if !tokens::is_well_formed(token) {
            return Err(AuthError::InvalidMailToken);
        }
        let hash = tokens::hash_token(token);
        let store = self.outbox.store();
        if let Some(found) = store.spend_token(&hash, TokenPurpose::Verify, self.now()).await? {
            let user = self.users.user_by_id(found.user).await?;
            // A link sent to an address the account has since left proves nothing.
            let Some(user) = user.filter(|u| u.email == found.address && !u.disabled) else {
                return Err(AuthError::InvalidMailToken);
            };
            self.users.set_email_verified(user.id, true).await?;
            let event =
                AuditEvent::new(EventType::EmailVerified, Outcome::Success, context, self.now())
                    .user(user.id)
                    .email(user.email.as_str());
            self.audit.record(event).await?;
            return Ok(UserView { email_verified: true, ..UserView::from(&user) });
        }
        if let Some(found) = store.spend_token(&hash, TokenPurpose::ChangeEmail, self.now()).await?
        {
            let user = self.users.user_by_id(found.user).await?;
            let user = user.filter(|u| !u.disabled).ok_or(AuthError::InvalidMailToken)?;
            match self.users.change_email(user.id, &found.address).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => return Err(AuthError::EmailTaken),
                Err(other) => return Err(other.into()),
            }
            let event =
                AuditEvent::new(EventType::EmailChanged, Outcome::Success, context, self.now())
                    .user(user.id)
                    .email(found.address.as_str())
                    .detail("confirmed at the new address");
            self.audit.record(event).await?;
            let moved = UserRecord { email: found.address, email_verified: true, ..user };
            return Ok(UserView::from(&moved));
        }
        Err(AuthError::InvalidMailToken)
    }

    /// The start of a request that mails a link to an address anyone can name: the IP budget,
    /// then the account, if there is one and the address's mail budget has room (over it the
    /// request answers the same and sends nothing).
    async fn mail_request_for(
        &self,
        context: &RequestContext,
        email: &str,
    ) -> Result<(String, Option<UserRecord>), AuthError> {
        let attempted = Email::normalise_key(email);
        self.budgets.limit_credential_request(context, None).await?;
        if !self.budgets.mail_budget_has_room(context, &attempted).await? {
            return Ok((attempted, None));
        }
        let user = self.find_user(email).await?;
        Ok((attempted, user))
    }

    /// `POST /v1/auth/verify-email/resend`: a new link for an unverified account.
    pub async fn resend_verification(
        &self,
        context: &RequestContext,
        email: &str,
    ) -> Result<(), AuthError> {
        let started = Instant::now();
        let (_, user) = self.mail_request_for(context, email).await?;
        let wanted = self.settings.mail.verification != EmailVerification::Off;
        if let Some(user) = user.filter(|u| wanted && !u.email_verified) {
            self.send_verification(&user).await?;
        }
        answer_no_sooner(started).await;
        Ok(())
    }

    /// `POST /v1/auth/password/forgot`: mails a reset link to an existing account, voiding its
    /// earlier ones.
    pub async fn forgot_password(
        &self,
        context: &RequestContext,
        email: &str,
    ) -> Result<(), AuthError> {
        let started = Instant::now();
        let (attempted, user) = self.mail_request_for(context, email).await?;
        let mut event = AuditEvent::new(
            EventType::PasswordResetRequested,
            Outcome::Success,
            context,
            self.now(),
        )
        .email(&attempted);
        match &user {
            Some(user) => {
                let ttl = self.settings.mail.password_reset_ttl;
                self.issue_link(user, &user.email, TokenPurpose::Reset, ttl, true, |token| {
                    self.templates.reset(user.email.as_str(), token)
                })
                .await?;
                event.user_id = Some(user.id);
            }
            None => {
                event.outcome = Outcome::Failure;
                event = event.detail("unknown email or mail budget spent: nothing sent");
            }
        }
        self.audit.record(event).await?;
        answer_no_sooner(started).await;
        Ok(())
    }

    /// `POST /v1/auth/password/reset`: replaces the password, ends every session, forgets every
    /// device, lifts the lockout and counts the address as verified. Second factors stay, unless
    /// this reset is the first proof that the address is the owner's: then whoever registered
    /// it may have added them (a pre-account hijack), and they go.
    pub async fn reset_password(
        &self,
        context: &RequestContext,
        token: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        self.budgets.limit_credential_request(context, None).await?;
        if !tokens::is_well_formed(token) {
            return Err(AuthError::InvalidMailToken);
        }
        let hash = tokens::hash_token(token);
        let store = self.outbox.store();
        let found = store.peek_token(&hash, TokenPurpose::Reset, self.now()).await?;
        let found = found.ok_or(AuthError::InvalidMailToken)?;
        let user = self.users.user_by_id(found.user).await?;
        let Some(user) = user.filter(|u| u.email == found.address && !u.disabled) else {
            return Err(AuthError::InvalidMailToken);
        };
        // The policy before the token is spent: a refused password leaves the link usable.
        let password = Password::new(new_password);
        let violations = self.settings.password_policy.violations(&password, Some(&user.email));
        if !violations.is_empty() {
            return Err(AuthError::PasswordPolicy(violations));
        }
        let password_hash = self.hasher.hash(password).await?;
        if store.spend_token(&hash, TokenPurpose::Reset, self.now()).await?.is_none() {
            return Err(AuthError::InvalidMailToken);
        }
        self.users.set_password_hash(user.id, &password_hash).await?;
        // Every other link still in a mailbox stops working with this reset.
        self.users.bump_credential_epoch(user.id).await?;
        let first_proof =
            !user.email_verified && self.settings.mail.verification != EmailVerification::Off;
        self.users.set_email_verified(user.id, true).await?;
        let now = self.now();
        store.void_tokens(user.id, TokenPurpose::Reset, now).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, now).await?;
        let forgotten = self.users.forget_devices(user.id, None).await?;
        let removed = if first_proof {
            self.factors.store.remove_factors(user.id).await?
        } else {
            self.factors.store.drop_challenges(user.id).await?;
            0
        };
        self.lockout
            .lift_locks(context, user.email.as_str(), Some(user.id), "password reset")
            .await?;
        let mut detail = format!("{ended} sessions ended, {forgotten} devices forgotten");
        if first_proof {
            detail.push_str(&format!(
                ", first proof of the address: {removed} second factors and passkeys removed"
            ));
        }
        let event = AuditEvent::new(EventType::PasswordReset, Outcome::Success, context, now)
            .user(user.id)
            .email(user.email.as_str())
            .detail(detail);
        self.audit.record(event).await?;
        self.notify(self.templates.password_reset(user.email.as_str(), first_proof)).await
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
        let user = self.own_account_to_change(context, principal).await?;
        let new_email = Email::parse(new_email)?;
        self.check_current_password(context, principal, &user, password, "email_change").await?;
        if new_email == user.email {
            return Err(AuthError::InvalidQuery("new_email: it is the account's address".into()));
        }
        if self.users.user_by_email(&new_email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let ttl = self.settings.mail.email_token_ttl;
        self.issue_link(&user, &new_email, TokenPurpose::ChangeEmail, ttl, true, |token| {
            self.templates.confirm_new_address(new_email.as_str(), token)
        })
        .await?;
        self.notify(self.templates.address_change_requested(user.email.as_str())).await?;
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
        let user = self.own_account_to_change(context, principal).await?;
        self.check_password_and_code(context, principal, &user, password, code, "account_deletion")
            .await?;
        // The last enabled admin stays (409), checked again in the deletion's transaction.
        self.refuse_last_admin(user.id).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
        let deleted = self.users.delete_user(user.id).await?;
        if deleted == crate::store::AdminGuard::LastAdmin {
            return super::admin::guarded(deleted);
        }
        self.lockout.clear_devices(user.id).await?;
        let event =
            AuditEvent::new(EventType::AccountDeleted, Outcome::Success, context, self.now())
                .user(user.id)
                .email(user.email.as_str())
                .detail(format!("{ended} sessions ended"));
        self.audit.record(event).await?;
        self.notify(self.templates.account_deleted(user.email.as_str())).await
    }

    /// Checks the signed-in user's password before a sensitive change. A wrong one counts as a
    /// failed login, against the session's device lock if it logged in on a known device (so a
    /// stranger who locked the email cannot block the owner) or else the email's.
    pub(super) async fn check_current_password(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        what: &str,
    ) -> Result<(), AuthError> {
        let lock_key =
            self.count_current_password(context, principal, user, password, what).await?;
        self.lockout.forgive(&lock_key).await
    }

    /// Checks the signed-in user's password as `check_current_password` does, but leaves the
    /// counted attempt in place when it is right: the caller settles it (a second factor may
    /// still have to follow). Returns the lock that counted it.
    pub(super) async fn count_current_password(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        what: &str,
    ) -> Result<LockKey, AuthError> {
        let lock_key = self.session_lock_key(principal, user).await?;
        let locks = self.lockout.begin_attempt(&lock_key).await?;
        if !self.check_counted_password(&lock_key, Password::new(password), Some(user)).await? {
            let event =
                AuditEvent::new(EventType::LoginFailed, Outcome::Failure, context, self.now())
                    .user(user.id)
                    .email(user.email.as_str())
                    .detail(format!("{what}_wrong_current_password"));
            self.audit.record(event).await?;
            if locks {
                let on_device = lock_key.member_name().is_some();
                self.lockout
                    .record_lockout(context, user.email.as_str(), Some(user.id), on_device)
                    .await?;
            }
            return Err(AuthError::InvalidCredentials);
        }
        Ok(lock_key)
    }

    /// The lock that holds a signed-in session's credential checks: its device's, if it logged
    /// in on a known device (so a stranger who locked the email cannot block the owner), or else
    /// the email's.
    pub(super) async fn session_lock_key(
        &self,
        principal: &Principal,
        user: &UserRecord,
    ) -> Result<LockKey, AuthError> {
        Ok(match &principal.device {
            Some(device) if self.is_known_device(user.id, device).await? => {
                device_lock_key(user.id, device)
            }
            _ => email_lock_key(user.email.as_str()),
        })
    }

    /// Tells the owner that the password changed.
    pub(super) async fn notify_password_changed(&self, user: &UserRecord) -> Result<(), AuthError> {
        self.notify(self.templates.password_changed(user.email.as_str())).await
    }
}

async fn answer_no_sooner(started: Instant) {
    tokio::time::sleep(ANSWER_FLOOR.saturating_sub(started.elapsed())).await;
}

fn internal(error: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::Internal(Box::new(error))
}
