//! Password change.

use super::{AuthError, AuthService, Principal, RequestContext};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::Password;

impl AuthService {
    /// Changes the password after checking the current one, then revokes every other session of
    /// the user (OWASP Session Management Cheat Sheet: renew sessions on a credential change).
    pub async fn change_password(
        &self,
        context: &RequestContext,
        principal: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let user = self
            .users
            .user_by_id(principal.user)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let current = Password::new(current);
        let matches = !current.is_over_length_cap()
            && self
                .hasher
                .verify(current, Some(user.password_hash.clone()))
                .await?
                .matches;
        if !matches {
            let event = AuditEvent::new(EventType::LoginFailed, Outcome::Failure, context)
                .user(user.id)
                .email(user.email.as_str())
                .detail("password_change_wrong_current_password");
            self.audit.record(event).await;
            return Err(AuthError::InvalidCredentials);
        }
        let new = Password::new(new);
        let violations = self
            .settings
            .password_policy
            .violations(&new, Some(&user.email));
        if !violations.is_empty() {
            return Err(AuthError::PasswordPolicy(violations));
        }
        let hash = self.hasher.hash(new).await?;
        self.users.set_password_hash(user.id, &hash).await?;
        let revoked = self
            .sessions
            .revoke_sessions_of(user.id, Some(principal.session), crate::store::now())
            .await?;
        let event = AuditEvent::new(EventType::PasswordChange, Outcome::Success, context)
            .user(user.id)
            .detail(format!("{revoked} other sessions revoked"));
        self.audit.record(event).await;
        Ok(())
    }
}
