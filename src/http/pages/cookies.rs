//! The pages' cookies, and the checks every post passes.
//!
//! - `__Host-portcullis_browser`: 256 random bits naming this browser. An authorization
//!   started here is bound to it (it finishes only in this browser), and the CSRF token of
//!   every form is derived from it (a signed double-submit: the token is a hash of a cookie
//!   that script cannot read and, with the `__Host-` prefix, that no sibling subdomain or
//!   plain-HTTP page can set).
//! - `__Host-portcullis_session`: the sign-in session.
//! - `__Host-portcullis_device`: the device token a login hands out, presented at the next
//!   login so a stranger's failures never lock the owner's browser out.
//!
//! All are `HttpOnly; Secure; SameSite=Lax; Path=/`. The `Cookie` header is parsed here for
//! these names only, as the refresh cookie's is (see `http::cookie`).

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::tokens;

pub const BROWSER: &str = "__Host-portcullis_browser";
pub const SESSION: &str = "__Host-portcullis_session";
pub const DEVICE: &str = "__Host-portcullis_device";

/// The most cookies looked at in one request.
const MAX_COOKIES: usize = 64;

/// Our cookies, as the request carried them. A name sent twice counts as absent: one was
/// planted beside the other, and neither is trusted.
#[derive(Default)]
pub struct Cookies {
    browser: Option<String>,
    session: Option<String>,
    device: Option<String>,
}

impl Cookies {
    pub fn read(headers: &HeaderMap) -> Self {
        let mut found: [(&str, Option<String>, bool); 3] =
            [(BROWSER, None, false), (SESSION, None, false), (DEVICE, None, false)];
        let pairs = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .take(MAX_COOKIES);
        for pair in pairs {
            let Some((name, value)) = pair.trim().split_once('=') else { continue };
            if let Some(slot) = found.iter_mut().find(|(n, _, _)| *n == name) {
                slot.2 |= slot.1.is_some();
                slot.1 = Some(value.to_owned());
            }
        }
        let [browser, session, device] =
            found.map(|(_, value, twice)| value.filter(|v| !twice && tokens::is_well_formed(v)));
        Self { browser, session, device }
    }

    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    pub fn browser(&self) -> Option<&str> {
        self.browser.as_deref()
    }

    /// This browser's cookie, or a new one and the header that sets it.
    pub fn browser_or_new(&self) -> (String, Option<HeaderValue>) {
        match &self.browser {
            Some(browser) => (browser.clone(), None),
            None => {
                let browser = tokens::random_token();
                let set = set(BROWSER, &browser, None);
                (browser, set)
            }
        }
    }
}

/// A `Set-Cookie` value for one of our cookies; `max_age` `None` lasts as long as the browser
/// session.
pub fn set(name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
    let max_age = max_age.map(|age| format!("; Max-Age={age}")).unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax{max_age}"
    ))
    .ok()
}

/// The CSRF token of the forms this browser is shown.
pub fn csrf_token(browser: &str) -> String {
    let digest =
        Sha256::new_with_prefix(b"portcullis page form\0").chain_update(browser).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Whether a post may act: it carries this browser's CSRF token, and it does not come from
/// another site. `Origin: null` counts as no `Origin` (browsers send it on some same-origin
/// posts after a redirect).
pub fn post_allowed(
    headers: &HeaderMap,
    cookies: &Cookies,
    token: Option<&str>,
    origin: &str,
) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    if let Some(from) = text("origin")
        && from != "null"
        && from != origin
    {
        return false;
    }
    match (cookies.browser(), token) {
        (Some(browser), Some(token)) => {
            csrf_token(browser).as_bytes().ct_eq(token.as_bytes()).into()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_cookie_sent_twice_is_not_trusted() {
        let a = tokens::random_token();
        let b = tokens::random_token();
        let once = headers(&[("cookie", &format!("other=1; {SESSION}={a}"))]);
        assert_eq!(Cookies::read(&once).session(), Some(a.as_str()));
        let twice = headers(&[("cookie", &format!("{SESSION}={a}; {SESSION}={b}"))]);
        assert_eq!(Cookies::read(&twice).session(), None);
        let malformed = headers(&[("cookie", &format!("{SESSION}=short"))]);
        assert_eq!(Cookies::read(&malformed).session(), None);
    }

    #[test]
    fn a_post_needs_the_token_and_our_origin() {
        let browser = tokens::random_token();
        let cookie = format!("{BROWSER}={browser}");
        let token = csrf_token(&browser);
        let origin = "https://id.example";
        let ok = headers(&[("cookie", &cookie), ("origin", origin)]);
        assert!(post_allowed(&ok, &Cookies::read(&ok), Some(&token), origin));
        let null = headers(&[("cookie", &cookie), ("origin", "null")]);
        assert!(post_allowed(&null, &Cookies::read(&null), Some(&token), origin));
        assert!(!post_allowed(&ok, &Cookies::read(&ok), Some("forged"), origin));
        assert!(!post_allowed(&ok, &Cookies::read(&ok), None, origin));
        let other = headers(&[("cookie", &cookie), ("origin", "https://evil.example")]);
        assert!(!post_allowed(&other, &Cookies::read(&other), Some(&token), origin));
        let cross = headers(&[("cookie", &cookie), ("sec-fetch-site", "cross-site")]);
        assert!(!post_allowed(&cross, &Cookies::read(&cross), Some(&token), origin));
        let no_cookie = headers(&[("origin", origin)]);
        assert!(!post_allowed(&no_cookie, &Cookies::read(&no_cookie), Some(&token), origin));
    }
}
