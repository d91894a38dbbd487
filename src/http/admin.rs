//! Handlers of the admin API (role `admin`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::extract::{Authenticated, Context};
use super::openapi::problems;
use crate::audit::query::{AuditQuery, Page};
use crate::auth::AuthService;
use crate::config::Posture;
use crate::domain::UserId;
use crate::error::ApiError;

problems!(UnlockProblems: [Unauthorized, Forbidden, NotFound, ServiceUnavailable]);

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
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin(&principal).await?;
    let user = UserId::parse(&id).ok_or_else(ApiError::not_found)?;
    auth.unlock_user(&context, user, &format!("admin {}", principal.user)).await?;
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
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(auth.audit_trail(&context, &principal, &query).await?))
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
    State(auth): State<Arc<AuthService>>,
    State(posture): State<Arc<Posture>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<Json<Posture>, ApiError> {
    auth.limit_read(&context, &principal).await?;
    auth.require_admin(&principal).await?;
    Ok(Json(Posture::clone(&posture)))
}
