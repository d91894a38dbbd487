//! The session operations of a signed-in user: logging out, everywhere or here, and the list of
//! sessions, each of which can be ended.

use super::Sessions;
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::limits::Account;
use crate::auth::paging::{decode_cursor, encode_cursor};
use crate::auth::{AuthError, Principal, RequestContext, tokens};
use crate::domain::SessionId;
use std::collections::HashMap;

use crate::auth::ClientSettings;
use crate::store::{SessionCursor, SessionKind, SessionRecord};

/// Sessions in a page when the client does not say.
pub const DEFAULT_SESSIONS_PAGE: u32 = 50;
/// The most sessions in one page.
pub const MAX_SESSIONS_PAGE: u32 = 200;

/// One page of sessions, newest first, and the cursor of the next page if there is one.
#[derive(Debug)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub next_cursor: Option<String>,
    /// For each browser session of the page, the names of the apps it signed in to.
    pub clients: HashMap<SessionId, Vec<String>>,
}

impl Sessions {
    /// Ends the bearer's session, or else the session of the presented refresh token.
    pub async fn logout(
        &self,
        context: &RequestContext,
        principal: Option<&Principal>,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        let account = principal.map(|p| Account::User(p.user));
        self.budgets.limit_credential_request(context, account).await?;
        let now = self.now();
        let (user, session) = match (principal, refresh_token) {
            (Some(principal), _) => (principal.user, principal.session),
            (None, Some(token)) => {
                let owner = tokens::refresh_token_owner(token).ok_or(AuthError::InvalidToken)?;
                let hash = tokens::hash_token(token);
                let found = self.sessions.session_of_refresh_token(owner, &hash, now).await?;
                let session = found.ok_or(AuthError::InvalidToken)?;
                (session.user_id, session.id)
            }
            (None, None) => return Err(AuthError::Unauthorized),
        };
        self.sessions.revoke_session(user, session, now).await?;
        let event = AuditEvent::new(EventType::Logout, Outcome::Success, context, self.now())
            .user(user)
            .detail(format!("session {session}"));
        self.audit.record(event).await?;
        Ok(())
    }

    /// Ends every session of the user, the current one included.
    pub async fn logout_all(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        self.budgets.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let count = self.sessions.revoke_sessions_of(principal.user, None, self.now()).await?;
        // Signing out everywhere takes the account back: links mailed before it stop working.
        self.users.bump_credential_epoch(principal.user).await?;
        let event = AuditEvent::new(EventType::LogoutAll, Outcome::Success, context, self.now())
            .user(principal.user)
            .detail(format!("{count} sessions revoked"));
        self.audit.record(event).await?;
        Ok(())
    }

    /// One page of the user's live sessions, newest first.
    pub async fn sessions(
        &self,
        context: &RequestContext,
        principal: &Principal,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<SessionPage, AuthError> {
        self.budgets.limit_read(context, principal).await?;
        let after = cursor
            .map(|raw| decode_cursor(raw, SessionId::parse))
            .transpose()?
            .map(|(created_at, id)| SessionCursor { created_at, id });
        let limit = limit.unwrap_or(DEFAULT_SESSIONS_PAGE).clamp(1, MAX_SESSIONS_PAGE);
        let mut sessions = self
            .sessions
            .sessions_of(principal.user, self.now(), after.as_ref(), limit + 1)
            .await?;
        let more = sessions.len() > limit as usize;
        sessions.truncate(limit as usize);
        let next_cursor =
            more.then(|| sessions.last().map(|s| encode_cursor(s.created_at, s.id))).flatten();
        let clients = self.clients_of_browsers(principal, &sessions).await?;
        Ok(SessionPage { sessions, next_cursor, clients })
    }

    /// The names of the apps each browser session of `page` signed in to: the clients of the
    /// live grants whose parent it is (a user holds at most `MAX_SESSIONS_PER_USER` sessions).
    async fn clients_of_browsers(
        &self,
        principal: &Principal,
        page: &[SessionRecord],
    ) -> Result<HashMap<SessionId, Vec<String>>, AuthError> {
        let browsers: Vec<SessionId> =
            page.iter().filter(|s| s.kind == SessionKind::Browser).map(|s| s.id).collect();
        let mut clients: HashMap<SessionId, Vec<String>> =
            browsers.iter().map(|id| (*id, Vec::new())).collect();
        if browsers.is_empty() {
            return Ok(clients);
        }
        let all = self.settings.max_sessions_per_user.max(1);
        let sessions = self.sessions.sessions_of(principal.user, self.now(), None, all).await?;
        let mut names: HashMap<String, Option<String>> = HashMap::new();
        for session in sessions {
            let SessionKind::Grant { client_id, parent: Some(parent), .. } = session.kind else {
                continue;
            };
            let Some(list) = clients.get_mut(&parent) else { continue };
            if !names.contains_key(&client_id) {
                let record = self.clients.client(&client_id).await?;
                let name = match record {
                    Some(record) => Some(ClientSettings::from_json(&record.registration)?.name),
                    None => None,
                };
                names.insert(client_id.clone(), name);
            }
            if let Some(Some(name)) = names.get(&client_id)
                && !list.contains(name)
            {
                list.push(name.clone());
            }
        }
        Ok(clients)
    }

    /// Ends one of the user's own sessions; another user's session is `NotFound`, exactly like a
    /// session that does not exist, so ids of others cannot be probed.
    pub async fn revoke_session(
        &self,
        context: &RequestContext,
        principal: &Principal,
        session: SessionId,
    ) -> Result<(), AuthError> {
        self.budgets.limit_read(context, principal).await?;
        if !self.sessions.revoke_session(principal.user, session, self.now()).await? {
            return Err(AuthError::NotFound);
        }
        let event =
            AuditEvent::new(EventType::SessionRevoked, Outcome::Success, context, self.now())
                .user(principal.user)
                .detail(format!("session {session}"));
        self.audit.record(event).await?;
        Ok(())
    }
}
