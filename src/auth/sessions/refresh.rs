//! Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).

use super::Sessions;
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, RequestContext, TokenPair, tokens};
use crate::domain::{Amr, SessionId, UserId};
use crate::store::Rotation;

impl Sessions {
    /// Exchanges a refresh token for a new pair. A token that was already rotated revokes its
    /// whole session, unless it comes back within the reuse grace while its successor is unused:
    /// then it gets that same successor again.
    pub async fn refresh(
        &self,
        context: &RequestContext,
        refresh_token: &str,
    ) -> Result<TokenPair, AuthError> {
        self.budgets.limit_credential_request(context, None).await?;
        let owner = tokens::refresh_token_owner(refresh_token).ok_or(AuthError::InvalidToken)?;
        let now = self.now();
        let successor = self.successors.successor(owner, refresh_token);
        let rotation = self
            .sessions
            .rotate_refresh_token(
                owner,
                &tokens::hash_token(refresh_token),
                &tokens::hash_token(&successor),
                now,
                self.refresh_expiry(now)?,
                self.settings.refresh_reuse_grace,
            )
            .await?;
        match rotation {
            Rotation::Rotated { session, user, amr, login_at } => {
                self.record_refresh(context, user, session, "rotated").await?;
                self.pair_for_session(user, session, (amr, login_at), successor, now).await
            }
            Rotation::Grace { session, user, amr, login_at } => {
                self.record_refresh(context, user, session, "reuse_grace").await?;
                self.pair_for_session(user, session, (amr, login_at), successor, now).await
            }
            Rotation::Reused { session, user } => {
                let event =
                    AuditEvent::new(EventType::TokenReused, Outcome::Failure, context, self.now())
                        .user(user)
                        .detail(format!("session {session} revoked"));
                self.audit.record(event).await?;
                Err(AuthError::TokenReused)
            }
            Rotation::Invalid => Err(AuthError::InvalidToken),
        }
    }

    /// Rotates a refresh token of an OAuth client's grant: the same rotation and reuse
    /// detection as `refresh`, with a successor that keeps the client's `tag`. Returns what the
    /// rotation found and the successor.
    pub(in crate::auth) async fn rotate_client_token(
        &self,
        owner: UserId,
        presented: &str,
        tag: &str,
    ) -> Result<(Rotation, String), AuthError> {
        let now = self.now();
        let successor = format!("{}.{tag}", self.successors.successor(Some(owner), presented));
        let rotation = self
            .sessions
            .rotate_refresh_token(
                Some(owner),
                &tokens::hash_token(presented),
                &tokens::hash_token(&successor),
                now,
                self.refresh_expiry(now)?,
                self.settings.refresh_reuse_grace,
            )
            .await?;
        Ok((rotation, successor))
    }

    async fn pair_for_session(
        &self,
        user: UserId,
        session: SessionId,
        (amr, login_at): (Amr, crate::store::Timestamp),
        refresh_token: String,
        now: crate::store::Timestamp,
    ) -> Result<TokenPair, AuthError> {
        // Roles are read afresh, so a role change shows in the next access token; the methods
        // are the session's, as its login proved them.
        let record = self.users.user_by_id(user).await?;
        let record = record.filter(|u| !u.disabled).ok_or(AuthError::InvalidToken)?;
        self.token_pair(user, session, &record.roles, (amr, login_at), refresh_token, now)
    }

    async fn record_refresh(
        &self,
        context: &RequestContext,
        user: UserId,
        session: SessionId,
        how: &str,
    ) -> Result<(), AuthError> {
        let event = AuditEvent::new(EventType::TokenRefresh, Outcome::Success, context, self.now())
            .user(user)
            .detail(format!("session {session} {how}"));
        Ok(self.audit.record(event).await?)
    }
}
