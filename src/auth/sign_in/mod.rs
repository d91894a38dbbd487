//! Login: the path an attacker hits hardest, so every account, existing or not, costs the same.
//!
//! Steps, in order (OWASP Authentication Cheat Sheet):
//! 1. rate limits: per client IP before any other work, then per attempted email, or per device
//!    when the login presents this account's device token (so strangers who spend the email's
//!    budget never keep the owner's device out);
//! 2. the lockout gate: the attempt is counted against the email, or against the device when it
//!    presents this account's device token, and refused if that key is locked;
//! 3. verification against the stored hash, or a dummy hash when there is no account, so that an
//!    unknown email costs the same time as a wrong password; over-long passwords are refused
//!    without hashing;
//! 4. on failure: record it (and the lock, if this failure engaged one);
//! 5. on success: for an account with TOTP, take the counted attempt back and hand out the token
//!    of the second step; otherwise forgive the counted attempt, open a session, remember the
//!    device, record it. (A hash is upgraded in step 3 when the parameters changed.)

mod passkey;
mod second_step;

use std::sync::Arc;

use super::factors::{Proofs, SecondFactors};
use super::limits::Account;
use super::lockout::{device_lock_key, email_lock_key};
use super::{AuthError, Budgets, Lockouts, Passwords, RequestContext, Sessions, TokenPair, tokens};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::config::EmailVerification;
use crate::domain::{Amr, Clock, Email, Password, Timestamp};
use crate::metrics::Metrics;
use crate::store::{SessionStore, TokenHash, UserRecord, UserStore};

/// Signing in: a password and its second step, or a passkey. It holds only the stores and
/// services a sign-in uses.
pub struct SignIn {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) proofs: Arc<Proofs>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) session: Arc<Sessions>,
    pub(in crate::auth) factors: Arc<SecondFactors>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) metrics: Arc<Metrics>,
    pub(in crate::auth) settings: SignInSettings,
}

/// What a sign-in depends on beyond its stores.
#[derive(Clone, Copy, Debug)]
pub struct SignInSettings {
    pub verification: EmailVerification,
    /// Devices a user stays known on: as many as the sessions they may hold.
    pub max_sessions_per_user: u32,
}

impl SignIn {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn login(
        &self,
        context: &RequestContext,
        email: &str,
        password: &str,
        device_token: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        let attempted = Email::normalise_key(email);
        self.budgets.limit_credential_request(context, None).await?;
        self.passwords.admit_check()?;
        let user = self.passwords.find_user(email).await?;
        let device = self.passwords.known_device(user.as_ref(), device_token).await?;
        let account = match (&user, &device) {
            (Some(user), Some(device)) => Account::Device(user.id, device),
            _ => Account::Email(&attempted),
        };
        self.budgets.take_account_budget(context, account).await?;
        let lock_key = match (&user, &device) {
            (Some(user), Some(device)) => device_lock_key(user.id, device),
            _ => email_lock_key(&attempted),
        };
        let locks = match self.lockout.begin_attempt(&lock_key).await {
            Ok(locks) => locks,
            Err(error) => {
                self.record_failed_login(context, &attempted, user.as_ref(), "locked").await?;
                return Err(error);
            }
        };
        let matches =
            self.passwords.check_counted(&lock_key, Password::new(password), user.as_ref()).await?;
        // Failures against an existing account carry its id, so its owner sees them in their
        // own events; the response is the same either way.
        let Some(user) = user.as_ref().filter(|_| matches) else {
            let user_id = user.as_ref().map(|u| u.id);
            self.record_failed_login(context, &attempted, user.as_ref(), "invalid_credentials")
                .await?;
            if locks {
                self.lockout.record_lockout(context, &attempted, user_id, device.is_some()).await?;
            }
            return Err(AuthError::InvalidCredentials);
        };
        // Only after the right password, so that the answer reveals nothing to a guesser.
        if user.disabled {
            self.lockout.forgive(&lock_key).await?;
            self.refuse_if_disabled(context, user).await?;
        }
        if self.settings.verification == EmailVerification::Required && !user.email_verified {
            self.lockout.forgive(&lock_key).await?;
            self.record_failed_login(context, &attempted, Some(user), "email_not_verified").await?;
            return Err(AuthError::EmailNotVerified);
        }
        // A device token never skips the second factor; the password alone completes nothing,
        // so it does not clear the failures counted before it either.
        if user.factors.totp {
            let known = device.as_ref().and(device_token);
            let mfa_token = self.require_second_factor(user, &attempted, &lock_key, known).await?;
            return Err(AuthError::MfaRequired { mfa_token });
        }
        self.lockout.forgive(&lock_key).await?;
        self.complete_login(context, user, device_token, device, Amr::PASSWORD, "password").await
    }

    /// The end of every successful login: a session bound to the device it logged in with, or to
    /// the device token this login hands out (so that its later credential checks are held by
    /// that device's lock, and a password change it makes keeps that device known), the device
    /// remembered, the event recorded. `device` is the hash of `device_token` when that is a
    /// known device of this account.
    async fn complete_login(
        &self,
        context: &RequestContext,
        user: &UserRecord,
        device_token: Option<&str>,
        device: Option<TokenHash>,
        amr: Amr,
        how: &str,
    ) -> Result<TokenPair, AuthError> {
        let device_token = match (device_token, &device) {
            (Some(token), Some(_)) => token.to_owned(),
            _ => tokens::random_token(),
        };
        let session_device = device.unwrap_or_else(|| tokens::hash_token(&device_token));
        let mut pair = self.session.open_session(context, user, Some(session_device), amr).await?;
        // A disable that raced this login has set its flag before ending the sessions: either
        // it ended this one, or the flag shows here.
        if self.users.user_by_id(user.id).await?.is_none_or(|now| now.disabled) {
            self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
            return Err(AuthError::AccountDisabled);
        }
        self.users.record_login(user.id, self.now()).await?;
        self.remember_device(user, &device_token).await?;
        pair.device_token = Some(device_token);
        let event = AuditEvent::new(EventType::Login, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail(how);
        self.audit.record(event).await?;
        Ok(pair)
    }

    async fn record_failed_login(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<&UserRecord>,
        detail: &str,
    ) -> Result<(), AuthError> {
        let mut event =
            AuditEvent::new(EventType::LoginFailed, Outcome::Failure, context, self.now())
                .email(attempted)
                .detail(detail);
        event.user_id = user.map(|u| u.id);
        Ok(self.audit.record(event).await?)
    }

    /// Remembers the device token as one this user has just logged in from; only the most
    /// recently used devices, as many as the session cap, stay known.
    async fn remember_device(&self, user: &UserRecord, token: &str) -> Result<(), AuthError> {
        let hash = tokens::hash_token(token);
        let keep = self.settings.max_sessions_per_user;
        Ok(self.users.remember_device(user.id, &hash, self.now(), keep).await?)
    }

    /// Refuses a disabled account after its right credential (so the answer tells a guesser
    /// nothing), recording why.
    async fn refuse_if_disabled(
        &self,
        context: &RequestContext,
        user: &UserRecord,
    ) -> Result<(), AuthError> {
        if !user.disabled {
            return Ok(());
        }
        let event = AuditEvent::new(EventType::LoginFailed, Outcome::Failure, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail("account_disabled");
        self.audit.record(event).await?;
        self.metrics.refusal("disabled");
        Err(AuthError::AccountDisabled)
    }
}
