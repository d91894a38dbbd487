//! Handlers of the admin API (role `admin`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Admin, JsonBody};
use super::openapi::problems;
use crate::audit::query::{AuditQuery, Page};
use crate::auth::{
    AccountChange, Actor, AdminUserPage, AdminUserView, Administration, AuthError, Events,
    MAX_USERS_PAGE,
};
use crate::config::Posture;
use crate::domain::UserId;
use crate::error::ApiError;

problems!(UnlockProblems: [Unauthorized, Forbidden, NotFound, RateLimited, ServiceUnavailable]);

/// POST /v1/admin/users/{id}/unlock: lifts every lock of the user, email and devices (204).
/// 403 without the admin role; 404 for an unknown user.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/unlock", tag = "admin",
    summary = "Lift a user's lockout (role admin)",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Every lock of the user is lifted"), UnlockProblems),
)]
pub async fn unlock_user(
    State(admin): State<Arc<Administration>>,
    Admin { principal, context }: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    admin.unlock_user(&context, principal.user, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(AuditTrailProblems: [
    MalformedRequest, Unauthorized, Forbidden, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// GET /v1/admin/audit: the audit trail, newest first, filtered by `type`, `user_id`, `since`,
/// `until`, in pages of `limit` (`cursor` for the next). 403 without the admin role.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin", summary = "The audit trail (role admin)",
    params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of events", body = Page), AuditTrailProblems),
)]
pub async fn audit_trail(
    State(events): State<Arc<Events>>,
    _admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(events.audit_trail(&query).await?))
}

problems!(PostureProblems: [Unauthorized, Forbidden, RateLimited, ServiceUnavailable]);

/// GET /v1/admin/posture: the settings this instance started with that are valid but weak, as
/// `config check` prints them (an addition to the contract). It names variables and values,
/// never a secret; 403 without the admin role; takes from the reads budget.
#[utoipa::path(
    get, path = "/v1/admin/posture", tag = "admin",
    summary = "Weak settings of this instance (role admin)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The findings, most severe first", body = Posture),
        PostureProblems,
    ),
)]
pub async fn posture(
    State(posture): State<Arc<Posture>>,
    _admin: Admin,
) -> Result<Json<Posture>, ApiError> {
    Ok(Json(Posture::clone(&posture)))
}

/// The paging parameters of the accounts list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// A literal prefix of the normalised (lower-case) email.
    email: Option<String>,
    /// Accounts per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A new account: without `password` it can log in only after a password reset.
#[derive(Deserialize, ToSchema)]
pub struct NewUserByAdmin {
    email: String,
    password: Option<String>,
    /// Role names; `user` is always kept.
    roles: Option<Vec<String>>,
}

/// What to change; absent members stay as they are.
#[derive(Deserialize, ToSchema)]
pub struct UserChange {
    /// Replaces the roles; `user` is always kept.
    roles: Option<Vec<String>>,
    /// `true` ends every session of the account at once.
    disabled: Option<bool>,
    email_verified: Option<bool>,
    /// 1 to 200 characters; `null` clears it.
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    name: Option<Option<String>>,
}

problems!(UsersProblems: [
    MalformedRequest, Unauthorized, Forbidden, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// GET /v1/admin/users: accounts, newest first, in pages; `email` filters by prefix.
#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin", summary = "List accounts (role admin)",
    params(UsersQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of accounts", body = AdminUserPage), UsersProblems),
)]
pub async fn users(
    State(admin): State<Arc<Administration>>,
    _admin: Admin,
    Query(query): Query<UsersQuery>,
) -> Result<Json<AdminUserPage>, ApiError> {
    let (limit, cursor) = page_of(query.limit.as_deref(), query.cursor.as_deref(), MAX_USERS_PAGE)?;
    let page = admin.list_users(query.email.as_deref(), cursor, limit).await?;
    Ok(Json(page))
}

/// The `limit` (1 to `max`, or absent) and `cursor` of a list's page. An empty cursor
/// (`cursor=`) is the first page, as if it were absent.
pub(super) fn page_of<'a>(
    limit: Option<&str>,
    cursor: Option<&'a str>,
    max: u32,
) -> Result<(Option<u32>, Option<&'a str>), ApiError> {
    let limit = match limit.map(str::parse::<u32>) {
        None => None,
        Some(Ok(limit)) if (1..=max).contains(&limit) => Some(limit),
        Some(_) => {
            let message = format!("limit must be between 1 and {max}");
            return Err(AuthError::InvalidQuery(message).into());
        }
    };
    Ok((limit, cursor.filter(|c| !c.is_empty())))
}

