//! `/v1/auth/grants`: the apps a user has authorised, and revoking one, which forgets the
//! consent and ends every token of that app for the user.

use std::sync::Arc;

use serde::Serialize;

use super::registration::ClientSettings;
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, Budgets, Principal, RequestContext};
use crate::domain::{Clock, Timestamp, UserId};
use crate::store::{ClientStore, GrantStore, SessionCursor, SessionKind, SessionStore};

/// An app the user has authorised.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub client_id: String,
    pub client_name: String,
    /// Every scope the user has granted it.
    pub scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: Timestamp,
}

/// How many sessions are read at a time while ending a grant's.
const SESSIONS_PAGE: u32 = 100;

/// The user's grants: it holds the grants, the clients (for their names), the sessions (a
/// revoked grant's end), the budgets, the trail and the clock.
pub struct Grants {
    pub(in crate::auth) grants: Arc<dyn GrantStore>,
    pub(in crate::auth) clients: Arc<dyn ClientStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Grants {
    /// The caller's grants, oldest first; a grant to a client that no longer exists is not one.
    pub async fn list(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<Vec<GrantView>, AuthError> {
        self.budgets.limit_read(context, principal).await?;
        let mut views = Vec::new();
        for grant in self.grants.grants_of(principal.user).await? {
            let Some(record) = self.clients.client(&grant.client_id).await? else { continue };
            let name = ClientSettings::from_json(&record.registration)?.name;
            views.push(GrantView {
                client_id: grant.client_id,
                client_name: name,
                scopes: grant.scopes,
                created_at: grant.created_at,
                last_used_at: grant.last_used_at,
            });
        }
        Ok(views)
    }

    /// Forgets the caller's grant to `client_id` and ends every session of it: its access and
    /// refresh tokens stop working at once. `NotFound` when there is none.
    pub async fn revoke(
        &self,
        context: &RequestContext,
        principal: &Principal,
        client_id: &str,
    ) -> Result<(), AuthError> {
        self.budgets.limit_read(context, principal).await?;
        let forgotten = self.grants.delete_grant(principal.user, client_id).await?;
        let now = self.clock.now();
        let of_client = |kind: &SessionKind| kind.client() == Some(client_id);
        let ended =
            end_grant_sessions(self.sessions.as_ref(), principal.user, of_client, now).await?;
        if !forgotten && ended == 0 {
            return Err(AuthError::NotFound);
        }
        let event =
            AuditEvent::new(EventType::GrantRevoked, Outcome::Success, context, self.clock.now())
                .user(principal.user)
                .client(client_id)
                .detail(format!("{ended} sessions of the grant ended"));
        self.audit.record(event).await?;
        Ok(())
    }
}

/// Ends the user's sessions whose kind `ends` picks; how many. A user holds at most
/// `MAX_SESSIONS_PER_USER` sessions, read a page at a time.
pub(super) async fn end_grant_sessions(
    sessions: &dyn SessionStore,
    user: UserId,
    ends: impl Fn(&SessionKind) -> bool,
    now: Timestamp,
) -> Result<u64, AuthError> {
    let (mut ended, mut after) = (0, None);
    loop {
        let page = sessions.sessions_of(user, now, after.as_ref(), SESSIONS_PAGE).await?;
        for session in &page {
            if ends(&session.kind) && sessions.revoke_session(user, session.id, now).await? {
                ended += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == SESSIONS_PAGE as usize => {
                after = Some(SessionCursor { created_at: last.created_at, id: last.id });
            }
            _ => return Ok(ended),
        }
    }
}
