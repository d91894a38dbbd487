//! The steps every use case that touches a password shares: "the account of this token" for a
//! change to one's own account, the hasher's admission, a new password against the policy, and
//! the check of a password that counts toward the lockout (of the device the session signed in
//! on when it is a known one, else of the email).

use std::sync::Arc;
use std::time::Duration;

use super::limits::Account;
use super::lockout::{device_lock_key, email_lock_key};
use super::{AuthError, Budgets, Lockouts, Principal, RequestContext, tokens};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::crypto::PasswordHasher;
use crate::domain::{Clock, Email, Password, PasswordPolicy, Timestamp, UserId, chrono_duration};
use crate::metrics::Metrics;
use crate::store::{LockKey, TokenHash, UserRecord, UserStore};

/// The stored hash of an account created without a password: not a PHC string, so it never
/// verifies; a login against it costs the dummy hash, like an unknown email.
pub(in crate::auth) const NO_PASSWORD: &str = "!";

/// Passwords and the devices that spare their owner a lockout: it holds only what checking
/// them needs.
pub struct Passwords {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) hasher: PasswordHasher,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) metrics: Arc<Metrics>,
    pub(in crate::auth) policy: PasswordPolicy,
    pub(in crate::auth) device_token_ttl: Duration,
}

impl Passwords {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The first step of a change to the caller's own account: the IP and account budgets, then
    /// the account as it is now (one deleted meanwhile is `Unauthorized`).
    pub(in crate::auth) async fn own_account_to_change(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<UserRecord, AuthError> {
        let account = Some(Account::User(principal.user));
        self.budgets.limit_credential_request(context, account).await?;
        self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)
    }

    /// Refuses at once (503, `Retry-After`) a request that would hash when the hasher has no
    /// room for one more check, before its lookups: in a login flood the excess then costs a
    /// budget and this test, and the hashes go to the requests already waiting.
    pub(in crate::auth) fn admit_check(&self) -> Result<(), AuthError> {
        if self.hasher.has_room() {
            return Ok(());
        }
        self.metrics.refusal("hashing_queue_full");
        Err(AuthError::Unavailable("too many password checks waiting".into()))
    }

    /// The hash of a new password for `email`'s account, checked against the policy first, so
    /// that a refused password (an over-long one included) costs no hashing at all.
    pub(in crate::auth) async fn new_hash(
        &self,
        password: &str,
        email: &Email,
    ) -> Result<String, AuthError> {
        self.admit_check()?;
        let password = Password::new(password);
        let violations = self.policy.violations(&password, Some(email));
        if !violations.is_empty() {
            return Err(AuthError::PasswordPolicy(violations));
        }
        Ok(self.hasher.hash(password).await?)
    }

    /// Whether `secret` matches the Argon2id PHC string `hash` (a client secret that
    /// `CLIENTS_FILE` gives as a hash), after the hasher's admission.
    pub(in crate::auth) async fn matches_hash(
        &self,
        secret: &str,
        hash: &str,
    ) -> Result<bool, AuthError> {
        self.admit_check()?;
        Ok(self.hasher.verify(Password::new(secret), Some(hash.to_owned())).await?.matches)
    }

    /// Verifies the password against the user's hash or the dummy hash, storing an upgraded
    /// hash when the parameters changed. Over-long passwords fail without hashing.
    pub(in crate::auth) async fn check(
        &self,
        password: Password,
        user: Option<&UserRecord>,
    ) -> Result<bool, AuthError> {
        if password.is_over_length_cap() {
            return Ok(false);
        }
        // An account without a password is checked against the dummy hash, like no account.
        let stored = user.map(|u| u.password_hash.clone()).filter(|h| h != NO_PASSWORD);
        let verified = self.hasher.verify(password, stored).await?;
        if let (Some(user), Some(hash)) = (user, &verified.upgraded_hash)
            && let Err(error) = self.users.set_password_hash(user.id, hash).await
        {
            tracing::warn!(user_id = %user.id, %error, "could not upgrade a password hash");
        }
        Ok(verified.matches)
    }

    /// Checks `password` for an attempt that `begin_attempt` counted on `key`. When no check was
    /// made (the hasher had no room, a store failed), the counted attempt is given back, so that
    /// requests refused with 503 never count as failed logins.
    pub(in crate::auth) async fn check_counted(
        &self,
        key: &LockKey,
        password: Password,
        user: Option<&UserRecord>,
    ) -> Result<bool, AuthError> {
        let checked = self.check(password, user).await;
        if checked.is_err()
            && let Err(error) = self.lockout.release(key).await
        {
            let error = crate::domain::with_causes(&error);
            tracing::warn!(error, "an attempt not checked stays counted");
        }
        checked
    }

    /// The account for a login attempt; an invalid address simply has none.
    pub(in crate::auth) async fn find_user(
        &self,
        email: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        match Email::parse(email) {
            Ok(email) => Ok(self.users.user_by_email(&email).await?),
            Err(_) => Ok(None),
        }
    }

    /// The hash of the presented device token, if it is one this account logged in with.
    pub(in crate::auth) async fn known_device(
        &self,
        user: Option<&UserRecord>,
        presented: Option<&str>,
    ) -> Result<Option<TokenHash>, AuthError> {
        let (Some(user), Some(token)) = (user, presented) else { return Ok(None) };
        if !tokens::is_well_formed(token) {
            return Ok(None);
        }
        let hash = tokens::hash_token(token);
        Ok(self.is_known_device(user.id, &hash).await?.then_some(hash))
    }

    /// Whether the device token (by its hash) is this user's and was used within
    /// `DEVICE_TOKEN_TTL`.
    async fn is_known_device(&self, user: UserId, device: &TokenHash) -> Result<bool, AuthError> {
        let used_since = self.now() - chrono_duration(self.device_token_ttl);
        Ok(self.users.is_known_device(user, device, used_since).await?)
    }

    /// Checks the signed-in user's password before a sensitive change. A wrong one counts as a
    /// failed login, against the session's device lock if it logged in on a known device (so a
    /// stranger who locked the email cannot block the owner) or else the email's.
    pub(in crate::auth) async fn check_current(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        what: &str,
    ) -> Result<(), AuthError> {
        let lock_key = self.count_current(context, principal, user, password, what).await?;
        self.lockout.forgive(&lock_key).await
    }

    /// Checks the signed-in user's password as `check_current` does, but leaves the counted
    /// attempt in place when it is right: the caller settles it (a second factor may still have
    /// to follow). Returns the lock that counted it.
    pub(in crate::auth) async fn count_current(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        what: &str,
    ) -> Result<LockKey, AuthError> {
        let lock_key = self.session_lock_key(principal, user).await?;
        let locks = self.lockout.begin_attempt(&lock_key).await?;
        if !self.check_counted(&lock_key, Password::new(password), Some(user)).await? {
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
    async fn session_lock_key(
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
}
