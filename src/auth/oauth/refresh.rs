//! The token endpoint's `refresh_token` grant for clients (RFC 6749 §6): rotation and reuse
//! detection exactly as `/v1/auth/refresh` does them, bound to the client whose grant it is,
//! with an optional narrower `scope`, and a new ID token when the scope holds `openid`.

use super::code::{Issued, client_tag};
use super::error::OAuthError;
use super::registration::GrantType;
use super::tokens::{AuthenticatedClient, ClientEndpoints, TokenResponse, parse_scope};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{RequestContext, tokens};
use crate::store::{Rotation, SessionKind, SessionRecord};

impl ClientEndpoints {
    /// `grant_type=refresh_token`.
    pub async fn refresh_for_client(
        &self,
        context: &RequestContext,
        client: &AuthenticatedClient,
        token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid =
            || OAuthError::invalid_grant("the refresh token is not valid for this client");
        if !client.settings.grant_types.contains(&GrantType::RefreshToken) {
            return Err(OAuthError::unauthorized_client("the client may not refresh"));
        }
        let (inner, tag) = token.rsplit_once('.').ok_or_else(invalid)?;
        // Not another client's: refused before it is rotated, so that it stays its owner's.
        if tag != client_tag(&client.client_id) {
            return Err(invalid());
        }
        let Some(Some(owner)) = tokens::refresh_token_owner(inner) else { return Err(invalid()) };
        // The grant is read first: a scope it does not hold is refused before the token is
        // spent. (A token already rotated finds nothing here, and its rotation below detects
        // the reuse.)
        let now = self.clock.now();
        let presented = tokens::hash_token(token);
        let current = self.sessions.session_of_refresh_token(Some(owner), &presented, now).await?;
        let grant_of = |kind: Option<SessionKind>| match kind {
            Some(SessionKind::Grant { client_id, scope, auth_time, .. })
                if client_id == client.client_id =>
            {
                Ok(Some((scope, auth_time)))
            }
            Some(_) => Err(invalid()),
            None => Ok(None),
        };
        let granted = grant_of(current.map(|record| record.kind))?;
        let narrowed = match (scope, &granted) {
            (Some(asked), Some((granted, _))) => Some(narrow(asked, granted)?),
            _ => None,
        };
        let (rotation, successor) =
            self.session_tokens.rotate_client_token(owner, token, tag).await?;
        let (session, user, amr) = match rotation {
            Rotation::Rotated { session, user, amr, .. }
            | Rotation::Grace { session, user, amr, .. } => (session, user, amr),
            Rotation::Reused { session, user } => {
                let event = AuditEvent::new(EventType::TokenReused, Outcome::Failure, context, now)
                    .user(user)
                    .client(&client.client_id)
                    .detail(format!("session {session} revoked"));
                self.audit.record(event).await?;
                return Err(invalid());
            }
            Rotation::Invalid => return Err(invalid()),
        };
        // A token within the reuse grace was read as rotated above: its grant is read now.
        let (granted, auth_time) = match granted {
            Some(granted) => granted,
            None => {
                let record = self.sessions.live_session(user, session, now).await?;
                grant_of(record.map(|r| r.kind))?.ok_or_else(invalid)?
            }
        };
        let scope = match (narrowed, scope) {
            (Some(narrowed), _) => narrowed,
            (None, Some(asked)) => narrow(asked, &granted)?,
            (None, None) => granted,
        };
        let account = self.users.user_by_id(user).await?;
        let Some(account) = account.filter(|u| !u.disabled) else { return Err(invalid()) };
        let issued = Issued { user: &account, session, scope, amr, auth_time, nonce: None };
        self.tokens_for(client, issued, Some(successor))
    }
}

impl ClientEndpoints {
    /// The live grant session of `token`, when it is a current refresh token of `client`'s.
    pub(super) async fn own_refresh_grant(
        &self,
        client: &AuthenticatedClient,
        token: &str,
    ) -> Result<Option<SessionRecord>, OAuthError> {
        let Some((inner, tag)) = token.rsplit_once('.') else { return Ok(None) };
        if tag != client_tag(&client.client_id) {
            return Ok(None);
        }
        let Some(Some(owner)) = tokens::refresh_token_owner(inner) else { return Ok(None) };
        let now = self.clock.now();
        let presented = tokens::hash_token(token);
        let record = self.sessions.session_of_refresh_token(Some(owner), &presented, now).await?;
        Ok(record.filter(|r| r.kind.client() == Some(client.client_id.as_str())))
    }
}

/// `asked`, when every scope of it was `granted` (RFC 6749 §6: a refresh may narrow, never
/// widen).
fn narrow(asked: &str, granted: &str) -> Result<String, OAuthError> {
    let asked = parse_scope(asked)?;
    let granted: Vec<&str> = granted.split(' ').collect();
    if let Some(bad) = asked.iter().find(|s| !granted.contains(s)) {
        return Err(OAuthError::invalid_scope(format!("scope {bad:?} was not granted")));
    }
    Ok(asked.join(" "))
}
