//! Revocation (RFC 7009): a client ends the grant a refresh or access token of its own belongs
//! to. Any other token (unknown, expired, another client's) is left alone with the same answer,
//! so a client learns nothing of the tokens others hold.

use super::error::OAuthError;
use super::tokens::{AuthenticatedClient, ClientEndpoints};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::RequestContext;
use crate::domain::{SessionId, UserId};

impl ClientEndpoints {
    /// Ends the session of the grant `token` belongs to, when it is `client`'s.
    pub async fn revoke(
        &self,
        context: &RequestContext,
        client: &AuthenticatedClient,
        token: &str,
    ) -> Result<(), OAuthError> {
        let (user, session) = match self.own_refresh_grant(client, token).await? {
            Some(record) => (record.user_id, record.id),
            None => {
                let Some(claims) = self.access.introspect(token) else { return Ok(()) };
                if claims.client_id != client.client_id {
                    return Ok(());
                }
                let (Some(user), Some(session)) =
                    (UserId::parse(&claims.sub), claims.sid.as_deref().and_then(SessionId::parse))
                else {
                    return Ok(());
                };
                (user, session)
            }
        };
        let now = self.clock.now();
        if self.sessions.revoke_session(user, session, now).await? {
            let event = AuditEvent::new(EventType::SessionRevoked, Outcome::Success, context, now)
                .user(user)
                .client(&client.client_id)
                .detail("revoked by the client (RFC 7009)");
            self.audit.record(event).await?;
        }
        Ok(())
    }
}
