//! The token endpoint's `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6, OpenID
//! Connect Core §3.1.3) and the userinfo endpoint (§5.3).
//!
//! A code is taken once: of any number of concurrent redemptions exactly one gets tokens. A
//! redemption that finds the code already taken ends the session the first one opened (RFC 6749
//! §4.1.2: a code used twice revokes what it issued); a marker left for it closes the window
//! where the replay comes before the first redemption has opened that session.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::authorize::CodeGrant;
use super::error::OAuthError;
use super::registration::GrantType;
use super::request::is_pkce_value;
use super::tokens::{AuthenticatedClient, ClientEndpoints, TokenResponse};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, RequestContext, tokens};
use crate::crypto::{Delegation, access_token_hash};
use crate::domain::{Amr, SessionId, UserId, chrono_duration};
use crate::store::{NewSession, SessionKind, StoreError, Taken, TicketKind, TokenHash, UserRecord};

/// How long the marker of a replayed code is kept: as long as the code itself is.
const REPLAY_MARKER_KEPT: Duration = Duration::from_secs(3_600);

/// What a grant's tokens are issued for.
pub(super) struct Issued<'a> {
    pub user: &'a UserRecord,
    /// The grant's session: the tokens' `sid`.
    pub session: SessionId,
    pub scope: String,
    pub amr: Amr,
    pub auth_time: crate::domain::Timestamp,
    pub nonce: Option<&'a str>,
}

/// A refresh token of `user`'s grant to `client_id`: the first party's form, then a tag of the
/// client. `/v1/auth/refresh` refuses it for its shape before any lookup, and another client
/// presenting it is refused for its tag before it is rotated.
pub(super) fn client_refresh_token(user: UserId, client_id: &str) -> String {
    format!("{}.{}", tokens::new_refresh_token(user), client_tag(client_id))
}

/// The tag of a client's refresh tokens: 128 bits of a hash of its id.
pub(super) fn client_tag(client_id: &str) -> String {
    let digest = Sha256::new_with_prefix(b"portcullis client refresh token\0")
        .chain_update(client_id.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1).
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: String,
    amr: Vec<&'static str>,
    at_hash: String,
    #[serde(flatten)]
    profile: UserClaims,
}

/// What the scopes `email` and `profile` disclose, in ID tokens and at userinfo.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl UserClaims {
    fn of(user: &UserRecord, scopes: &[impl AsRef<str>]) -> Self {
        let has = |scope: &str| scopes.iter().any(|s| s.as_ref() == scope);
        let mut claims = Self::default();
        if has("email") {
            claims.email = Some(user.email.as_str().to_owned());
            claims.email_verified = Some(user.email_verified);
        }
        if has("profile") {
            claims.name.clone_from(&user.name);
        }
        claims
    }
}

/// The userinfo answer: the subject and what the token's scopes disclose.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub sub: String,
    #[serde(flatten)]
    pub claims: UserClaims,
}

/// Why userinfo refused a token (RFC 6750 §3.1).
#[derive(Debug)]
pub enum UserInfoError {
    /// Expired, revoked, malformed: 401 `invalid_token`.
    InvalidToken,
    /// Over the address's budget: 429.
    RateLimited(std::time::Duration),
    /// A token without `openid`: 403 `insufficient_scope`.
    InsufficientScope,
    Failed(AuthError),
}

impl<E: Into<AuthError>> From<E> for UserInfoError {
    fn from(error: E) -> Self {
        match error.into() {
            AuthError::RateLimited { retry_after, .. } => Self::RateLimited(retry_after),
            other => Self::Failed(other),
        }
    }
}

