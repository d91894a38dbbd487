//! Handlers: each parses its input, makes one call to `auth`, and maps the result.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, Context, JsonBody, MaybeAuthenticated, OptionalJsonBody};
use crate::audit::query::{AuditQuery, Page};
use crate::auth::{AuthError, AuthService, TokenPair};
use crate::domain::{Role, SessionId};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Health, SessionRecord, Timestamp, UserRecord};

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    device_token: Option<String>,
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// The paging parameters of the sessions list.
#[derive(Deserialize)]
pub struct SessionsQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// The public view of a user: never the hash.
#[derive(Serialize)]
pub struct UserView {
    id: String,
    email: String,
    created_at: Timestamp,
    roles: Vec<Role>,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
            roles: user.roles,
        }
    }
}

#[derive(Serialize)]
pub struct SessionView {
    id: String,
    created_at: Timestamp,
    last_used_at: Timestamp,
    ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

/// POST /v1/auth/register: creates an account (201). The password policy is checked before any
/// hashing; a taken email is 409.
pub async fn register(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth.register(&context, &body.email, &body.password, vec![Role::User]).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(user))))
}

/// POST /v1/auth/login: a token pair and a device token. Unknown email and wrong password answer
/// the same body after the same work.
pub async fn login(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<TokenPair>, ApiError> {
    let device = body.device_token.as_deref();
    Ok(Json(auth.login(&context, &body.email, &body.password, device).await?))
}

/// POST /v1/auth/refresh: rotates the refresh token; a rotated one presented again revokes its
/// session.
pub async fn refresh(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(auth.refresh(&context, &body.refresh_token).await?))
}

/// POST /v1/auth/logout: ends the bearer's session, or the refresh token's session (204).
pub async fn logout(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    auth.logout(&context, principal.as_ref(), refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/auth/logout-all: ends every session of the bearer's user (204).
pub async fn logout_all(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    auth.logout_all(&context, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/auth/password: changes the password and revokes every other session (204).
pub async fn change_password(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let (current, new) = (&body.current_password, &body.new_password);
    auth.change_password(&context, &principal, current, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/auth/me: the bearer's account.
pub async fn me(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(auth.me(&context, &principal).await?.into()))
}

/// GET /v1/auth/sessions: the bearer's live sessions, newest first.
pub async fn sessions(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<SessionsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = match query.limit.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(limit)) if limit >= 1 => Some(limit),
        Some(_) => {
            return Err(
                AuthError::InvalidQuery("limit must be a whole number from 1".into()).into()
            );
        }
    };
    let page = auth.sessions(&context, &principal, query.cursor.as_deref(), limit).await?;
    let sessions: Vec<SessionView> = page
        .sessions
        .into_iter()
        .map(|s: SessionRecord| SessionView {
            id: s.id.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
            current: s.id == principal.session,
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions, "next_cursor": page.next_cursor })))
}

/// DELETE /v1/auth/sessions/{id}: ends one of the bearer's own sessions; 404 for any other.
pub async fn revoke_session(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&id).ok_or_else(ApiError::not_found)?;
    auth.revoke_session(&context, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/auth/events: the caller's own security events, newest first, in pages.
pub async fn events(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(auth.own_events(&context, &principal, &query).await?))
}

/// GET /.well-known/jwks.json: the public keys that may still verify a live token.
pub async fn jwks(State(auth): State<Arc<AuthService>>) -> Json<serde_json::Value> {
    Json(auth.access_tokens().jwks())
}

/// GET /metrics: Prometheus text format.
pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, metrics.render())
}

/// GET /openapi.json: the OpenAPI 3.1 document of the whole API.
pub async fn openapi() -> impl IntoResponse {
    static DOCUMENT: &str = include_str!("openapi.json");
    ([(axum::http::header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// GET /healthz: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// GET /readyz: the database and session store answer within two seconds.
pub async fn readyz(
    State(health): State<Arc<dyn Health>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), health.ping()).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({ "status": "ready" }))),
        Ok(Err(error)) => Err(ApiError::unavailable(error.to_string())),
        Err(_) => Err(ApiError::unavailable("readiness check timed out")),
    }
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}
