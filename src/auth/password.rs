//! Password change.

use super::{AuthError, AuthService, Principal, RequestContext};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::Password;

impl AuthService {
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
        let user = self.own_account_to_change(context, principal).await?;
        self.check_current_password(context, principal, &user, current, "password_change").await?;
        let new = Password::new(new);
        let violations = self.settings.password_policy.violations(&new, Some(&user.email));
        if !violations.is_empty() {
            return Err(AuthError::PasswordPolicy(violations));
        }
        let hash = self.hasher.hash(new).await?;
        self.users.set_password_hash(user.id, &hash).await?;
        // Links mailed before the change (a reset, an email change) stop working.
        self.users.bump_credential_epoch(user.id).await?;
        let revoked =
            self.sessions.revoke_sessions_of(user.id, Some(principal.session), self.now()).await?;
        // Device tokens issued before the change no longer spare anyone a lockout, but the one
        // of the session that made the change.
        let forgotten = self.users.forget_devices(user.id, principal.device.as_ref()).await?;
        // A second step begun with the old password does not complete.
        self.factors.store.drop_challenges(user.id).await?;
        let event =
            AuditEvent::new(EventType::PasswordChange, Outcome::Success, context, self.now())
                .user(user.id)
                .detail(format!(
                    "{revoked} other sessions revoked, {forgotten} other devices forgotten"
                ));
        self.audit.record(event).await?;
        self.notify_password_changed(&user).await
    }
}
