//! Account administration: find an account, see why it cannot log in, disable it at once, fix
//! its roles, delete it.
//!
//! Roles are read from the store on every admin request (`admit_admin`), so a demotion stops
//! an old token at once. Disabling and deleting end every session, ceremony in progress and
//! mailed link of the account at once; the login paths refuse a disabled account after its
//! right credential, and re-check after opening a session, so a login racing the disable cannot
//! keep one. An admin cannot lock itself out: no self-demotion, self-disable or self-delete.
//! Nothing leaves the deployment without an enabled admin: the store refuses to take the role,
//! or the account, from the last one in the transaction that would, so two admins demoting each
//! other at once cannot both succeed.
//! Every action is recorded with the admin as `actor_id` and the account as `user_id`.

use serde::Serialize;

mod changes;
mod locks;

use std::sync::Arc;

use super::paging::{decode_cursor, encode_cursor};
use super::{AuthError, Lockouts, Notifier, Passwords, Registration, RequestContext, UserView};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::domain::{Clock, Email, Role, Timestamp, UserId};
use crate::store::{AdminGuard, MfaStore, SessionStore, UserCursor, UserRecord, UserStore};

/// Accounts in a page when the client does not say.
pub const DEFAULT_USERS_PAGE: u32 = 50;
/// The most accounts in one page.
pub const MAX_USERS_PAGE: u32 = 200;
/// The longest email prefix a search takes (an address is at most 254 bytes).
const MAX_PREFIX_CHARS: usize = 254;

/// An account as an admin sees it: the user object, and why it may not be able to log in.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AdminUser)]
pub struct AdminUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub disabled: bool,
    /// The end of the email's current lock, if it is locked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<Timestamp>,
    /// Live sessions.
    pub sessions: u64,
}

/// One page of accounts, newest first, and the cursor of the next page if there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UserPage)]
pub struct AdminUserPage {
    pub users: Vec<AdminUserView>,
    pub next_cursor: Option<String>,
}

/// What `PATCH /v1/admin/users/{id}` changes; absent members stay as they are.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
}

/// Who acts on an account: an admin over the API, or the operator's command line.
#[derive(Clone, Copy, Debug)]
pub enum Actor {
    Admin(UserId),
    CommandLine,
}

impl Actor {
    pub(in crate::auth) fn id(self) -> Option<UserId> {
        match self {
            Self::Admin(id) => Some(id),
            Self::CommandLine => None,
        }
    }

    fn is(self, user: UserId) -> bool {
        self.id() == Some(user)
    }

    /// The event of an action on `user`, with the actor, and the command line named.
    fn event(
        self,
        kind: EventType,
        context: &RequestContext,
        user: &UserRecord,
        now: Timestamp,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(kind, Outcome::Success, context, now)
            .user(user.id)
            .email(user.email.as_str());
        event.actor_id = self.id();
        event
    }

    pub(in crate::auth) fn by(self) -> &'static str {
        match self {
            Self::Admin(_) => "by an admin",
            Self::CommandLine => "by the command line",
        }
    }
}

/// Why a change that would leave the deployment without an enabled admin is refused.
const LAST_ADMIN: &str = "the deployment must keep an enabled admin";

/// A guarded change of the store as the API answers it.
pub(in crate::auth) fn guarded(outcome: AdminGuard) -> Result<(), AuthError> {
    match outcome {
        AdminGuard::Done => Ok(()),
        AdminGuard::NoAccount => Err(AuthError::NotFound),
        AdminGuard::LastAdmin => Err(AuthError::Conflict(LAST_ADMIN.into())),
    }
}

/// The roles an admin asked for, by name; `user` is always kept.
fn parse_roles(names: &[String]) -> Result<Vec<Role>, AuthError> {
    let mut roles = vec![Role::User];
    for name in names {
        let role = Role::parse(name)
            .ok_or_else(|| AuthError::InvalidQuery("roles: unknown role".to_owned()))?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Refuses, before anything changes, to take the role or the account from the last enabled
/// admin. Only the early answer of the common case: the change checks again in its own
/// transaction, which is what holds against concurrent requests.
pub(in crate::auth) async fn refuse_last_admin(
    users: &dyn UserStore,
    id: UserId,
) -> Result<(), AuthError> {
    if users.is_last_admin(id).await? {
        return Err(AuthError::Conflict(LAST_ADMIN.into()));
    }
    Ok(())
}

/// Account administration, for admins over the API and for the operator's command line: it
/// holds only the stores and services it uses, and no key that signs a token or opens a second
/// factor.
pub struct Administration {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    /// The apps the user authorised, forgotten with the account.
    pub(in crate::auth) grants: Arc<dyn crate::store::GrantStore>,
    pub(in crate::auth) factors: Arc<dyn MfaStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) registration: Arc<Registration>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) mail: Arc<Notifier>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Administration {
    /// New accounts, which the command line creates without taking from any budget.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The audit trail, whose head the command line signs after it wrote to it.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The admin view of an account: its lock and live sessions read now.
    async fn admin_view(&self, user: &UserRecord) -> Result<AdminUserView, AuthError> {
        let now = self.now();
        let locked_for = self.lockout.email_locked_for(user.email.as_str()).await?;
        let locked_until = locked_for.map(|wait| now + super::chrono_duration(wait));
        let sessions = self.sessions.count_sessions(user.id, now).await?;
        Ok(AdminUserView {
            user: UserView::from(user),
            disabled: user.disabled,
            locked_until,
            last_login_at: user.last_login_at,
            sessions,
        })
    }

    /// `GET /v1/admin/users`: a page of accounts, newest first, optionally by email prefix.
    pub async fn list_users(
        &self,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<AdminUserPage, AuthError> {
        let prefix = match prefix {
            Some(raw) if raw.chars().count() > MAX_PREFIX_CHARS => {
                let why = format!("email: at most {MAX_PREFIX_CHARS} characters");
                return Err(AuthError::InvalidQuery(why));
            }
            // The literal prefix of the normalised address, as emails are stored.
            Some(raw) => Some(Email::normalise_key(raw)).filter(|p| !p.is_empty()),
            None => None,
        };
        let after = cursor
            .map(|raw| decode_cursor(raw, UserId::parse))
            .transpose()?
            .map(|(created_at, id)| UserCursor { created_at, id });
        let limit = limit.unwrap_or(DEFAULT_USERS_PAGE).clamp(1, MAX_USERS_PAGE);
        let mut users = self.users.list_users(prefix.as_deref(), after.as_ref(), limit + 1).await?;
        let more = users.len() > limit as usize;
        users.truncate(limit as usize);
        let next_cursor =
            more.then(|| users.last().map(|u| encode_cursor(u.created_at, u.id))).flatten();
        let mut views = Vec::with_capacity(users.len());
        for user in &users {
            views.push(self.admin_view(user).await?);
        }
        Ok(AdminUserPage { users: views, next_cursor })
    }

    /// `GET /v1/admin/users/{id}`.
    pub async fn admin_user(&self, id: UserId) -> Result<AdminUserView, AuthError> {
        let user = self.users.user_by_id(id).await?.ok_or(AuthError::NotFound)?;
        self.admin_view(&user).await
    }

    /// The account an operator names by email (the command line).
    pub async fn user_by_email(&self, email: &str) -> Result<UserRecord, AuthError> {
        self.passwords.find_user(email).await?.ok_or(AuthError::NotFound)
    }
}

#[cfg(test)]
mod tests;
