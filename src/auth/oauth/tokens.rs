//! The endpoints a client calls with its own credentials (RFC 6749 §2.3): the token endpoint's
//! `client_credentials` grant, and introspection (RFC 7662).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::error::OAuthError;
use super::registration::{ClientSettings, ClientType, GrantType};
use super::request::AuthorizationRequest;
use crate::audit::Audit;
use crate::auth::{AuthError, Budgets, Passwords, RequestContext, tokens};
use crate::crypto::AccessTokens;
use crate::domain::{Clock, SessionId, UserId};
use crate::store::{
    ClientRecord, ClientStore, SessionKind, SessionStore, TicketKind, TicketStore, UserStore,
};

/// The longest client secret checked: a longer one is wrong without any hashing.
const MAX_SECRET_CHARS: usize = 512;

/// The scopes that concern a user, which a client acting for itself is never granted.
const USER_SCOPES: [&str; 2] = ["openid", "offline_access"];

/// What a client presented to authenticate: its id, and its secret unless it is public.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<SecretString>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .finish()
    }
}

/// A client whose credentials checked out.
#[derive(Debug)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub settings: ClientSettings,
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub scope: String,
    /// With scope `openid`: the ID token (OpenID Connect Core §3.1.3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// An introspection answer (RFC 7662 §2.2): only `active` for a token that is not live.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What `/oauth2/par` answers (RFC 9126 §2.2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PushedRequest {
    /// `urn:ietf:params:oauth:request_uri:` and a secret of 256 random bits.
    pub request_uri: String,
    /// Seconds the `request_uri` may be used in.
    pub expires_in: u64,
}

impl std::fmt::Debug for PushedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushedRequest")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The prefix of a pushed request's `request_uri` (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request may be used (the contract's 60 s).
pub const PUSHED_REQUEST_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The client-authenticated endpoints: it holds the client registry, the hasher (for the
/// Argon2id secrets of `CLIENTS_FILE`), the access tokens, the sessions (an introspected
/// token is live only while its session is), the budgets and the clock.
pub struct ClientEndpoints {
    pub(in crate::auth) clients: Arc<dyn ClientStore>,
    pub(in crate::auth) tickets: Arc<dyn TicketStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) access: Arc<AccessTokens>,
    pub(in crate::auth) sessions: Arc<dyn SessionStore>,
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) grants: GrantSettings,
    /// The rotation of refresh tokens, shared with the first party's.
    pub(in crate::auth) session_tokens: Arc<crate::auth::Sessions>,
}

/// What the sessions of a client's grant last, and how many a user may hold.
#[derive(Clone, Copy, Debug)]
pub struct GrantSettings {
    /// `SESSION_LIFETIME`.
    pub lifetime: std::time::Duration,
    /// `REFRESH_TOKEN_TTL`.
    pub refresh_token_ttl: std::time::Duration,
    pub max_sessions_per_user: u32,
}

impl ClientEndpoints {
    /// RFC 6749 §2.3: the client the credentials name. Every request takes from its address's
    /// budget; a check against a secret an operator chose (an Argon2id hash of `CLIENTS_FILE`,
    /// which may be weak and costs a hash) first takes from the address's budget of
    /// credentials, as a login does, and so does every failure; only an authenticated client
    /// takes from its own budget, so that no stranger can spend it. A confidential client must
    /// send its secret (or, within a rotation's overlap, the previous one); a public client
    /// sends none. Every failure reads the same, so the answer does not tell which clients
    /// exist.
    pub async fn authenticate(
        &self,
        context: &RequestContext,
        credentials: ClientCredentials,
    ) -> Result<AuthenticatedClient, OAuthError> {
        self.budgets.limit_client_address(context).await?;
        let record = self.clients.client(&credentials.client_id).await?;
        let chosen_secret = record.as_ref().is_some_and(|record| {
            let mut hashes =
                record.secret_hash.iter().chain(record.previous_secret.iter().map(|(h, _)| h));
            hashes.any(|hash| hash.starts_with("$argon2id$"))
        });
        if chosen_secret {
            self.budgets.limit_credential_request(context, None).await?;
        }
        let verdict = match record {
            None => None,
            Some(record) => self
                .check(&record, credentials.secret.as_ref())
                .await?
                .map(|settings| AuthenticatedClient { client_id: record.client_id, settings }),
        };
        match verdict {
            Some(client) => {
                self.budgets.limit_client(context, &client.client_id).await?;
                Ok(client)
            }
            None => {
                if !chosen_secret {
                    self.budgets.limit_credential_request(context, None).await?;
                }
                Err(OAuthError::InvalidClient("client authentication failed"))
            }
        }
    }

