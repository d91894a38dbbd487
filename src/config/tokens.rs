//! Tokens: who issues them and for whom, how long they live, and the keys that sign them.

use std::time::Duration;

use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};

use super::formats::{
    duration, masked, non_empty, on_off, optional_path, optional_positive_duration, value_format,
};
use super::{ConfigError, Shown};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Tokens {
    /// Signs with HS256 under this secret (used as raw bytes); `None`: EdDSA keys kept in the
    /// database and published in the JWKS.
    #[serde(rename = "jwt_secret", with = "jwt_secret")]
    pub secret: Option<SecretSlice<u8>>,
    #[serde(rename = "issuer", with = "non_empty")]
    pub issuer: String,
    #[serde(rename = "audience", with = "non_empty")]
    pub audience: String,
    /// The `client_id` claim of access tokens (RFC 9068).
    #[serde(rename = "client_id", with = "non_empty")]
    pub client_id: String,
    #[serde(rename = "access_token_ttl", with = "duration")]
    pub access_ttl: Duration,
    #[serde(rename = "refresh_token_ttl", with = "duration")]
    pub refresh_ttl: Duration,
    #[serde(rename = "refresh_reuse_grace", with = "duration")]
    pub refresh_reuse_grace: Duration,
    /// Clock skew allowed on `exp`.
    #[serde(rename = "jwt_leeway", with = "duration")]
    pub leeway: Duration,
    /// How long a new signing key is published before it signs.
    #[serde(rename = "key_publish_ahead", with = "duration")]
    pub key_publish_ahead: Duration,
    /// Scheduled key rotation; `None`: only `keys rotate` rotates.
    #[serde(rename = "key_rotate_every", with = "optional_positive_duration")]
    pub key_rotate_every: Option<Duration>,
    /// The refresh token also travels in an `HttpOnly` cookie.
    #[serde(rename = "refresh_cookie", with = "on_off")]
    pub refresh_cookie: bool,
    /// A TOML file of `[[client]]` tables: OAuth clients created or updated at every start.
    #[serde(rename = "clients_file", with = "optional_path")]
    pub clients_file: Option<std::path::PathBuf>,
    /// How long an authorization code may be redeemed.
    #[serde(rename = "authorization_code_ttl", with = "duration")]
    pub authorization_code_ttl: Duration,
    /// How long a login or consent page may take.
    #[serde(rename = "interaction_ttl", with = "duration")]
    pub interaction_ttl: Duration,
    /// The team's own login page, which completes interactions through the JSON API; unset:
    /// the built-in pages.
    #[serde(rename = "login_ui_url", with = "optional_url")]
    pub login_ui_url: Option<String>,
    /// The service's name as people see it: on the pages and in `otpauth` labels.
    #[serde(rename = "brand_name", with = "non_empty")]
    pub brand_name: String,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            secret: None,
            issuer: "http://localhost:8080".to_owned(),
            audience: "portcullis".to_owned(),
            client_id: "portcullis".to_owned(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(14 * 86_400),
            refresh_reuse_grace: Duration::ZERO,
            leeway: Duration::ZERO,
            key_publish_ahead: Duration::from_secs(15 * 60),
            key_rotate_every: None,
            refresh_cookie: false,
            clients_file: None,
            authorization_code_ttl: Duration::from_secs(60),
            interaction_ttl: Duration::from_secs(600),
            login_ui_url: None,
            brand_name: "portcullis".to_owned(),
        }
    }
}

/// Whether `issuer` is a URL the OpenID provider can be reached at: https, or http on a loopback
/// host, with a host, and without userinfo, query or fragment.
fn is_public_url(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else { return false };
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    (url.scheme() == "https" || (url.scheme() == "http" && loopback))
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
}

impl Tokens {
    /// Whether `ISSUER` is the service's URL: the OpenID provider and the pages are on; a name
    /// turns them off.
    pub fn provider(&self) -> bool {
        is_public_url(&self.issuer)
    }

    /// An access token lives a while, and a refresh token at least as long.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.issuer.contains("://") && !is_public_url(&self.issuer) {
            return Err(ConfigError::new(
                "ISSUER",
                "must be an https URL, or http on a loopback host (localhost, 127.0.0.1, [::1]), \
                 without a query or fragment; or a name, which turns the OpenID provider off",
            ));
        }
        if self.access_ttl.is_zero() {
            return Err(ConfigError::new("ACCESS_TOKEN_TTL", "must be longer than 0s"));
        }
        for (name, ttl) in [
            ("AUTHORIZATION_CODE_TTL", self.authorization_code_ttl),
            ("INTERACTION_TTL", self.interaction_ttl),
        ] {
            if ttl.is_zero() {
                return Err(ConfigError::new(name, "must be longer than 0s"));
            }
        }
        if self.refresh_ttl < self.access_ttl {
            return Err(ConfigError::new(
                "REFRESH_TOKEN_TTL",
                "must be at least as long as PORTCULLIS_ACCESS_TOKEN_TTL",
            ));
        }
        Ok(())
    }
}

value_format!(
    /// RFC 7518 §3.2: an HMAC key needs at least the hash's 256 bits.
    jwt_secret: Option<SecretSlice<u8>> = optional(|secret| {
        if secret.len() < 32 {
            Err("must be at least 32 bytes".to_owned())
        } else {
            Ok(SecretSlice::from(secret.as_bytes().to_vec()))
        }
    }),
    masked
);

value_format!(
    /// An absolute http(s) URL without a fragment, or unset.
    optional_url: Option<String> = optional(|value| {
        let web = value.starts_with("https://") || value.starts_with("http://");
        match url::Url::parse(value) {
            Ok(url) if web && url.fragment().is_none() && url.host().is_some() => Ok(value.to_owned()),
            _ => Err("must be an absolute http(s) URL without a fragment".to_owned()),
        }
    }),
    |v| Shown::Value(v.clone().unwrap_or_default())
);
