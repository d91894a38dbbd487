//! `PATCH /v1/auth/me`: the caller's own profile, for now its name.

use super::Accounts;
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, Principal, RequestContext, UserView};
use crate::domain::display_name;

impl Accounts {
    /// Sets (1 to 200 characters, none hidden) or clears (`Some(None)`) the caller's name;
    /// `None` leaves it as it is.
    pub async fn update_profile(
        &self,
        context: &RequestContext,
        principal: &Principal,
        name: Option<Option<&str>>,
    ) -> Result<UserView, AuthError> {
        let name = name
            .map(|name| name.map(display_name).transpose())
            .transpose()
            .map_err(AuthError::InvalidQuery)?;
        let mut user = self.passwords.own_account_to_change(context, principal).await?;
        if let Some(name) = name.filter(|name| *name != user.name) {
            self.users.set_name(user.id, name.as_deref()).await?;
            let event =
                AuditEvent::new(EventType::UserUpdated, Outcome::Success, context, self.now())
                    .user(user.id)
                    .actor(user.id)
                    .detail(if name.is_some() { "name set" } else { "name cleared" });
            self.audit.record(event).await?;
            user.name = name;
        }
        Ok(UserView::from(&user))
    }
}
