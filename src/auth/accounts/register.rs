//! Registration.

use std::sync::Arc;

use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::limits::Account;
use crate::auth::passwords::NO_PASSWORD;
use crate::auth::{AuthError, Budgets, Notifier, Passwords, RequestContext, UserView};
use crate::config::EmailVerification;
use crate::domain::{Clock, Email, Role, Timestamp, UserId};
use crate::store::{Factors, NewUser, StoreError, UserRecord, UserStore};

/// New accounts: a sign-up, or one an admin or the operator creates. It holds only what
/// creating an account needs.
pub struct Registration {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) mail: Arc<Notifier>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Registration {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

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
    pub(in crate::auth) async fn insert_account(
        &self,
        context: &RequestContext,
        email: &str,
        password: Option<&str>,
        roles: Vec<Role>,
        actor: Option<UserId>,
    ) -> Result<UserRecord, AuthError> {
        let email = Email::parse(email)?;
        let password_hash = match password {
            Some(password) => self.passwords.new_hash(password, &email).await?,
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
            name: None,
        };
        if self.mail.flows().verification != EmailVerification::Off {
            self.mail.send_verification(&record).await?;
        }
        Ok(record)
    }
}