    async fn check(
        &self,
        record: &ClientRecord,
        secret: Option<&SecretString>,
    ) -> Result<Option<ClientSettings>, OAuthError> {
        let settings = ClientSettings::from_json(&record.registration)?;
        let verdict = match (settings.client_type, secret) {
            (ClientType::Public, None) => Some(settings),
            (ClientType::Public, Some(_)) | (ClientType::Confidential, None) => None,
            (ClientType::Confidential, Some(secret)) => {
                self.secret_matches(record, secret.expose_secret()).await?.then_some(settings)
            }
        };
        Ok(verdict)
    }

    /// The current secret, or the previous one until its overlap ends. Every stored hash that
    /// applies is checked, so the time taken says nothing of which one matched.
    async fn secret_matches(
        &self,
        record: &ClientRecord,
        secret: &str,
    ) -> Result<bool, OAuthError> {
        if secret.chars().count() > MAX_SECRET_CHARS {
            return Ok(false);
        }
        let now = self.clock.now();
        let previous = record.previous_secret.iter().filter(|(_, until)| *until > now);
        let hashes = record.secret_hash.iter().chain(previous.map(|(hash, _)| hash));
        let mut matched = false;
        for stored in hashes {
            matched |= self.hash_matches(stored, secret).await?;
        }
        Ok(matched)
    }

    async fn hash_matches(&self, stored: &str, secret: &str) -> Result<bool, OAuthError> {
        if let Some(digest) = stored.strip_prefix("sha256:") {
            let presented = URL_SAFE_NO_PAD.encode(tokens::hash_token(secret).0);
            return Ok(presented.as_bytes().ct_eq(digest.as_bytes()).into());
        }
        if stored.starts_with("$argon2id$") {
            return Ok(self.passwords.matches_hash(secret, stored).await?);
        }
        Ok(false)
    }

