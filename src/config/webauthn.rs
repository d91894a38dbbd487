//! The relying party of passkeys: its id, its name, and the origins its pages are served from.
//! Checked at start, so that a typo does not surface as every ceremony failing.

use super::parse::list;
use super::{ConfigError, Raw};

#[derive(Clone, Debug)]
pub struct WebauthnSettings {
    /// The domain passkeys are scoped to, such as `example.com`.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// The origins a ceremony may come from; each is `rp_id` or one of its subdomains.
    pub origins: Vec<url::Url>,
}

pub(super) fn from_raw(raw: &Raw) -> Result<WebauthnSettings, ConfigError> {
    let rp_id = raw.parse("WEBAUTHN_RP_ID", rp_id)?;
    let rp_name = raw.parse("WEBAUTHN_RP_NAME", |v| {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
            Err("must be 1 to 64 characters without control characters".to_owned())
        } else {
            Ok(v.to_owned())
        }
    })?;
    let origins = raw.parse("WEBAUTHN_ORIGINS", |v| {
        let origins = list(v).map(|o| origin(o, &rp_id)).collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            Err("must name at least one origin".to_owned())
        } else {
            Ok(origins)
        }
    })?;
    Ok(WebauthnSettings { rp_id, rp_name, origins })
}

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

impl WebauthnSettings {
    pub(super) fn describe(&self) -> Vec<(&'static str, String)> {
        let origins: Vec<String> =
            self.origins.iter().map(|o| o.as_str().trim_end_matches('/').to_owned()).collect();
        vec![
            ("WEBAUTHN_RP_ID", self.rp_id.clone()),
            ("WEBAUTHN_RP_NAME", self.rp_name.clone()),
            ("WEBAUTHN_ORIGINS", origins.join(",")),
        ]
    }
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
