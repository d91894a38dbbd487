//! Registration.

use super::limits::Account;
use super::{AuthError, AuthService, RequestContext, UserView};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::config::EmailVerification;
use crate::domain::{Email, Password, Role, UserId};
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
        self.limit_credential_request(context, Some(Account::Email(&attempted))).await?;
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
        let email = Email::parse(email)?;
        let password = Password::new(password);
        let violations = self.settings.password_policy.violations(&password, Some(&email));
        if !violations.is_empty() {
            return Err(AuthError::PasswordPolicy(violations));
        }
        let user = NewUser {
            id: UserId::new(),
            email,
            password_hash: self.hasher.hash(password).await?,
            roles,
            created_at: self.now(),
        };
        match self.users.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                let event =
                    AuditEvent::new(EventType::Registration, Outcome::Failure, context, self.now())
                        .email(user.email.as_str())
                        .detail("email_taken");
                self.audit.record(event).await?;
                return Err(AuthError::EmailTaken);
            }
            Err(other) => return Err(other.into()),
        }
        let event = AuditEvent::new(EventType::Registration, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str());
        self.audit.record(event).await?;
        if self.settings.mail.verification != EmailVerification::Off {
            self.send_verification(user.id, &user.email).await?;
        }
        Ok(UserView {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
            roles: user.roles,
            email_verified: false,
            mfa: Vec::new(),
        })
    }
}
