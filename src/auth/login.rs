//! Login: the path an attacker hits hardest, so every account, existing or not, costs the same.
//!
//! Steps, in order: refuse over-long passwords without hashing; look the user up; verify against
//! the stored hash or the dummy hash (OWASP Authentication Cheat Sheet, "Authentication and Error
//! Messages": same response, same time); on failure record it; on success re-hash if the
//! parameters changed, open a session, remember the device, record it.

use super::{AuthError, AuthService, RequestContext, TokenPair, tokens};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::{Email, Password, SessionId};
use crate::store::{NewSession, UserRecord};

impl AuthService {
    pub async fn login(
        &self,
        context: &RequestContext,
        email: &str,
        password: &str,
        device_token: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        let attempted = Email::normalise_key(email);
        let password = Password::new(password);
        if password.is_over_length_cap() {
            self.record_failed_login(context, &attempted, None, "password_too_long")
                .await;
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.find_user(email).await?;
        let verified = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let Some(user) = user.filter(|_| verified.matches) else {
            self.record_failed_login(context, &attempted, None, "invalid_credentials")
                .await;
            return Err(AuthError::InvalidCredentials);
        };
        if let Some(hash) = &verified.upgraded_hash {
            self.store_upgraded_hash(&user, hash).await;
        }
        let mut pair = self.open_session(context, &user).await?;
        pair.device_token = Some(self.remember_device(&user, device_token).await?);
        let event = AuditEvent::new(EventType::Login, Outcome::Success, context)
            .user(user.id)
            .email(user.email.as_str());
        self.audit.record(event).await;
        Ok(pair)
    }

    /// The account for a login attempt; an invalid address simply has none.
    async fn find_user(&self, email: &str) -> Result<Option<UserRecord>, AuthError> {
        match Email::parse(email) {
            Ok(email) => Ok(self.users.user_by_email(&email).await?),
            Err(_) => Ok(None),
        }
    }

    async fn record_failed_login(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<&UserRecord>,
        detail: &str,
    ) {
        let mut event = AuditEvent::new(EventType::LoginFailed, Outcome::Failure, context)
            .email(attempted)
            .detail(detail);
        event.user_id = user.map(|u| u.id);
        self.audit.record(event).await;
    }

    /// Creates a session with its first refresh token and signs its first access token.
    pub(super) async fn open_session(
        &self,
        context: &RequestContext,
        user: &UserRecord,
    ) -> Result<TokenPair, AuthError> {
        let now = crate::store::now();
        let refresh_token = tokens::random_token();
        let session = NewSession {
            id: SessionId::new(),
            user_id: user.id,
            refresh_token: tokens::hash_token(&refresh_token),
            created_at: now,
            expires_at: self.refresh_expiry(now)?,
            ip: context.ip.map(|ip| ip.to_string()),
            user_agent: context.user_agent.clone(),
        };
        self.sessions.create_session(&session).await?;
        self.token_pair(user.id, session.id, &user.roles, refresh_token, now)
    }

    /// Returns the presented device token if it is this user's, else a new remembered one.
    async fn remember_device(
        &self,
        user: &UserRecord,
        presented: Option<&str>,
    ) -> Result<String, AuthError> {
        if let Some(token) = presented.filter(|t| tokens::is_well_formed(t))
            && self
                .users
                .is_known_device(user.id, &tokens::hash_token(token))
                .await?
        {
            return Ok(token.to_owned());
        }
        let token = tokens::random_token();
        self.users
            .remember_device(user.id, &tokens::hash_token(&token), crate::store::now())
            .await?;
        Ok(token)
    }

    /// Replaces a hash made with old parameters. A failure only means it is tried next time.
    async fn store_upgraded_hash(&self, user: &UserRecord, hash: &str) {
        if let Err(error) = self.users.set_password_hash(user.id, hash).await {
            tracing::warn!(user_id = %user.id, %error, "could not upgrade a password hash");
        }
    }
}
