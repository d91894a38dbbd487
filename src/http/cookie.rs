//! The refresh cookie (`REFRESH_COOKIE=on`), for browser apps that should not keep the refresh
//! token where JavaScript can read it.
//!
//! Every token pair also sets the refresh token in an `HttpOnly; Secure; SameSite=Strict` cookie,
//! once for the refresh path and once for the logout path, and nowhere else. A refresh or logout
//! that relies on the cookie (no token in the body, no bearer) must come from an origin in
//! `CORS_ORIGINS` and carry `X-Requested-With`: a cross-site form cannot set that header, and a
//! cross-origin script cannot without a CORS preflight that only the listed origins pass (OWASP
//! CSRF Prevention Cheat Sheet: custom request headers, and verifying the origin). Rotation and
//! reuse detection are the same as for a token in the body: the cookie carries the same token.
//!
//! The cookie's name carries the `__Secure-` prefix, so a browser accepts it only from a secure
//! origin over HTTPS: a man in the middle on plain HTTP, or a sibling subdomain, cannot plant a
//! cookie of that name. A request that carries the name more than once (one planted beside the
//! real one, for another path) is refused with 403 rather than guessed at.
//!
//! The `Cookie` header is parsed here: only one name is read, and a full cookie crate would add
//! jars, signing and encryption that this does not need.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::TokenPair;
use crate::crypto::tokens;
use crate::error::{ApiError, ErrorCode};

pub const NAME: &str = "__Secure-portcullis_refresh";
const PATHS: [&str; 2] = ["/v1/auth/refresh", "/v1/auth/logout"];
/// The longest `Cookie` header looked at, and the most cookies in it.
const MAX_COOKIES: usize = 64;

/// Whether the refresh token travels in a cookie too, and where requests using it may come from.
#[derive(Clone, Debug)]
pub struct CookiePolicy {
    pub origins: Vec<String>,
    /// The cookie's `Max-Age`: the refresh token's lifetime.
    pub max_age: u64,
}

impl CookiePolicy {
    /// The `Set-Cookie` values that carry `pair`'s refresh token.
    pub fn set(&self, pair: &TokenPair) -> Vec<HeaderValue> {
        self.cookies(&pair.refresh_token, self.max_age)
    }

    /// The `Set-Cookie` values that end the cookie (after a logout).
    pub fn clear(&self) -> Vec<HeaderValue> {
        self.cookies("", 0)
    }

    fn cookies(&self, value: &str, max_age: u64) -> Vec<HeaderValue> {
        PATHS
            .iter()
            .filter_map(|path| {
                let cookie = format!(
                    "{NAME}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; \
                     SameSite=Strict"
                );
                HeaderValue::from_str(&cookie).ok()
            })
            .collect()
    }

    /// The refresh token of the cookie, if the request sent one; `Forbidden` if it did from an
    /// origin not listed or without `X-Requested-With`.
    pub fn token(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(token) = cookie_value(headers)? else { return Ok(None) };
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let listed = origin.is_some_and(|o| self.origins.iter().any(|allowed| allowed == o));
        if !listed || !headers.contains_key("x-requested-with") {
            return Err(ApiError::new(ErrorCode::Forbidden).detail(
                "the refresh cookie is accepted only from an allowed origin with \
                 X-Requested-With",
            ));
        }
        Ok(Some(token))
    }
}

/// The answer with a token pair: with the cookie too, in cookie mode.
pub fn pair_response(policy: &Option<Arc<CookiePolicy>>, pair: TokenPair) -> Response {
    let cookies = policy.as_ref().map(|p| p.set(&pair)).unwrap_or_default();
    let mut response = Json(pair).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The value of the refresh cookie, when it has the shape of a refresh token; `Forbidden` when
/// the request carries the cookie more than once.
fn cookie_value(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .take(MAX_COOKIES)
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == NAME)
        .map(|(_, value)| value.trim());
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .detail("the refresh cookie was sent more than once"));
    }
    Ok(Some(first.to_owned()).filter(|value| tokens::refresh_token_owner(value).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CookiePolicy {
        CookiePolicy { origins: vec!["https://app.example.com".into()], max_age: 60 }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")));
        }
        map
    }

    #[test]
    fn the_cookie_is_http_only_secure_strict_and_scoped_to_two_paths() {
        let cookies = policy().cookies("abc", 60);
        assert_eq!(cookies.len(), 2);
        for (cookie, path) in cookies.iter().zip(PATHS) {
            let text = cookie.to_str().unwrap_or_default();
            assert!(text.starts_with("__Secure-portcullis_refresh=abc; "), "{text}");
            for part in
                ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=60", &format!("Path={path}")]
            {
                assert!(text.contains(part), "{part} in {text}");
            }
        }
    }

    #[test]
    fn only_an_allowed_origin_with_the_custom_header_may_use_it() {
        let token = tokens::new_refresh_token(crate::domain::UserId::new());
        let cookie = format!("theme=dark; {NAME}={token}");
        let good = headers(&[
            ("cookie", &cookie),
            ("origin", "https://app.example.com"),
            ("x-requested-with", "fetch"),
        ]);
        assert_eq!(policy().token(&good).ok().flatten(), Some(token.clone()));
        for bad in [
            headers(&[("cookie", &cookie), ("origin", "https://app.example.com")]),
            headers(&[("cookie", &cookie), ("x-requested-with", "fetch")]),
            headers(&[
                ("cookie", &cookie),
                ("origin", "https://evil.example"),
                ("x-requested-with", "x"),
            ]),
        ] {
            assert!(policy().token(&bad).is_err());
        }
        assert!(matches!(policy().token(&headers(&[("cookie", "other=1")])), Ok(None)));
        let junk = headers(&[("cookie", &format!("{NAME}=not-a-token"))]);
        assert!(matches!(policy().token(&junk), Ok(None)), "junk is no cookie");
    }
}
