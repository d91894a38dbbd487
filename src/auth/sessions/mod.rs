//! Sessions: who is calling (an access token whose session is live), the session a login
//! opens and the refresh tokens that rotate it, and what a signed-in user does with their
//! sessions. Revocation is immediate: every authenticated request checks that the token's
//! session is still live in the session store, so the next request after a logout answers 401.

mod manage;
mod refresh;

use std::sync::Arc;
use std::time::Duration;

use super::{AuthError, Budgets, Principal, RequestContext, TokenPair, UserView, tokens};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::crypto::{AccessTokens, SuccessorKey};
use crate::domain::{Amr, Clock, Role, SessionId, Timestamp, UserId, chrono_duration};
use crate::store::{NewSession, SessionKind, SessionStore, TokenHash, UserRecord, UserStore};

pub use manage::SessionPage;

/// What sessions and their tokens last.
#[derive(Clone, Copy, Debug)]
pub struct SessionSettings {
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// A session ends this long after its login, however often it is refreshed.
    pub session_lifetime: Duration,
    /// A new login past this many live sessions ends the user's oldest one.
    pub max_sessions_per_user: u32,
}

/// The sessions and their tokens: it holds only the stores and keys they use.
pub struct Sessions {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    /// The OAuth clients, for the names of the apps a browser session signed in to.
    pub(in crate::auth) clients: Arc<dyn crate::store::ClientStore>,
    pub(in crate::auth) access: Arc<AccessTokens>,
    pub(in crate::auth) successors: SuccessorKey,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) settings: SessionSettings,
}

impl Sessions {
    /// The access tokens this service signs and verifies (their keys are reloaded in the
    /// background).
    pub fn access_tokens(&self) -> &AccessTokens {
        &self.access
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Verifies a bearer access token and that its session is still live.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let token = self.access.verify(bearer)?;
        let session = self.sessions.live_session(token.user, token.session, self.now()).await?;
        match session {
            Some(session) if session.user_id == token.user => Ok(Principal {
                user: token.user,
                session: token.session,
                roles: token.roles,
                device: session.device,
                amr: session.amr,
                signed_in_at: session.created_at,
            }),
            _ => Err(AuthError::Unauthorized),
        }
    }

    /// The gate of every admin request: the reads budget, then the admin role as the account
    /// holds it now (read from the store, not the token, so that a revoked role stops working at
    /// once).
    pub async fn admit_admin(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        let user = self.account_to_read(context, principal).await?;
        if user.roles.contains(&crate::domain::Role::Admin) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    /// The signed-in user's account.
    pub async fn me(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<UserView, AuthError> {
        let user = self.account_to_read(context, principal).await?;
        Ok(UserView::from(&user))
    }

    /// The reads budget, then the caller's account as it is now (one deleted meanwhile is
    /// `Unauthorized`).
    pub(in crate::auth) async fn account_to_read(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<UserRecord, AuthError> {
        self.budgets.limit_read(context, principal).await?;
        self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)
    }

    /// Creates a session with its first refresh token and signs its first access token.
    pub(in crate::auth) async fn open_session(
        &self,
        context: &RequestContext,
        user: &UserRecord,
        device: Option<TokenHash>,
        amr: Amr,
    ) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let refresh_token = tokens::new_refresh_token(user.id);
        let ends_at = now + chrono_duration(self.settings.session_lifetime);
        // A browser's sign-in is never refreshed: it lasts to the session's end.
        let expires_at = if context.from_page { ends_at } else { self.refresh_expiry(now)? };
        let session = NewSession {
            id: SessionId::new(),
            user_id: user.id,
            refresh_token: tokens::hash_token(&refresh_token),
            created_at: now,
            expires_at,
            ends_at,
            device,
            ip: context.ip.map(|ip| ip.to_string()),
            user_agent: context.user_agent.clone(),
            amr,
            kind: if context.from_page { SessionKind::Browser } else { SessionKind::Api },
        };
        let ended =
            self.sessions.create_session(&session, self.settings.max_sessions_per_user).await?;
        if ended > 0 {
            let event = AuditEvent::new(EventType::SessionRevoked, Outcome::Success, context, now)
                .user(user.id)
                .detail(format!("{ended} oldest sessions ended: over the session cap"));
            self.audit.record(event).await?;
        }
        self.token_pair(user.id, session.id, &user.roles, (amr, now), refresh_token, now)
    }

    /// Signs an access token and pairs it with `refresh_token`.
    fn token_pair(
        &self,
        user: UserId,
        session: SessionId,
        roles: &[Role],
        (amr, login_at): (Amr, Timestamp),
        refresh_token: String,
        now: Timestamp,
    ) -> Result<TokenPair, AuthError> {
        Ok(TokenPair {
            access_token: self.access.issue(user, session, roles, amr, login_at, now)?,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.access.ttl().as_secs(),
            refresh_expires_in: self.settings.refresh_token_ttl.as_secs(),
            device_token: None,
            session: (user, session),
        })
    }

    fn refresh_expiry(&self, now: Timestamp) -> Result<Timestamp, AuthError> {
        chrono::Duration::from_std(self.settings.refresh_token_ttl)
            .map(|ttl| now + ttl)
            .map_err(|e| AuthError::Internal(e.into()))
    }
}
