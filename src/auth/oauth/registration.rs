//! A client's registration as the admin API takes it and the store keeps it, with the contract's
//! defaults and rules: redirect URIs (`domain::check_redirect_uri`), grant types a client of its
//! type may use, scope tokens, PKCE always on for a public client.

use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::domain::check_redirect_uri;

/// The most redirect URIs (or post-logout redirect URIs) of one client.
pub const MAX_REDIRECT_URIS: usize = 20;
/// The most scopes of one client, and the longest scope.
const MAX_SCOPES: usize = 50;
const MAX_SCOPE_CHARS: usize = 100;
/// The longest client name, in characters.
const MAX_NAME_CHARS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    Confidential,
    Public,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    Required,
    Skip,
}

/// The algorithm of a client's ID tokens.
pub use crate::domain::SignatureAlg as IdTokenAlg;

/// Everything of a client but its id, secret and creation time: the client object's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientSettings {
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub require_pkce: bool,
    pub consent: Consent,
    pub id_token_signed_response_alg: IdTokenAlg,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
}

/// `POST /v1/admin/clients`: the client object's members; absent ones take the defaults.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: Option<ClientType>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    pub require_pkce: Option<bool>,
    pub consent: Option<Consent>,
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    pub backchannel_logout_uri: Option<String>,
}

/// `PATCH /v1/admin/clients/{client_id}`: the members present replace the client's; the type
/// stays what it was registered as.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    pub require_pkce: Option<bool>,
    pub consent: Option<Consent>,
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
}

impl NewClient {
    /// The settings this asks for, with the defaults, checked.
    pub fn into_settings(self) -> Result<ClientSettings, AuthError> {
        let client_type = self.client_type.unwrap_or(ClientType::Confidential);
        ClientSettings {
            name: self.name,
            client_type,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types: self
                .grant_types
                .unwrap_or(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scopes: self.scopes.unwrap_or_else(|| {
                ["openid", "profile", "email", "offline_access"].map(str::to_owned).to_vec()
            }),
            require_pkce: self.require_pkce.unwrap_or(true),
            consent: self.consent.unwrap_or(Consent::Required),
            id_token_signed_response_alg: self
                .id_token_signed_response_alg
                .unwrap_or(IdTokenAlg::Rs256),
            backchannel_logout_uri: self.backchannel_logout_uri,
        }
        .checked()
    }
}

impl ClientUpdate {
    /// `settings` with this update applied, checked.
    pub fn apply(self, settings: ClientSettings) -> Result<ClientSettings, AuthError> {
        ClientSettings {
            name: self.name.unwrap_or(settings.name),
            client_type: settings.client_type,
            redirect_uris: self.redirect_uris.unwrap_or(settings.redirect_uris),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .unwrap_or(settings.post_logout_redirect_uris),
            grant_types: self.grant_types.unwrap_or(settings.grant_types),
            scopes: self.scopes.unwrap_or(settings.scopes),
            require_pkce: self.require_pkce.unwrap_or(settings.require_pkce),
            consent: self.consent.unwrap_or(settings.consent),
            id_token_signed_response_alg: self
                .id_token_signed_response_alg
                .unwrap_or(settings.id_token_signed_response_alg),
            backchannel_logout_uri: self
                .backchannel_logout_uri
                .unwrap_or(settings.backchannel_logout_uri),
        }
        .checked()
    }
}

fn invalid(why: String) -> AuthError {
    AuthError::InvalidQuery(why)
}

impl ClientSettings {
    /// The settings if they keep every rule of the contract, with duplicates dropped.
    pub fn checked(mut self) -> Result<Self, AuthError> {
        self.name = self.name.trim().to_owned();
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || self.name.chars().any(char::is_control) {
            return Err(invalid(format!("name: 1 to {MAX_NAME_CHARS} characters, no controls")));
        }
        let public = self.client_type == ClientType::Public;
        for (member, uris) in [
            ("redirect_uris", &mut self.redirect_uris),
            ("post_logout_redirect_uris", &mut self.post_logout_redirect_uris),
        ] {
            dedup(uris);
            if uris.len() > MAX_REDIRECT_URIS {
                return Err(invalid(format!("{member}: at most {MAX_REDIRECT_URIS}")));
            }
            for uri in uris.iter() {
                check_redirect_uri(uri, public).map_err(|e| invalid(format!("{member}: {e}")))?;
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            check_redirect_uri(uri, false)
                .map_err(|e| invalid(format!("backchannel_logout_uri: {e}")))?;
        }
        self.check_grants(public)?;
        dedup(&mut self.scopes);
        if self.scopes.len() > MAX_SCOPES {
            return Err(invalid(format!("scopes: at most {MAX_SCOPES}")));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            let why = format!("scopes: {bad:?} is not a scope token (RFC 6749 §3.3)");
            return Err(invalid(why));
        }
        if public && !self.require_pkce {
            return Err(invalid("require_pkce: a public client always uses PKCE".to_owned()));
        }
        Ok(self)
    }

    fn check_grants(&mut self, public: bool) -> Result<(), AuthError> {
        dedup(&mut self.grant_types);
        let has = |grant| self.grant_types.contains(&grant);
        if self.grant_types.is_empty() {
            return Err(invalid("grant_types: at least one".to_owned()));
        }
        if public && has(GrantType::ClientCredentials) {
            let why = "grant_types: a public client cannot use client_credentials".to_owned();
            return Err(invalid(why));
        }
        if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
            let why = "grant_types: refresh_token comes with authorization_code".to_owned();
            return Err(invalid(why));
        }
        if has(GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            let why = "redirect_uris: authorization_code needs at least one".to_owned();
            return Err(invalid(why));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<String, AuthError> {
        serde_json::to_string(self).map_err(|e| AuthError::internal("encode a client", e))
    }

    pub fn from_json(json: &str) -> Result<Self, AuthError> {
        serde_json::from_str(json).map_err(|e| AuthError::internal("a stored client is corrupt", e))
    }
}

/// A scope token: `1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3), bounded.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_CHARS
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Drops repeated entries, keeping the first of each in its place.
fn dedup<T: PartialEq + Clone>(items: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(items.len());
    items.retain(|item| {
        let new = !seen.contains(item);
        if new {
            seen.push(item.clone());
        }
        new
    });
}

#[cfg(test)]
mod tests;
