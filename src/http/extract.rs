//! Extractors whose rejections are our problem details: JSON bodies, the request context, and
//! the bearer session.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::client_ip::client_ip_from;
use super::middleware::RequestId;
use crate::auth::{Principal, RequestContext, Sessions};
use crate::config::ClientIpHeader;
use crate::domain::escape_controls;
use crate::error::ApiError;

/// Longest `User-Agent` kept, in characters.
const MAX_USER_AGENT: usize = 256;
/// Longest bearer token looked at; ours are a few hundred bytes.
const MAX_BEARER: usize = 4096;

/// A JSON body: `application/json`, at most 16 KiB, valid UTF-8, an object with the right fields
/// and types.
pub struct JsonBody<T>(pub T);

/// An optional JSON body: absent or empty is `None`; anything present must be valid.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let OptionalJsonBody(value) = OptionalJsonBody::from_request(request, state).await?;
        value.map(JsonBody).ok_or_else(|| ApiError::malformed("a JSON body is required"))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| mime.trim().to_ascii_lowercase())
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                ApiError::malformed("the request body could not be read")
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(ApiError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        // An optional body may also be sent as JSON `null`: no body either.
        if bytes.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        decode_json_object(&bytes).map(|v| Self(Some(v)))
    }
}

/// Decodes a non-empty JSON body as every handler receives it. Public so that the fuzz targets
/// reach the same code as a request does.
pub fn decode_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body of the contract is an object; serde would also fill a struct from an array.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::malformed("the body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(describe_json_error)
}

/// A message that says what is wrong without echoing any value from the body (it may hold a
/// password).
fn describe_json_error(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    let detail = match error.classify() {
        Category::Data => {
            let what = message.split(" at line").next().unwrap_or_default();
            if what.starts_with("missing field") || what.starts_with("unknown field") {
                what.to_owned()
            } else {
                "a field has the wrong type".to_owned()
            }
        }
        Category::Syntax | Category::Eof => "the body is not valid JSON".to_owned(),
        Category::Io => "the body could not be read".to_owned(),
    };
    ApiError::malformed(detail)
}

/// The pairs of an `application/x-www-form-urlencoded` text (a form body, or a query), each
/// name at most once (RFC 6749 §3.1, §3.2); the name sent twice, cut to 40 characters,
/// otherwise.
pub fn unique_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in url::form_urlencoded::parse(raw) {
        if !seen.insert(name.clone()) {
            return Err(name.chars().take(40).collect());
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// The request's client IP, user agent and request id.
pub struct Context(pub RequestContext);

/// The networks whose client-address header is believed, and which header that is
/// (`CLIENT_IP_HEADER`); the other headers are never read.
#[derive(Clone, Debug)]
pub struct TrustedProxies {
    pub networks: Arc<Vec<IpNet>>,
    pub header: ClientIpHeader,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self { networks: Arc::default(), header: ClientIpHeader::XForwardedFor }
    }
}

impl<S> FromRequestParts<S> for Context
where
    S: Send + Sync,
    TrustedProxies: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let trusted = TrustedProxies::from_ref(state);
        // A line that is not visible ASCII stays in its place as a non-address, so that the walk
        // stops there rather than reading past it.
        let values: Vec<&str> = parts
            .headers
            .get_all(trusted.header.as_str())
            .iter()
            .map(|v| v.to_str().unwrap_or_default())
            .collect();
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| client_ip_from(trusted.header, info.0.ip(), &values, &trusted.networks));
        // Read as UTF-8 (invalid bytes replaced) rather than refused when not plain ASCII, so
        // that an odd user agent is recorded, escaped, instead of silently dropped; it is also
        // shown back in the session list, so it is escaped here once for every use.
        let user_agent = parts.headers.get(header::USER_AGENT).map(|v| {
            let ua: String =
                String::from_utf8_lossy(v.as_bytes()).chars().take(MAX_USER_AGENT).collect();
            escape_controls(&ua).into_owned()
        });
        let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.to_string());
        Ok(Self(RequestContext { ip, user_agent, request_id, from_page: false }))
    }
}

/// The caller's live session, from `Authorization: Bearer <access token>`.
pub struct Authenticated(pub Principal);

/// Like `Authenticated`, but a request without an `Authorization` header is `None`. A header
/// that is present must still be valid.
pub struct MaybeAuthenticated(pub Option<Principal>);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Arc<Sessions>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match MaybeAuthenticated::from_request_parts(parts, state).await? {
            MaybeAuthenticated(Some(principal)) => Ok(Self(principal)),
            MaybeAuthenticated(None) => Err(ApiError::unauthorized()),
        }
    }
}

impl<S> FromRequestParts<S> for MaybeAuthenticated
where
    S: Send + Sync,
    Arc<Sessions>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let token =
            value.to_str().ok().and_then(bearer_token).ok_or_else(ApiError::unauthorized)?;
        let sessions = Arc::<Sessions>::from_ref(state);
        let principal = sessions.authenticate(token).await.map_err(ApiError::from)?;
        parts.extensions.insert(principal.clone());
        Ok(Self(Some(principal)))
    }
}

/// A caller who passed the admin gate (`Sessions::admit_admin`: the reads budget, then the
/// admin role as the account holds it now). Every admin handler takes it, so no admin route can
/// skip the check.
pub struct Admin {
    pub principal: Principal,
    pub context: RequestContext,
}

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Sessions>: FromRef<S>,
    TrustedProxies: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Context(context) = Context::from_request_parts(parts, state).await?;
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        Arc::<Sessions>::from_ref(state).admit_admin(&context, &principal).await?;
        Ok(Self { principal, context })
    }
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1; the scheme is
/// case-insensitive), or `None` for any other scheme or an oversized value.
pub fn bearer_token(value: &str) -> Option<&str> {
    if value.len() > MAX_BEARER {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_trimmed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bEARER  abc "), Some("abc"));
    }

    #[test]
    fn other_schemes_and_oversized_values_carry_no_token() {
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token(""), None);
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER));
        assert_eq!(bearer_token(&long), None);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_before_serde() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            a: String,
        }
        assert!(decode_json_object::<Body>(br#"["x"]"#).is_err());
        assert!(decode_json_object::<Body>(br#" {"a":"x"}"#).is_ok());
    }
}