    /// `grant_type=client_credentials`: an access token for the client itself, with the scopes
    /// asked for (each among the client's, none of a user's) or, without `scope`, all of the
    /// client's scopes that are not a user's.
    pub fn client_credentials(
        &self,
        client: &AuthenticatedClient,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let settings = &client.settings;
        if settings.client_type != ClientType::Confidential
            || !settings.grant_types.contains(&GrantType::ClientCredentials)
        {
            let why = "the client may not use the client_credentials grant";
            return Err(OAuthError::unauthorized_client(why));
        }
        let granted: Vec<&str> = match scope {
            None => settings
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| !USER_SCOPES.contains(s))
                .collect(),
            Some(asked) => {
                let asked = parse_scope(asked)?;
                if let Some(bad) = asked
                    .iter()
                    .find(|s| USER_SCOPES.contains(s) || !settings.scopes.iter().any(|c| c == *s))
                {
                    let why = format!("scope {bad:?} is not granted to this client on its own");
                    return Err(OAuthError::invalid_scope(why));
                }
                asked
            }
        };
        let scope = granted.join(" ");
        let (access_token, ttl) =
            self.access.issue_for_client(&client.client_id, &scope, self.clock.now())?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl.as_secs(),
            scope,
            id_token: None,
            refresh_token: None,
        })
    }

    /// RFC 9126: checks the authorization request as `/oauth2/authorize` would, and keeps it
    /// for `PUSHED_REQUEST_TTL` under a single-use `request_uri`.
    pub async fn push_request<'a>(
        &self,
        client: &AuthenticatedClient,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<PushedRequest, OAuthError> {
        if get("request_uri").is_some() {
            return Err(OAuthError::invalid_request("request_uri is not pushed: it is answered"));
        }
        let request = AuthorizationRequest::check(&client.client_id, &client.settings, get)
            .map_err(|e| e.into_oauth())?;
        let value = serde_json::to_vec(&request).map_err(|e| AuthError::Internal(e.into()))?;
        let secret = tokens::random_token();
        let now = self.clock.now();
        let keep_until = now + crate::domain::chrono_duration(PUSHED_REQUEST_TTL);
        let key = tokens::hash_token(&secret);
        self.tickets.put_ticket(TicketKind::PushedRequest, &key, &value, keep_until, now).await?;
        Ok(PushedRequest {
            request_uri: format!("{REQUEST_URI_PREFIX}{secret}"),
            expires_in: PUSHED_REQUEST_TTL.as_secs(),
        })
    }

    /// RFC 7662: whether `token` is a live access token, or a live refresh token of the asking
    /// client's own, and what it says. Only a confidential client may ask. A token of a user is
    /// live while its session is.
    pub async fn introspect(
        &self,
        client: &AuthenticatedClient,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        if client.settings.client_type != ClientType::Confidential {
            return Err(OAuthError::InvalidClient("a public client may not introspect"));
        }
        if let Some(record) = self.own_refresh_grant(client, token).await? {
            let SessionKind::Grant { scope, .. } = record.kind else {
                return Ok(Introspection::default());
            };
            return Ok(Introspection {
                active: true,
                scope: Some(scope),
                client_id: Some(client.client_id.clone()),
                sub: Some(record.user_id.to_string()),
                iss: Some(self.access.issuer().to_owned()),
                token_type: Some("refresh_token"),
                sid: Some(record.id.to_string()),
                ..Introspection::default()
            });
        }
        let Some(claims) = self.access.introspect(token) else {
            return Ok(Introspection::default());
        };
        // A client's token lives as long as its client (the first party's, as long as the
        // service); a user's, as long as its session too.
        let first_party = claims.client_id == self.access.first_party();
        if !first_party && self.clients.client(&claims.client_id).await?.is_none() {
            return Ok(Introspection::default());
        }
        if let Some(sid) = &claims.sid {
            let (Some(user), Some(session)) = (UserId::parse(&claims.sub), SessionId::parse(sid))
            else {
                return Ok(Introspection::default());
            };
            if self.sessions.live_session(user, session, self.clock.now()).await?.is_none() {
                return Ok(Introspection::default());
            }
        }
        Ok(Introspection {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            token_type: Some("Bearer"),
            sid: claims.sid,
        })
    }
}

/// A `scope` parameter (RFC 6749 §3.3): space-separated tokens of visible ASCII but `"` and
/// `\`, each once; an empty one is refused.
pub(super) fn parse_scope(scope: &str) -> Result<Vec<&str>, OAuthError> {
    let tokens: Vec<&str> = scope.split(' ').collect();
    let well_formed = |token: &&str| {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    };
    if !tokens.iter().all(well_formed) {
        return Err(OAuthError::invalid_scope("scope: space-separated scope tokens"));
    }
    let mut unique = Vec::with_capacity(tokens.len());
    for token in tokens {
        if !unique.contains(&token) {
            unique.push(token);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::parse_scope;

    #[test]
    fn scopes_are_space_separated_tokens() {
        assert_eq!(parse_scope("read write").unwrap(), ["read", "write"]);
        assert_eq!(parse_scope("b a b").unwrap(), ["b", "a"]);
        for bad in ["", " read", "read  write", "read\twrite", "a\"b", "a\\b", "é"] {
            assert!(parse_scope(bad).is_err(), "{bad:?}");
        }
    }
}
