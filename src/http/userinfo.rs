//! `/oauth2/userinfo` (OpenID Connect Core §5.3): the claims an access token with scope
//! `openid` may read, with the bearer token in the `Authorization` header (RFC 6750 §2.1).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::bearer_token;
use super::extract::Context;
use super::oauth::{OAuthErrorBody, OAuthErrors, OwnBody};
use crate::auth::{ClientEndpoints, OAuthError, UserInfo, UserInfoError};
use crate::domain::RequestContext;

/// GET /oauth2/userinfo.
#[utoipa::path(
    get, path = "/oauth2/userinfo", tag = "oauth",
    summary = "UserInfo (OpenID Connect Core §5.3)",
    description = "`sub` and the claims of the token's scopes (`email`, `email_verified`; \
        `name`). An expired, revoked or malformed token answers 401 with `WWW-Authenticate: \
        Bearer error=\"invalid_token\"`; a token without `openid`, 403 `insufficient_scope`.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The claims", body = UserInfo),
        (status = 403, description = "insufficient_scope: the token has no `openid`", body = OAuthErrorBody),
        OAuthErrors,
    ),
)]
pub async fn userinfo_get(
    State(endpoints): State<Arc<ClientEndpoints>>,
    Context(context): Context,
    headers: HeaderMap,
) -> Response {
    userinfo(&endpoints, &context, &headers).await
}

/// POST /oauth2/userinfo: as GET.
#[utoipa::path(
    post, path = "/oauth2/userinfo", tag = "oauth", summary = "UserInfo, by POST",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The claims", body = UserInfo),
        (status = 403, description = "insufficient_scope: the token has no `openid`", body = OAuthErrorBody),
        OAuthErrors,
    ),
)]
pub async fn userinfo_post(
    State(endpoints): State<Arc<ClientEndpoints>>,
    Context(context): Context,
    headers: HeaderMap,
) -> Response {
    userinfo(&endpoints, &context, &headers).await
}

async fn userinfo(
    endpoints: &ClientEndpoints,
    context: &RequestContext,
    headers: &HeaderMap,
) -> Response {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let answer = match bearer {
        Some(token) => endpoints.userinfo(context, token).await,
        None => Err(UserInfoError::InvalidToken),
    };
    let mut response = match answer {
        Ok(info) => Json(info).into_response(),
        Err(UserInfoError::InvalidToken) => bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is expired, revoked or malformed",
        ),
        Err(UserInfoError::InsufficientScope) => bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the access token was not issued with scope openid",
        ),
        Err(UserInfoError::RateLimited(retry_after)) => {
            let limited = OAuthError::RateLimited { retry_after };
            return super::oauth::OAuthReply::from(Err::<(), _>(limited)).into_response();
        }
        Err(UserInfoError::Failed(error)) => {
            return super::oauth::OAuthReply::from(Err::<(), _>(OAuthError::Failed(error)))
                .into_response();
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(OwnBody);
    response
}

/// An RFC 6750 §3 error: the `WWW-Authenticate` challenge, and the same in an RFC 6749 body.
fn bearer_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut response = (status, Json(body)).into_response();
    let challenge = format!(r#"Bearer realm="portcullis", error="{error}""#);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
