//! The relying party of passkeys: its id, its name, and the origins its pages are served from.
//! Checked at start, so that a typo does not surface as every ceremony failing.

use serde::{Deserialize, Serialize};

use super::formats::value_format;
use super::parse::list;
use super::{ConfigError, Shown};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct WebauthnSettings {
    /// The domain passkeys are scoped to, such as `example.com`.
    #[serde(rename = "webauthn_rp_id", with = "relying_party_id")]
    pub rp_id: String,
    /// The name authenticators show.
    #[serde(rename = "webauthn_rp_name", with = "relying_party_name")]
    pub rp_name: String,
    /// `origins` as configured: a comma-separated list, read into `origins` by `check` (each is
    /// checked against `rp_id`).
    #[serde(rename = "webauthn_origins", with = "origin_list")]
    origin_list: String,
    /// The origins a ceremony may come from; each is `rp_id` or one of its subdomains.
    #[serde(skip)]
    pub origins: Vec<url::Url>,
}

impl Default for WebauthnSettings {
    fn default() -> Self {
        Self {
            rp_id: "localhost".to_owned(),
            rp_name: "portcullis".to_owned(),
            origin_list: "http://localhost:8080".to_owned(),
            origins: Vec::new(),
        }
    }
}

impl WebauthnSettings {
    /// Reads the origins, each within `rp_id`, and writes them back as `config check` shows them.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        let given = &self.origin_list;
        let origins = list(given)
            .map(|o| origin(o, &self.rp_id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ConfigError::new("WEBAUTHN_ORIGINS", format!("{m} (got {given:?})")))?;
        let shown: Vec<&str> = origins.iter().map(|o| o.as_str().trim_end_matches('/')).collect();
        self.origin_list = shown.join(",");
        self.origins = origins;
        Ok(())
    }
}

value_format!(
    relying_party_id: String = required(rp_id), |v| Shown::Value(v.clone())
);
value_format!(
    relying_party_name: String = required(|v| {
        if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
            Err("must be 1 to 64 characters without control characters".to_owned())
        } else {
            Ok(v.to_owned())
        }
    }),
    |v| Shown::Value(v.clone())
);
value_format!(
    origin_list: String = required(|v| {
        if list(v).next().is_none() {
            Err("must name at least one origin".to_owned())
        } else {
            Ok(v.to_owned())
        }
    }),
    |v| Shown::Value(v.clone())
);

/// A relying party id is a domain (WebAuthn §5.1.3: an IP address or a URL is not one), stored
/// lower-cased.
fn rp_id(value: &str) -> Result<String, String> {
    let id = value.trim().to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let is_ip = id.parse::<std::net::IpAddr>().is_ok();
    if id.len() <= 253 && !is_ip && id.split('.').all(label_ok) {
        Ok(id)
    } else {
        Err(format!("{value:?} is not a domain such as example.com"))
    }
}

/// An origin of `rp_id`: https (or http on localhost), no path, and a host that is `rp_id` or
/// one of its subdomains, as a browser requires before it runs a ceremony for that id.
fn origin(value: &str, rp_id: &str) -> Result<url::Url, String> {
    let bad = || format!("{value:?} is not an origin like https://{rp_id}");
    let url = url::Url::parse(value).map_err(|_| bad())?;
    let host = url.host_str().ok_or_else(bad)?.to_ascii_lowercase();
    let local = host == "localhost" || host.ends_with(".localhost");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && local);
    if !scheme_ok || url.path() != "/" || url.query().is_some() || value.ends_with('/') {
        return Err(format!("{}; https is required except on localhost", bad()));
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(format!("{value:?} is not within the relying party id {rp_id:?}"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::{origin, rp_id};

    #[test]
    fn a_relying_party_id_is_a_domain() {
        assert_eq!(rp_id("Example.COM").ok().as_deref(), Some("example.com"));
        assert_eq!(rp_id("localhost").ok().as_deref(), Some("localhost"));
        for bad in ["", "https://example.com", "example.com:443", "127.0.0.1", "a..b", "-a.com"] {
            assert!(rp_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_origin_must_be_secure_and_within_the_id() {
        assert!(origin("https://example.com", "example.com").is_ok());
        assert!(origin("https://login.example.com", "example.com").is_ok());
        assert!(origin("http://localhost:8080", "localhost").is_ok());
        for bad in [
            "http://example.com",
            "https://example.com/login",
            "https://example.com/",
            "https://evil.com",
            "https://notexample.com",
            "example.com",
        ] {
            assert!(origin(bad, "example.com").is_err(), "{bad}");
        }
    }
}
