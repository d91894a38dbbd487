//! Handlers of `/v1/auth/*`: each parses its input, makes one call to `auth`, and maps the
//! result. Each `#[utoipa::path]` is the operation's entry in the OpenAPI document, with the
//! problems it can answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cookie::{CookiePolicy, pair_response};
use super::extract::{Authenticated, Context, JsonBody, MaybeAuthenticated, OptionalJsonBody};
use super::openapi::problems;
use crate::audit::query::{AuditQuery, Page};
use crate::auth::{
    Accounts, AuthError, Events, Registration, Sessions, SignIn, TokenPair, UserView,
};
use crate::domain::{Role, SessionId};
use crate::error::ApiError;
use crate::store::{SessionKind, SessionRecord, Timestamp};

/// A new account's email and password.
#[derive(Deserialize, ToSchema)]
pub struct NewAccount {
    email: String,
    password: String,
}

/// An email and password, and the device token of an earlier login on this device if any.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    email: String,
    password: String,
    device_token: Option<String>,
}

/// In cookie mode the token may be left out (or the body sent empty): the cookie carries it.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(required = true)]
    refresh_token: Option<String>,
}

/// Without a bearer token, the refresh token names the session to end.
#[derive(Deserialize, ToSchema)]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// The largest page of sessions, as the document states (`maximum = 200`) and as the audit
/// endpoints refuse more.
const MAX_SESSIONS_LIMIT: u32 = 200;

/// The paging parameters of the sessions list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// Sessions per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    #[schema(format = Uuid)]
    id: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    last_used_at: Timestamp,
    ip: Option<String>,
    user_agent: Option<String>,
    /// `browser`: a sign-in on the pages (its cookie ends with it); `api`: every other.
    kind: &'static str,
    /// The OAuth client whose grant this session holds, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// A browser session's: the names of the apps it signed in to.
    #[serde(skip_serializing_if = "Option::is_none")]
    clients: Option<Vec<String>>,
    /// The session of the token that asked.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionView>,
    /// The cursor of the next page; null on the last.
    next_cursor: Option<String>,
}

problems!(RegisterProblems: JSON_BODY, [
    ValidationFailed, PasswordPolicy, EmailTaken, RateLimited, ServiceUnavailable,
]);

/// POST /v1/auth/register: creates an account (201). The password policy is checked before any
/// hashing; a taken email is 409.
#[utoipa::path(
    post, path = "/v1/auth/register", tag = "auth", summary = "Create an account",
    request_body = NewAccount,
    responses((status = 201, description = "The new user", body = UserView), RegisterProblems),
)]
pub async fn register(
    State(registration): State<Arc<Registration>>,
    Context(context): Context,
    JsonBody(body): JsonBody<NewAccount>,
) -> Result<impl IntoResponse, ApiError> {
    let user =
        registration.register(&context, &body.email, &body.password, vec![Role::User]).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

problems!(LoginProblems: JSON_BODY, [
    InvalidCredentials, MfaRequired, EmailNotVerified, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// POST /v1/auth/login: a token pair and a device token. Unknown email and wrong password answer
/// the same body after the same work.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth", summary = "Log in",
    description = "Unknown email and wrong password answer the same. After LOCKOUT_THRESHOLD \
        failures an email answers 423, unless the request carries this account's device_token. \
        For an account with TOTP the right password answers 401 mfa_required with an mfa_token \
        for /v1/auth/login/mfa.",
    request_body = Credentials,
    responses(
        (status = 200, description = "A token pair and a device token", body = TokenPair),
        LoginProblems,
    ),
)]
pub async fn login(
    State(sign_in): State<Arc<SignIn>>,
    State(cookie): State<Option<Arc<CookiePolicy>>>,
    Context(context): Context,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let device = body.device_token.as_deref();
    let pair = sign_in.login(&context, &body.email, &body.password, device).await?;
    Ok(pair_response(&cookie, pair))
}

problems!(RefreshProblems: JSON_BODY, [InvalidToken, TokenReused, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/refresh: rotates the refresh token; a rotated one presented again revokes its
/// session.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth", summary = "Rotate a refresh token",
    description = "A rotated token presented again answers token_reused and revokes its session. \
        With REFRESH_COOKIE=on a request without a body uses the refresh cookie, from an origin \
        in CORS_ORIGINS with X-Requested-With (403 otherwise).",
    request_body(content = Option<RefreshRequest>),
    responses((status = 200, description = "A new token pair", body = TokenPair), RefreshProblems),
)]
pub async fn refresh(
    State(sessions): State<Arc<Sessions>>,
    State(cookie): State<Option<Arc<CookiePolicy>>>,
    Context(context): Context,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = match (body.and_then(|b| b.refresh_token), &cookie) {
        (Some(token), _) => token,
        (None, Some(policy)) => policy.token(&headers)?.ok_or(AuthError::InvalidToken)?,
        (None, None) => return Err(ApiError::malformed("missing field `refresh_token`")),
    };
    let pair = sessions.refresh(&context, &token).await?;
    Ok(pair_response(&cookie, pair))
}

problems!(LogoutProblems: JSON_BODY, [Unauthorized, InvalidToken, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/logout: ends the bearer's session, or the refresh token's session (204).
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth", summary = "End this session",
    description = "With a bearer token, its session; otherwise the session of the refresh token \
        in the body.",
    request_body(content = Option<LogoutRequest>),
    security(("bearer" = []), ()),
    responses((status = 204, description = "The session has ended"), LogoutProblems),
)]
pub async fn logout(
    State(sessions): State<Arc<Sessions>>,
    State(cookie): State<Option<Arc<CookiePolicy>>>,
    Context(context): Context,
    headers: HeaderMap,
    MaybeAuthenticated(principal): MaybeAuthenticated,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> Result<Response, ApiError> {
    let mut refresh_token = body.and_then(|b| b.refresh_token);
    if let (None, None, Some(policy)) = (&principal, &refresh_token, &cookie) {
        refresh_token = policy.token(&headers)?;
    }
    sessions.logout(&context, principal.as_ref(), refresh_token.as_deref()).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for clear in cookie.as_ref().map(|p| p.clear()).unwrap_or_default() {
        response.headers_mut().append(axum::http::header::SET_COOKIE, clear);
    }
    Ok(response)
}

problems!(LogoutAllProblems: [Unauthorized, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/logout-all: ends every session of the bearer's user (204).
#[utoipa::path(
    post, path = "/v1/auth/logout-all", tag = "auth", summary = "End every session of the user",
    security(("bearer" = [])),
    responses((status = 204, description = "Every session has ended"), LogoutAllProblems),
)]
pub async fn logout_all(
    State(sessions): State<Arc<Sessions>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    sessions.logout_all(&context, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(PasswordProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, PasswordPolicy, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// POST /v1/auth/password: changes the password and revokes every other session (204).
#[utoipa::path(
    post, path = "/v1/auth/password", tag = "auth", summary = "Change the password",
    description = "Revokes every other session. A wrong current password counts as a failed \
        login.",
    request_body = PasswordChange,
    security(("bearer" = [])),
    responses((status = 204, description = "The password is changed"), PasswordProblems),
)]
pub async fn change_password(
    State(accounts): State<Arc<Accounts>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let (current, new) = (&body.current_password, &body.new_password);
    accounts.change_password(&context, &principal, current, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(ReadProblems: [Unauthorized, RateLimited, ServiceUnavailable]);
problems!(PagedReadProblems: [MalformedRequest, Unauthorized, ValidationFailed, RateLimited, ServiceUnavailable]);

/// GET /v1/auth/me: the bearer's account.
#[utoipa::path(
    get, path = "/v1/auth/me", tag = "auth", summary = "The signed-in user",
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = UserView), ReadProblems),
)]
pub async fn me(
    State(sessions): State<Arc<Sessions>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(sessions.me(&context, &principal).await?))
}

