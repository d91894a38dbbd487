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

use super::paging::{decode_cursor, encode_cursor};
use super::{AuthError, AuthService, Principal, RequestContext, UserView};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::{Email, Role, Timestamp, UserId};
use crate::store::{AdminGuard, TokenPurpose, UserCursor, UserRecord};

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
}

/// Who acts on an account: an admin over the API, or the operator's command line.
#[derive(Clone, Copy, Debug)]
pub enum Actor {
    Admin(UserId),
    CommandLine,
}

impl Actor {
    fn id(self) -> Option<UserId> {
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

    fn by(self) -> &'static str {
        match self {
            Self::Admin(_) => "by an admin",
            Self::CommandLine => "by the command line",
        }
    }
}

/// Why a change that would leave the deployment without an enabled admin is refused.
const LAST_ADMIN: &str = "the deployment must keep an enabled admin";

/// A guarded change of the store as the API answers it.
pub(super) fn guarded(outcome: AdminGuard) -> Result<(), AuthError> {
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

impl AuthService {
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
        self.find_user(email).await?.ok_or(AuthError::NotFound)
    }

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
        let user = self.insert_account(context, email, password, roles, Some(admin.user)).await?;
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
            self.refuse_last_admin(user.id).await?;
        }
        let mut changed = Vec::new();
        if let Some(roles) = roles.filter(|roles| *roles != user.roles) {
            guarded(self.users.set_roles(user.id, &roles).await?)?;
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            changed.push(format!("roles {}", names.join(",")));
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
        self.factors.store.drop_challenges(user.id).await?;
        let links = self.outbox.store();
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
        self.refuse_last_admin(user.id).await?;
        let ended = self.sessions.revoke_sessions_of(user.id, None, self.now()).await?;
        guarded(self.users.delete_user(user.id).await?)?;
        self.lockout.clear_devices(user.id).await?;
        let event = actor.event(EventType::UserDeleted, context, &user, self.now());
        self.audit.record(event.detail(format!("{ended} sessions ended {}", actor.by()))).await?;
        self.notify(self.templates.account_deleted(user.email.as_str())).await
    }

    /// Refuses, before anything changes, to take the role or the account from the last enabled
    /// admin. Only the early answer of the common case: the change checks again in its own
    /// transaction, which is what holds against concurrent requests.
    pub(super) async fn refuse_last_admin(&self, id: UserId) -> Result<(), AuthError> {
        if self.users.is_last_admin(id).await? {
            return Err(AuthError::Conflict(LAST_ADMIN.into()));
        }
        Ok(())
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

    /// Refuses a disabled account after its right credential (so the answer tells a guesser
    /// nothing), recording why.
    pub(super) async fn refuse_if_disabled(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_cursors_round_trip_and_junk_is_refused() {
        let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
        let id = UserId::new();
        let cursor = decode_cursor(&encode_cursor(now, id), UserId::parse).ok();
        assert_eq!(cursor, Some((now, id)));
        let bad_id = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            "12:not-a-uuid",
        );
        for junk in ["", "junk", &bad_id] {
            assert!(decode_cursor(junk, UserId::parse).is_err(), "{junk}");
        }
    }

    #[test]
    fn roles_always_keep_user_and_refuse_unknown_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_roles(&[]).ok(), Some(vec![Role::User]));
        let admin = parse_roles(&names(&["admin", "admin"])).ok();
        assert_eq!(admin, Some(vec![Role::User, Role::Admin]));
        assert!(parse_roles(&names(&["root"])).is_err());
    }
}
