//! `/v1/auth/grants`: the apps the caller has authorised.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Authenticated, Context};
use super::openapi::problems;
use crate::auth::{GrantView, Grants};
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
pub struct GrantList {
    grants: Vec<GrantView>,
}

problems!(GrantsProblems: [Unauthorized, RateLimited, ServiceUnavailable]);

/// GET /v1/auth/grants.
#[utoipa::path(
    get, path = "/v1/auth/grants", tag = "auth",
    summary = "The apps the user has authorised",
    security(("bearer" = [])),
    responses((status = 200, description = "The grants, oldest first", body = GrantList), GrantsProblems),
)]
pub async fn grants(
    State(grants): State<Arc<Grants>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<Json<GrantList>, ApiError> {
    Ok(Json(GrantList { grants: grants.list(&context, &principal).await? }))
}

problems!(RevokeGrantProblems: [Unauthorized, NotFound, RateLimited, ServiceUnavailable]);

/// DELETE /v1/auth/grants/{client_id}.
#[utoipa::path(
    delete, path = "/v1/auth/grants/{client_id}", tag = "auth",
    summary = "Revoke an app's access",
    description = "The consent is forgotten (the app asks again next time) and every token of \
        that app for the user stops working at once.",
    params(("client_id" = String, Path, description = "The app's client id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), RevokeGrantProblems),
)]
pub async fn revoke_grant(
    State(grants): State<Arc<Grants>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    grants.revoke(&context, &principal, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