/// A change to the caller's own profile.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    /// 1 to 200 characters; `null` clears it. Absent: left as it is.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    name: Option<Option<String>>,
}

problems!(ProfileProblems: JSON_BODY, [Unauthorized, ValidationFailed, RateLimited, ServiceUnavailable]);

/// PATCH /v1/auth/me: the caller's own name.
#[utoipa::path(
    patch, path = "/v1/auth/me", tag = "auth", summary = "Change the signed-in user's name",
    request_body = ProfileChange,
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = UserView), ProfileProblems),
)]
pub async fn update_me(
    State(accounts): State<Arc<Accounts>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<ProfileChange>,
) -> Result<Json<UserView>, ApiError> {
    let name = body.name.as_ref().map(Option::as_deref);
    Ok(Json(accounts.update_profile(&context, &principal, name).await?))
}

/// GET /v1/auth/sessions: the bearer's live sessions, newest first.
#[utoipa::path(
    get, path = "/v1/auth/sessions", tag = "auth",
    summary = "The user's live sessions, newest first, in pages",
    params(SessionsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The sessions", body = SessionList), PagedReadProblems),
)]
pub async fn sessions(
    State(sessions): State<Arc<Sessions>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<SessionsQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = match query.limit.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(limit)) if (1..=MAX_SESSIONS_LIMIT).contains(&limit) => Some(limit),
        Some(_) => {
            let message = format!("limit must be between 1 and {MAX_SESSIONS_LIMIT}");
            return Err(AuthError::InvalidQuery(message).into());
        }
    };
    // An empty cursor (`cursor=`) is the first page, as if it were absent.
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let mut page = sessions.sessions(&context, &principal, cursor, limit).await?;
    let sessions = page
        .sessions
        .into_iter()
        .map(|s: SessionRecord| SessionView {
            clients: page.clients.remove(&s.id),
            id: s.id.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
            kind: if s.kind == SessionKind::Browser { "browser" } else { "api" },
            client_id: s.kind.client().map(str::to_owned),
            current: s.id == principal.session,
        })
        .collect();
    Ok(Json(SessionList { sessions, next_cursor: page.next_cursor }))
}

problems!(RevokeSessionProblems: [Unauthorized, NotFound, RateLimited, ServiceUnavailable]);

/// DELETE /v1/auth/sessions/{id}: ends one of the bearer's own sessions; 404 for any other.
#[utoipa::path(
    delete, path = "/v1/auth/sessions/{id}", tag = "auth",
    summary = "End one of the user's sessions",
    params(("id" = uuid::Uuid, Path, description = "The session's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "The session has ended"), RevokeSessionProblems),
)]
pub async fn revoke_session(
    State(sessions): State<Arc<Sessions>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&id).ok_or_else(ApiError::not_found)?;
    sessions.revoke_session(&context, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(EventsProblems: [
    MalformedRequest, Unauthorized, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// GET /v1/auth/events: the caller's own security events, newest first, in pages.
#[utoipa::path(
    get, path = "/v1/auth/events", tag = "auth",
    summary = "The user's own security events, newest first",
    params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of events", body = Page), EventsProblems),
)]
pub async fn events(
    State(events): State<Arc<Events>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(events.own_events(&context, &principal, &query).await?))
}
