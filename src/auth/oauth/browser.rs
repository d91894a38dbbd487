//! The browser's sign-in session: a cookie of 256 random bits, stored only as a hash, that
//! stands for one session of the account. It is live while that session is: a logout,
//! logout-all, password change or reset, a disable or deletion ends the session, and with it
//! the cookie, without anything here knowing of them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::grants::end_grant_sessions;
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, RequestContext, tokens};
use crate::domain::{Amr, Clock, SessionId, Timestamp, UserId, chrono_duration};
use crate::store::{SessionKind, SessionStore, Taken, TicketKind, TicketStore};

/// Who a browser is signed in as, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub user: UserId,
    pub session: SessionId,
    /// When the session's login happened (OpenID Connect Core's `auth_time`).
    pub auth_time: Timestamp,
    pub amr: Amr,
}

/// What the cookie's ticket holds.
#[derive(Serialize, Deserialize)]
struct Bound {
    user: UserId,
    session: SessionId,
}

/// The browsers' sign-in sessions.
pub struct BrowserSessions {
    pub(in crate::auth) tickets: Arc<dyn TicketStore>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    /// How long a session lasts at most: the cookie lasts no longer.
    pub(in crate::auth) lifetime: Duration,
}

impl BrowserSessions {
    /// Binds a new cookie to the session a login just opened; returns the cookie's value. A new
    /// value at every login, so a value planted before it (session fixation) signs in no one.
    pub async fn start(&self, (user, session): (UserId, SessionId)) -> Result<String, AuthError> {
        let secret = tokens::random_token();
        let value = serde_json::to_vec(&Bound { user, session })
            .map_err(|e| AuthError::Internal(e.into()))?;
        let now = self.clock.now();
        let keep_until = now + chrono_duration(self.lifetime);
        let key = tokens::hash_token(&secret);
        self.tickets.put_ticket(TicketKind::Browser, &key, &value, keep_until, now).await?;
        Ok(secret)
    }

    /// Who the cookie signs in, while its session is live.
    pub async fn current(&self, cookie: Option<&str>) -> Result<Option<SignedIn>, AuthError> {
        let Some(cookie) = cookie.filter(|c| tokens::is_well_formed(c)) else { return Ok(None) };
        let now = self.clock.now();
        let key = tokens::hash_token(cookie);
        let Some(value) = self.tickets.read_ticket(TicketKind::Browser, &key, now).await? else {
            return Ok(None);
        };
        let Ok(bound) = serde_json::from_slice::<Bound>(&value) else { return Ok(None) };
        let session = self.sessions.live_session(bound.user, bound.session, now).await?;
        Ok(session.filter(|s| s.user_id == bound.user).map(|s| SignedIn {
            user: bound.user,
            session: bound.session,
            auth_time: s.created_at,
            amr: s.amr,
        }))
    }

    /// Ends the cookie and the session it stands for (a sign-out, recorded as a logout), and
    /// the grants it made without `offline_access`.
    pub async fn end(
        &self,
        context: &RequestContext,
        cookie: &str,
    ) -> Result<Option<SignedIn>, AuthError> {
        let signed_in = self.current(Some(cookie)).await?;
        let now = self.clock.now();
        let key = tokens::hash_token(cookie);
        if let Taken::First(_) = self.tickets.take_ticket(TicketKind::Browser, &key, now).await?
            && let Some(who) = signed_in
            && self.sessions.revoke_session(who.user, who.session, now).await?
        {
            let made_here = |kind: &SessionKind| match kind {
                SessionKind::Grant { parent, scope, .. } => {
                    *parent == Some(who.session) && !scope.split(' ').any(|s| s == "offline_access")
                }
                _ => false,
            };
            let grants =
                end_grant_sessions(self.sessions.as_ref(), who.user, made_here, now).await?;
            let event = AuditEvent::new(EventType::Logout, Outcome::Success, context, now)
                .user(who.user)
                .detail(format!(
                    "browser session {} ended with {grants} of its grants",
                    who.session
                ));
            self.audit.record(event).await?;
        }
        Ok(signed_in)
    }
}
