//! Redirect URIs of OAuth clients: what may be registered, and when a presented one matches.
//!
//! Registration (RFC 9700 §2.1, RFC 8252 §7, OAuth 2.1 §2.3.1): absolute, no fragment, `https`,
//! or `http` on a loopback host, or (public clients only) a private-use scheme in reverse-domain
//! form (`com.example.app:/callback`). Refused: `javascript:`, `data:`, `file:` and other
//! schemes, wildcards, userinfo (`https://good.example@evil.example/`), dot segments and
//! backslashes (which servers and browsers resolve differently), controls and spaces.
//!
//! Matching is the identical string of a registered URI: no prefix, no normalisation, no
//! case folding. The one exception is RFC 8252 §7.3: for a public client, a registered loopback
//! IP URI (`http://127.0.0.1/cb`, `http://[::1]/cb`) matches the same URI on any port, because a
//! native app listens on whichever port is free. `localhost` gets no such exception (RFC 8252
//! §8.3: it may resolve elsewhere).

use url::{Host, Url};

/// The longest redirect URI a client may register.
pub const MAX_REDIRECT_URI_CHARS: usize = 2_000;

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RedirectUriError(&'static str);

/// Checks a redirect URI (or a post-logout redirect URI) for registration by a client that is
/// `public` or not.
pub fn check_redirect_uri(uri: &str, public: bool) -> Result<(), RedirectUriError> {
    let refuse = |why| Err(RedirectUriError(why));
    if uri.chars().count() > MAX_REDIRECT_URI_CHARS {
        return refuse("is longer than 2000 characters");
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("holds a space or a control character");
    }
    if uri.contains('*') {
        return refuse("holds a wildcard: a redirect URI is registered exactly");
    }
    if uri.contains('\\') {
        return refuse("holds a backslash");
    }
    if uri.contains('#') {
        return refuse("has a fragment");
    }
    let Ok(url) = Url::parse(uri) else { return refuse("is not an absolute URI") };
    if !url.username().is_empty() || url.password().is_some() || authority(uri).contains('@') {
        return refuse("holds userinfo (user@host)");
    }
    if has_dot_segment(uri) {
        return refuse("holds a `.` or `..` path segment");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => refuse("uses http on a host that is not loopback: use https"),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
            refuse("uses a scheme that is never a redirect")
        }
        scheme if public && is_private_use_scheme(scheme) => Ok(()),
        _ if public => refuse("uses a scheme that is not https, loopback http or reverse-domain"),
        _ => refuse("uses a scheme other than https (or http on a loopback host)"),
    }
}

/// Whether `presented` matches `registered`, a redirect URI of a client that is `public` or not.
pub fn redirect_uri_matches(registered: &str, presented: &str, public: bool) -> bool {
    if registered == presented {
        return true;
    }
    let loopback_ip =
        |uri: &str| Url::parse(uri).is_ok_and(|url| url.scheme() == "http" && is_loopback_ip(&url));
    // Everything but the port, compared as written.
    public
        && loopback_ip(registered)
        && loopback_ip(presented)
        && strip_port(registered) == strip_port(presented)
}

/// The authority part of a URI as written: what comes after `scheme://` up to the path.
fn authority(uri: &str) -> &str {
    let Some((_, rest)) = uri.split_once("://") else { return "" };
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// The URI as written with its port (`:digits` after the host) taken out.
fn strip_port(uri: &str) -> String {
    let authority = authority(uri);
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    uri.replacen(authority, host, 1)
}

fn has_dot_segment(uri: &str) -> bool {
    let path_and_more = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => uri.split_once(':').map_or("", |(_, rest)| rest),
    };
    let path = path_and_more.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|segment| {
        let lowered = segment.to_ascii_lowercase();
        // `%2e` is a dot to a server that decodes before it resolves.
        let decoded = lowered.replace("%2e", ".");
        let bare = decoded.split(';').next().unwrap_or_default();
        bare == "." || bare == ".."
    })
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// A private-use scheme in reverse-domain form (RFC 8252 §7.1): at least one dot, and only the
/// characters a scheme may hold.
fn is_private_use_scheme(scheme: &str) -> bool {
    scheme.contains('.')
        && !scheme.starts_with('.')
        && !scheme.ends_with('.')
        && !scheme.contains("..")
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests;
