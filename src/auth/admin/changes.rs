//! What an admin changes: accounts created, roles, disabling, deletion, sessions ended.

use super::{
    AccountChange, Actor, AdminUserView, Administration, guarded, parse_roles, refuse_last_admin,
};
use crate::audit::EventType;
use crate::auth::{AuthError, Principal, RequestContext};
use crate::domain::{Role, UserId, display_name};
use crate::store::{TokenPurpose, UserRecord};

impl Administration {
    /// `POST /v1/admin/users`: an account with the given roles, and a password or none (then it
    /// logs in only after a reset).
    pub async fn admin_create_user(
        &self,
        context: &RequestContext,
        admin: &Principal,
        email: &str,
        password: Option<&str>,
        roles: &[String],
    ) -> Result<AdminUserView, AuthError> {
        let roles = parse_roles(roles)?;
        let user = self
            .registration
            .insert_account(context, email, password, roles, Some(admin.user))
            .await?;
        self.admin_view(&user).await
    }

    /// `PATCH /v1/admin/users/{id}`: roles, disabled, email verified.
    pub async fn update_user(
        &self,
        context: &RequestContext,
        actor: Actor,
        id: UserId,
        change: AccountChange,
    ) -> Result<AdminUserView, AuthError> {
        let user = self.users.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        let roles = change.roles.as_deref().map(parse_roles).transpose()?;
        let name = change
            .name
            .map(|name| name.as_deref().map(display_name).transpose())
            .transpose()
            .map_err(AuthError::InvalidQuery)?;
        if actor.is(user.id) {
            if roles.as_ref().is_some_and(|roles| !roles.contains(&Role::Admin)) {
                return Err(AuthError::Conflict(
                    "an admin cannot remove its own admin role".into(),
                ));
            }
            if change.disabled == Some(true) {
                return Err(AuthError::Conflict("an admin cannot disable itself".into()));
            }
        }
        let demotes = roles.as_ref().is_some_and(|roles| !roles.contains(&Role::Admin));
        if demotes || change.disabled == Some(true) {
            refuse_last_admin(self.users.as_ref(), user.id).await?;
        }
        let mut changed = Vec::new();
        if let Some(roles) = roles.filter(|roles| *roles != user.roles) {
            guarded(self.users.set_roles(user.id, &roles).await?)?;
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            changed.push(format!("roles {}", names.join(",")));
        }
        if let Some(name) = name.filter(|name| *name != user.name) {
            self.users.set_name(user.id, name.as_deref()).await?;
            changed.push(if name.is_some() { "name set" } else { "name cleared" }.to_owned());
        }
        if let Some(verified) = change.email_verified.filter(|v| *v != user.email_verified) {
            self.users.set_email_verified(user.id, verified).await?;
            changed.push(format!("email_verified {verified}"));
        }
        if let Some(disabled) = change.disabled.filter(|d| *d != user.disabled) {
            if disabled {
                let ended = self.disable(&user).await?;
                changed.push(format!("disabled, {ended} sessions ended"));
            } else {
                guarded(self.users.set_disabled(user.id, false).await?)?;
                changed.push("enabled".to_owned());
            }
        }
        if !changed.is_empty() {
            let event = actor.event(EventType::UserUpdated, context, &user, self.now());
            self.audit
                .record(event.detail(format!("{} {}", changed.join("; "), actor.by())))
                .await?;
        }
        let user = self.users.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        self.admin_view(&user).await
    }

    /// Disables the account, then ends everything that lets it in: sessions (on every instance
    /// at once, as every request checks its session), ceremonies in progress, mailed links.
    /// The flag comes first, so a login that passes its check before it sees it in its re-check
    /// after opening its session.
    async fn disable(&self, user: &UserRecord) -> Result<u64, AuthError> {
        guarded(self.users.set_disabled(user.id, true).await?)?;
        let now = self.now();
        let ended = self.sessions.revoke_sessions_of(user.id, None, now).await?;
        self.factors.drop_challenges(user.id).await?;
        let links = self.mail.links();
        for purpose in [TokenPurpose::Reset, TokenPurpose::Verify, TokenPurpose::ChangeEmail] {
            links.void_tokens(user.id, purpose, now).await?;
        }
        Ok(ended)
    }

    /// `DELETE /v1/admin/users/{id}`: like `DELETE /v1/auth/me`, without the password.
    pub async fn admin_delete_user(
        &self,
        context: &RequestContext,
        actor: Actor,
        id: UserId,
    ) -> Result<(), AuthError> {
        if actor.is(id) {
            return Err(AuthError::Conflict("an admin cannot delete itself".into()));
        }
        let user = self.users.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        refuse_last_admin(self.users.as_ref(), user.id).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
        guarded(self.users.delete_user(user.id).await?)?;
        self.lockout.clear_devices(user.id).await?;
        self.grants.delete_grants_of(user.id).await?;
        let event = actor.event(EventType::UserDeleted, context, &user, self.now());
        self.audit.record(event.detail(format!("{ended} sessions ended {}", actor.by()))).await?;
        self.mail.notify(|t| t.account_deleted(user.email.as_str())).await
    }

    /// `DELETE /v1/admin/users/{id}/sessions`: every session of the account ends at once.
    pub async fn admin_end_sessions(
        &self,
        context: &RequestContext,
        actor: Actor,
        id: UserId,
    ) -> Result<(), AuthError> {
        let user = self.users.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
        let event = actor.event(EventType::SessionsRevoked, context, &user, self.now());
        self.audit.record(event.detail(format!("{ended} sessions ended {}", actor.by()))).await?;
        Ok(())
    }
}
