//! An authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2.1), checked
//! once against its client, the same way whether it arrives at `/oauth2/par` or at
//! `/oauth2/authorize`.

use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::registration::{ClientSettings, ClientType, GrantType};
use super::tokens::parse_scope;
use crate::domain::redirect_uri_matches;

/// The longest `state`, `nonce`, `login_hint` or `ui_locales` taken: each is echoed or stored,
/// so each is bounded.
const MAX_PARAMETER_CHARS: usize = 1_024;

/// How the code reaches the client (OAuth 2.0 Multiple Response Types; Form Post Response Mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// What `prompt` asks of the user (OpenID Connect Core §3.1.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    None,
    Login,
    Consent,
    SelectAccount,
}

/// A request that passed every check: what the code, once issued, is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The S256 challenge of RFC 7636.
    pub code_challenge: Option<String>,
    pub response_mode: ResponseMode,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub ui_locales: Option<String>,
}

/// Why a request was refused: before its redirect URI is known to be the client's (the
/// browser must then never be sent there), or after (the error goes back to the client, at
/// its redirect URI, with its state, in its response mode, once `/oauth2/authorize` answers
/// browsers; `/oauth2/par` answers the client directly).
#[derive(Debug)]
#[allow(dead_code)] // the redirect's parts are read by the authorization endpoint's answer
pub enum RequestError {
    Untrusted(&'static str),
    Refused { error: OAuthError, redirect_uri: String, state: Option<String>, mode: ResponseMode },
}

impl RequestError {
    /// The error as a client that called directly (PAR) is answered.
    pub fn into_oauth(self) -> OAuthError {
        match self {
            Self::Untrusted(why) => OAuthError::invalid_request(why),
            Self::Refused { error, .. } => error,
        }
    }
}

impl AuthorizationRequest {
    /// Checks the parameters `get` gives against the client's registration.
    pub fn check<'a>(
        client_id: &str,
        client: &ClientSettings,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, RequestError> {
        let public = client.client_type == ClientType::Public;
        let redirect_uri =
            get("redirect_uri").ok_or(RequestError::Untrusted("redirect_uri is required"))?;
        if !client.redirect_uris.iter().any(|r| redirect_uri_matches(r, redirect_uri, public)) {
            return Err(RequestError::Untrusted("redirect_uri is not registered for this client"));
        }
        let state = bounded(get("state"), "state").map_err(|e| RequestError::Refused {
            error: e,
            redirect_uri: redirect_uri.to_owned(),
            state: None,
            mode: ResponseMode::Query,
        })?;
        let mode = match get("response_mode") {
            None | Some("query") => Ok(ResponseMode::Query),
            Some("form_post") => Ok(ResponseMode::FormPost),
            Some(_) => Err(OAuthError::invalid_request("response_mode: query or form_post")),
        };
        let refused = |error: OAuthError, mode: ResponseMode| RequestError::Refused {
            error,
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            mode,
        };
        let mode = mode.map_err(|e| refused(e, ResponseMode::Query))?;
        Self::checked_rest(client_id, client, &get, redirect_uri, state.clone(), mode)
            .map_err(|e| refused(e, mode))
    }

    fn checked_rest<'a>(
        client_id: &str,
        client: &ClientSettings,
        get: &impl Fn(&str) -> Option<&'a str>,
        redirect_uri: &str,
        state: Option<String>,
        response_mode: ResponseMode,
    ) -> Result<Self, OAuthError> {
        if get("request").is_some() {
            return Err(OAuthError::refused_with(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None => return Err(OAuthError::invalid_request("response_type is required")),
            Some(_) => {
                let why = "response_type: only code (the authorization code flow)";
                return Err(OAuthError::refused_with("unsupported_response_type", why));
            }
        }
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            let why = "the client may not use the authorization code flow";
            return Err(OAuthError::unauthorized_client(why));
        }
        let asked = get("scope").ok_or_else(|| OAuthError::invalid_scope("scope is required"))?;
        let scopes = parse_scope(asked)?;
        if let Some(bad) = scopes.iter().find(|s| !client.scopes.iter().any(|c| c == *s)) {
            return Err(OAuthError::invalid_scope(format!("scope {bad:?} is not the client's")));
        }
        let code_challenge = pkce_challenge(get("code_challenge"), get("code_challenge_method"))?;
        let required = client.client_type == ClientType::Public || client.require_pkce;
        if required && code_challenge.is_none() {
            return Err(OAuthError::invalid_request("code_challenge (S256) is required"));
        }
        let max_age = get("max_age")
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| OAuthError::invalid_request("max_age: a number of seconds"))?;
        Ok(Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes: scopes.into_iter().map(str::to_owned).collect(),
            state,
            nonce: bounded(get("nonce"), "nonce")?,
            code_challenge,
            response_mode,
            prompt: prompts(get("prompt"))?,
            max_age,
            login_hint: bounded(get("login_hint"), "login_hint")?,
            id_token_hint: bounded_hint(get("id_token_hint"))?,
            ui_locales: bounded(get("ui_locales"), "ui_locales")?,
        })
    }
}

fn bounded(value: Option<&str>, name: &str) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.chars().count() > MAX_PARAMETER_CHARS => Err(OAuthError::invalid_request(
            format!("{name}: at most {MAX_PARAMETER_CHARS} characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// The longest `id_token_hint` taken: far above any ID token this service signs.
const MAX_HINT_CHARS: usize = 8_192;

fn bounded_hint(value: Option<&str>) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.len() > MAX_HINT_CHARS => Err(OAuthError::invalid_request(format!(
            "id_token_hint: at most {MAX_HINT_CHARS} characters"
        ))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// Whether `text` is 43 to 128 characters of RFC 7636's unreserved set: the shape of a PKCE
/// challenge and of its verifier.
pub(super) fn is_pkce_value(text: &str) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    (43..=128).contains(&text.len()) && text.bytes().all(unreserved)
}

/// RFC 7636 §4.2–4.3: S256 only (`plain`, and a challenge without its method, are refused), a
/// challenge of 43 to 128 characters of the unreserved set.
fn pkce_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    match (challenge, method) {
        (None, None) => Ok(None),
        (None, Some(_)) => {
            Err(OAuthError::invalid_request("code_challenge_method without code_challenge"))
        }
        (Some(_), None) => {
            Err(OAuthError::invalid_request("code_challenge_method is required: S256"))
        }
        (Some(_), Some(m)) if m != "S256" => {
            Err(OAuthError::invalid_request("code_challenge_method: only S256"))
        }
        (Some(c), Some(_)) if is_pkce_value(c) => Ok(Some(c.to_owned())),
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "code_challenge: 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~",
        )),
    }
}

/// `prompt`: space-separated values, `none` alone.
fn prompts(value: Option<&str>) -> Result<Vec<Prompt>, OAuthError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let mut prompts = Vec::new();
    for word in value.split(' ') {
        let prompt = match word {
            "none" => Prompt::None,
            "login" => Prompt::Login,
            "consent" => Prompt::Consent,
            "select_account" => Prompt::SelectAccount,
            _ => {
                return Err(OAuthError::invalid_request(
                    "prompt: none, login, consent, select_account",
                ));
            }
        };
        if !prompts.contains(&prompt) {
            prompts.push(prompt);
        }
    }
    if prompts.contains(&Prompt::None) && prompts.len() > 1 {
        return Err(OAuthError::invalid_request("prompt: none cannot go with another value"));
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests;