impl ClientEndpoints {
    /// `grant_type=authorization_code`.
    pub async fn redeem_code(
        &self,
        context: &RequestContext,
        client: &AuthenticatedClient,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let unknown = || OAuthError::invalid_grant("the code is unknown, expired or already used");
        if !tokens::is_well_formed(code) {
            return Err(unknown());
        }
        let now = self.clock.now();
        let grant =
            match self.tickets.take_ticket(TicketKind::Code, &tokens::hash_token(code), now).await?
            {
                Taken::Missing => return Err(unknown()),
                Taken::Again(value) => {
                    if let Ok(grant) = serde_json::from_slice::<CodeGrant>(&value)
                        && grant.request.client_id == client.client_id
                    {
                        self.end_replayed(context, &grant).await?;
                    }
                    return Err(unknown());
                }
                Taken::First(value) => serde_json::from_slice::<CodeGrant>(&value)
                    .map_err(|e| AuthError::Internal(e.into()))?,
            };
        let request = &grant.request;
        if grant.expires_at <= now || request.client_id != client.client_id {
            return Err(unknown());
        }
        if redirect_uri != Some(request.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        check_verifier(request.code_challenge.as_deref(), verifier)?;
        let user = self.users.user_by_id(grant.user).await?;
        let Some(user) = user.filter(|u| !u.disabled) else { return Err(unknown()) };
        let amr = Amr::from_column(&grant.amr);
        let offline = request.scopes.iter().any(|s| s == "offline_access")
            && client.settings.grant_types.contains(&GrantType::RefreshToken);
        let refresh_token = offline.then(|| client_refresh_token(user.id, &client.client_id));
        self.open_grant_session(context, &grant, amr, refresh_token.as_deref()).await?;
        let issued = Issued {
            user: &user,
            session: grant.grant_session,
            scope: request.scopes.join(" "),
            amr,
            auth_time: grant.auth_time,
            nonce: request.nonce.as_deref(),
        };
        self.tokens_for(client, issued, refresh_token)
    }

    /// The access token and, with scope `openid`, the ID token of a grant.
    pub(super) fn tokens_for(
        &self,
        client: &AuthenticatedClient,
        issued: Issued<'_>,
        refresh_token: Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
        let delegation = Delegation {
            client_id: &client.client_id,
            scope: &issued.scope,
            amr: issued.amr,
            auth_time: issued.auth_time,
        };
        let access_token =
            self.access.issue_delegated(issued.user.id, issued.session, &delegation, now)?;
        let id_token = if issued.scope.split(' ').any(|s| s == "openid") {
            Some(self.id_token(client, &issued, &access_token)?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.access.ttl().as_secs(),
            scope: issued.scope,
            id_token,
            refresh_token,
        })
    }

    /// Opens the session the code's tokens belong to, unless a replay came first. With a
    /// refresh token (`offline_access`) it lasts as a login's session does; without, as long as
    /// its access token.
    async fn open_grant_session(
        &self,
        context: &RequestContext,
        grant: &CodeGrant,
        amr: Amr,
        refresh_token: Option<&str>,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        // Without one to hand out, the session's refresh token is one nobody holds.
        let refresh = refresh_token.map_or_else(
            || tokens::hash_token(&tokens::new_refresh_token(grant.user)),
            tokens::hash_token,
        );
        let lasts = match refresh_token {
            Some(_) => self.grants.refresh_token_ttl,
            None => self.access.ttl(),
        };
        let session = NewSession {
            id: grant.grant_session,
            user_id: grant.user,
            refresh_token: refresh,
            created_at: now,
            expires_at: now + chrono_duration(lasts),
            ends_at: now + chrono_duration(self.grants.lifetime),
            device: None,
            ip: context.ip.map(|ip| ip.to_string()),
            user_agent: context.user_agent.clone(),
            amr,
            kind: SessionKind::Grant {
                client_id: grant.request.client_id.clone(),
                scope: grant.request.scopes.join(" "),
                parent: Some(grant.browser_session),
                auth_time: grant.auth_time,
            },
        };
        self.sessions.create_session(&session, self.grants.max_sessions_per_user).await?;
        let marker = replay_marker(grant.grant_session);
        // A replay that came first has already ended what this redemption issues: the one
        // redemption that took the code still answers, with tokens that are dead at once.
        if self.tickets.read_ticket(TicketKind::Code, &marker, now).await?.is_some() {
            self.sessions.revoke_session(grant.user, grant.grant_session, now).await?;
        }
        Ok(())
    }

    /// A second redemption: the session the first opened ends, and the replay is recorded.
    async fn end_replayed(
        &self,
        context: &RequestContext,
        grant: &CodeGrant,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let keep_until = now + chrono_duration(REPLAY_MARKER_KEPT);
        let marker = replay_marker(grant.grant_session);
        match self.tickets.put_ticket(TicketKind::Code, &marker, b"replayed", keep_until, now).await
        {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(error) => return Err(error.into()),
        }
        self.sessions.revoke_session(grant.user, grant.grant_session, now).await?;
        let event =
            AuditEvent::new(EventType::AuthorizationCodeReused, Outcome::Failure, context, now)
                .user(grant.user)
                .client(&grant.request.client_id)
                .detail("the tokens the code issued are revoked");
        self.audit.record(event).await?;
        Ok(())
    }

    fn id_token(
        &self,
        client: &AuthenticatedClient,
        issued: &Issued<'_>,
        access_token: &str,
    ) -> Result<String, OAuthError> {
        let alg = client.settings.id_token_signed_response_alg;
        let iat = self.clock.now().timestamp();
        let ttl = i64::try_from(self.access.ttl().as_secs()).unwrap_or(i64::MAX);
        let scopes: Vec<&str> = issued.scope.split(' ').collect();
        let claims = IdTokenClaims {
            iss: self.access.issuer(),
            sub: issued.user.id.to_string(),
            aud: &client.client_id,
            azp: &client.client_id,
            exp: iat.saturating_add(ttl),
            iat,
            auth_time: issued.auth_time.timestamp(),
            nonce: issued.nonce,
            sid: issued.session.to_string(),
            amr: issued.amr.names(),
            at_hash: access_token_hash(alg, access_token),
            profile: UserClaims::of(issued.user, &scopes),
        };
        Ok(self.access.sign_id_token(alg, &claims)?)
    }

    /// `/oauth2/userinfo`: the claims a live access token with scope `openid` may read. Every
    /// request takes from its address's budget (as large as the reads').
    pub async fn userinfo(
        &self,
        context: &RequestContext,
        bearer: &str,
    ) -> Result<UserInfo, UserInfoError> {
        self.budgets.limit_client_address(context).await?;
        let claims = self.access.introspect(bearer).ok_or(UserInfoError::InvalidToken)?;
        let (Some(user), Some(session)) =
            (UserId::parse(&claims.sub), claims.sid.as_deref().and_then(SessionId::parse))
        else {
            return Err(UserInfoError::InvalidToken);
        };
        let now = self.clock.now();
        if self.sessions.live_session(user, session, now).await?.is_none() {
            return Err(UserInfoError::InvalidToken);
        }
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        if !scopes.contains(&"openid") {
            return Err(UserInfoError::InsufficientScope);
        }
        // A deleted client's tokens end with it.
        if self.clients.client(&claims.client_id).await?.is_none() {
            return Err(UserInfoError::InvalidToken);
        }
        let record = self.users.user_by_id(user).await?;
        let Some(record) = record.filter(|u| !u.disabled) else {
            return Err(UserInfoError::InvalidToken);
        };
        Ok(UserInfo { sub: record.id.to_string(), claims: UserClaims::of(&record, &scopes) })
    }
}

/// RFC 7636 §4.6 with RFC 9700 §4.8.2: a challenge needs its verifier, and a verifier for a
/// code issued without a challenge is refused (a PKCE downgrade).
fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            Err(OAuthError::invalid_grant("code_verifier for a code issued without a challenge"))
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            if !is_pkce_value(verifier) {
                return Err(OAuthError::invalid_grant("code_verifier: 43 to 128 characters"));
            }
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant("code_verifier does not match the challenge"))
            }
        }
    }
}

/// The key of the marker a replay of the code of `grant_session` leaves.
fn replay_marker(grant_session: SessionId) -> TokenHash {
    tokens::hash_token(&format!("replayed code of {grant_session}"))
}

#[cfg(test)]
mod tests {
    use super::check_verifier;

    #[test]
    fn the_verifier_matches_its_s256_challenge() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_verifier(Some(challenge), Some(verifier)).is_ok());
        assert!(check_verifier(Some(challenge), Some(&verifier.replace('d', "e"))).is_err());
        assert!(check_verifier(Some(challenge), None).is_err());
        assert!(check_verifier(None, Some(verifier)).is_err());
        assert!(check_verifier(None, None).is_ok());
    }
}
