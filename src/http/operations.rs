//! Handlers for operators and resource servers: keys, health, metrics and the API document.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::problems;
use crate::auth::AuthService;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Health;

/// The answer of the health endpoints.
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(examples("ok", "ready"))]
    status: &'static str,
}

problems!(NoProblems: []);

/// GET /.well-known/jwks.json: the public keys that may still verify a live token.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "operations",
    summary = "Public keys that verify access tokens",
    responses((status = 200, description = "A JWK set (RFC 7517)", body = Object), NoProblems),
)]
pub async fn jwks(State(auth): State<Arc<AuthService>>) -> Json<serde_json::Value> {
    Json(auth.access_tokens().jwks())
}

/// GET /metrics: Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (bind them where only operators reach)",
    responses(
        (
            status = 200, description = "Prometheus text format", body = String,
            content_type = "text/plain",
        ),
        NoProblems,
    ),
)]
pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, metrics.render())
}

/// GET /openapi.json: the OpenAPI 3.1 document of the whole API, built once from the routes.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object), NoProblems),
)]
pub async fn openapi() -> Result<impl IntoResponse, ApiError> {
    static DOCUMENT: LazyLock<Result<String, String>> =
        LazyLock::new(|| super::openapi().to_json().map_err(|e| e.to_string()));
    let document = DOCUMENT.as_ref().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], document.as_str()))
}

/// GET /healthz: the process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process runs", body = Status), NoProblems),
)]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

problems!(ReadyProblems: [ServiceUnavailable]);

/// GET /readyz: the database and session store answer within two seconds; else 503 with
/// `Retry-After`, like every 503, so that probes and clients back off.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", summary = "Readiness",
    responses(
        (status = 200, description = "The database and session store answer", body = Status),
        ReadyProblems,
    ),
)]
pub async fn readyz(State(health): State<Arc<dyn Health>>) -> Result<Json<Status>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), health.ping()).await {
        Ok(Ok(())) => Ok(Json(Status { status: "ready" })),
        Ok(Err(error)) => Err(ApiError::unavailable(error.to_string())),
        Err(_) => Err(ApiError::unavailable("readiness check timed out")),
    }
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}
