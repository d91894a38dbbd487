//! Registration.

use super::limits::Account;
use super::{AuthError, AuthService, RequestContext, UserView};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::config::EmailVerification;
use crate::domain::{Email, Password, Role, UserId};
use crate::store::{Factors, UserRecord};
use crate::store::{NewUser, StoreError};

impl AuthService {
    /// Creates an account. Creates no session: the client logs in next.
    ///
    /// The policy is checked before hashing, so a refused password (an over-long one included)
    /// costs no hashing at all.
    pub async fn register(
        &self,
        context: &RequestContext,
        email: &str,
        password: &str,
        roles: Vec<Role>,
    ) -> Result<UserView, AuthError> {
        let attempted = Email::normalise_key(email);
        self.budgets.limit_credential_request(context, Some(Account::Email(&attempted))).await?;
        self.create_user(context, email, password, roles).await
    }

    /// Creates an account without taking from any budget: for the operator's command line.
    pub async fn create_user(
        &self,
        context: &RequestContext,
        email: &str,
        password: &str,
        roles: Vec<Role>,
    ) -> Result<UserView, AuthError> {
        let user = self.insert_account(context, email, Some(password), roles, None).await?;
        Ok(UserView::from(&user))
    }

    /// Creates an account: with a password (checked against the policy before any hashing), or
    /// without one, when it can log in only after a password reset. `actor` is the admin who
    /// creates it, if one does; the event is then `user_created`.
    pub(super) async fn insert_account(
        &self,
        context: &RequestContext,
        email: &str,
        password: Option<&str>,
        roles: Vec<Role>,
        actor: Option<UserId>,
    ) -> Result<UserRecord, AuthError> {
        let email = Email::parse(email)?;
        let password_hash = match password {
            Some(password) => {
                self.admit_password_check()?;
                let password = Password::new(password);
                let violations = self.settings.password_policy.violations(&password, Some(&email));
                if !violations.is_empty() {
                    return Err(AuthError::PasswordPolicy(violations));
                }
                self.hasher.hash(password).await?
            }
            None => NO_PASSWORD.to_owned(),
        };
        let user =
            NewUser { id: UserId::new(), email, password_hash, roles, created_at: self.now() };
        let kind = if actor.is_some() { EventType::UserCreated } else { EventType::Registration };
        let event = |outcome| {
            let mut event =
                AuditEvent::new(kind, outcome, context, self.now()).email(user.email.as_str());
            event.actor_id = actor;
            event
        };
        match self.users.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                self.audit.record(event(Outcome::Failure).detail("email_taken")).await?;
                return Err(AuthError::EmailTaken);
            }
            Err(other) => return Err(other.into()),
        }
        self.audit.record(event(Outcome::Success).user(user.id)).await?;
        let NewUser { id, email, password_hash, roles, created_at } = user;
        let record = UserRecord {
            id,
            email,
            password_hash,
            roles,
            created_at,
            email_verified: false,
            factors: Factors::default(),
            disabled: false,
            last_login_at: None,
            credential_epoch: 0,
        };
        if self.settings.mail.verification != EmailVerification::Off {
            self.send_verification(&record).await?;
        }
        Ok(record)
    }
}

/// The stored hash of an account created without a password: not a PHC string, so it never
/// verifies; a login against it costs the dummy hash, like an unknown email.
pub(super) const NO_PASSWORD: &str = "!";
