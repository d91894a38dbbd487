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

use std::sync::Arc;

use super::notify::Link;
use super::{AuthError, Budgets, Lockouts, Notifier, Passwords, RequestContext, UserView, tokens};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::config::EmailVerification;
use crate::domain::{Clock, Email, Timestamp};
use crate::store::{MfaStore, SessionStore, StoreError, TokenPurpose, UserRecord, UserStore};

/// The least time `verify-email/resend` and `password/forgot` take, so that the work done for an
/// existing account (a token and a message written) does not show in the response time.
const ANSWER_FLOOR: Duration = Duration::from_millis(150);

/// The mail flows of someone who may not be signed in: it holds only the stores and services
/// they use.
pub struct Recovery {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    pub(in crate::auth) factors: Arc<dyn MfaStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) mail: Arc<Notifier>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Recovery {
    fn now(&self) -> Timestamp {
        self.clock.now()
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
        let store = self.mail.links();
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
        let user = self.passwords.find_user(email).await?;
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
        let wanted = self.mail.flows().verification != EmailVerification::Off;
        if let Some(user) = user.filter(|u| wanted && !u.email_verified) {
            self.mail.send_verification(&user).await?;
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
                let ttl = self.mail.flows().password_reset_ttl;
                let link = Link { purpose: TokenPurpose::Reset, ttl, void_older: true };
                self.mail
                    .issue_link(user, &user.email, link, |templates, address, token| {
                        templates.reset(address, token)
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
        let store = self.mail.links();
        let found = store.peek_token(&hash, TokenPurpose::Reset, self.now()).await?;
        let found = found.ok_or(AuthError::InvalidMailToken)?;
        let user = self.users.user_by_id(found.user).await?;
        let Some(user) = user.filter(|u| u.email == found.address && !u.disabled) else {
            return Err(AuthError::InvalidMailToken);
        };
        // The policy before the token is spent: a refused password leaves the link usable.
        let password_hash = self.passwords.new_hash(new_password, &user.email).await?;
        if store.spend_token(&hash, TokenPurpose::Reset, self.now()).await?.is_none() {
            return Err(AuthError::InvalidMailToken);
        }
        self.users.set_password_hash(user.id, &password_hash).await?;
        // Every other link still in a mailbox stops working with this reset.
        self.users.bump_credential_epoch(user.id).await?;
        let first_proof =
            !user.email_verified && self.mail.flows().verification != EmailVerification::Off;
        self.users.set_email_verified(user.id, true).await?;
        let now = self.now();
        store.void_tokens(user.id, TokenPurpose::Reset, now).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, now).await?;
        let forgotten = self.users.forget_devices(user.id, None).await?;
        let removed = if first_proof {
            self.factors.remove_factors(user.id).await?
        } else {
            self.factors.drop_challenges(user.id).await?;
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
        self.mail.notify(|t| t.password_reset(user.email.as_str(), first_proof)).await
    }
}

async fn answer_no_sooner(started: Instant) {
    tokio::time::sleep(ANSWER_FLOOR.saturating_sub(started.elapsed())).await;
}
