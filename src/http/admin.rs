//! Handlers of the admin API (role `admin`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::extract::{Authenticated, Context};
use crate::audit::query::{AuditQuery, Page};
use crate::auth::AuthService;
use crate::domain::UserId;
use crate::error::ApiError;

/// POST /v1/admin/users/{id}/unlock: lifts every lock of the user, email and devices (204).
/// 403 without the admin role; 404 for an unknown user.
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

/// GET /v1/admin/audit: the audit trail, newest first, filtered by `type`, `user_id`, `since`,
/// `until`, in pages of `limit` (`cursor` for the next). 403 without the admin role.
pub async fn audit_trail(
    State(auth): State<Arc<AuthService>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(auth.audit_trail(&context, &principal, &query).await?))
}