problems!(CreateUserProblems: JSON_BODY, [
    Unauthorized, Forbidden, ValidationFailed, PasswordPolicy, EmailTaken, RateLimited,
    ServiceUnavailable,
]);

/// POST /v1/admin/users: creates an account.
#[utoipa::path(
    post, path = "/v1/admin/users", tag = "admin", summary = "Create an account (role admin)",
    request_body = NewUserByAdmin,
    security(("bearer" = [])),
    responses((status = 201, description = "The account", body = AdminUserView), CreateUserProblems),
)]
pub async fn create_user(
    State(admin): State<Arc<Administration>>,
    Admin { principal, context }: Admin,
    JsonBody(body): JsonBody<NewUserByAdmin>,
) -> Result<(StatusCode, Json<AdminUserView>), ApiError> {
    let roles = body.roles.unwrap_or_default();
    let password = body.password.as_deref();
    let user = admin.admin_create_user(&context, &principal, &body.email, password, &roles).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

problems!(UserProblems: [Unauthorized, Forbidden, NotFound, RateLimited, ServiceUnavailable]);

/// GET /v1/admin/users/{id}: one account.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}", tag = "admin", summary = "One account (role admin)",
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The account", body = AdminUserView), UserProblems),
)]
pub async fn user(
    State(admin): State<Arc<Administration>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    Ok(Json(admin.admin_user(id).await?))
}

problems!(UpdateUserProblems: JSON_BODY, [
    Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed, RateLimited,
    ServiceUnavailable,
]);

/// PATCH /v1/admin/users/{id}: roles, disabled, email verified.
#[utoipa::path(
    patch, path = "/v1/admin/users/{id}", tag = "admin", summary = "Change an account (role admin)",
    description = "Disabling ends every session of the account at once. An admin cannot remove \
        its own admin role or disable itself, and no change takes the role from, or disables, \
        the last enabled admin (409).",
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    request_body = UserChange,
    security(("bearer" = [])),
    responses((status = 200, description = "The account", body = AdminUserView), UpdateUserProblems),
)]
pub async fn update_user(
    State(admin): State<Arc<Administration>>,
    Admin { principal, context }: Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserChange>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    let change = AccountChange {
        roles: body.roles,
        disabled: body.disabled,
        email_verified: body.email_verified,
        name: body.name,
    };
    Ok(Json(admin.update_user(&context, Actor::Admin(principal.user), id, change).await?))
}

problems!(DeleteUserProblems: [
    Unauthorized, Forbidden, NotFound, Conflict, RateLimited, ServiceUnavailable,
]);

/// DELETE /v1/admin/users/{id}: deletes an account, as `DELETE /v1/auth/me` does.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}", tag = "admin", summary = "Delete an account (role admin)",
    description = "Every session ends at once; the email can register again; the audit events \
        stay. An admin cannot delete itself, and the last enabled admin is not deleted (409).",
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "The account is deleted"), DeleteUserProblems),
)]
pub async fn delete_user(
    State(admin): State<Arc<Administration>>,
    Admin { principal, context }: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    admin.admin_delete_user(&context, Actor::Admin(principal.user), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /v1/admin/users/{id}/sessions: ends every session of an account at once.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/sessions", tag = "admin",
    summary = "End every session of an account (role admin)",
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Every session has ended"), UserProblems),
)]
pub async fn end_user_sessions(
    State(admin): State<Arc<Administration>>,
    Admin { principal, context }: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    admin.admin_end_sessions(&context, Actor::Admin(principal.user), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
