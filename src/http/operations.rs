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
use crate::auth::{Authorization, Sessions};
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

/// `Cache-Control` of the JWKS and the discovery document: public, for a third of
/// `KEY_PUBLISH_AHEAD`, so that a verifier caching them has seen a new key well before it signs.
fn key_cache(sessions: &Sessions) -> [(header::HeaderName, String); 1] {
    let max_age = sessions.access_tokens().publish_ahead().as_secs() / 3;
    [(header::CACHE_CONTROL, format!("public, max-age={max_age}"))]
}

/// GET /.well-known/jwks.json: the public keys that may still verify a live token, and the next
/// key before it signs.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "operations",
    summary = "Public keys that verify access tokens",
    description = "Every key that may still verify a live token, and the next key from \
        KEY_PUBLISH_AHEAD before it signs. Cache-Control: public, max-age of a third of that lead.",
    responses((status = 200, description = "A JWK set (RFC 7517)", body = Object), NoProblems),
)]
pub async fn jwks(State(sessions): State<Arc<Sessions>>) -> impl IntoResponse {
    (key_cache(&sessions), Json(sessions.access_tokens().jwks()))
}

/// GET /.well-known/openid-configuration: where verifiers find the keys (OpenID Connect
/// Discovery 1.0, RFC 8414), for consumers configured with an issuer URL.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "operations",
    summary = "Discovery document: issuer, JWKS location, signing algorithms, endpoints",
    description = "URLs are built from ISSUER, which should be this service's public URL; they \
        are never taken from the request.",
    responses((status = 200, description = "The discovery document", body = Object), NoProblems),
)]
pub async fn discovery(
    State(sessions): State<Arc<Sessions>>,
    State(authorization): State<Arc<Authorization>>,
) -> impl IntoResponse {
    let issuer = sessions.access_tokens().issuer();
    (key_cache(&sessions), Json(discovery_document(issuer, authorization.provider())))
}

/// GET /.well-known/oauth-authorization-server: RFC 8414's name for the same document.
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "operations",
    summary = "Authorization server metadata (RFC 8414): the discovery document",
    responses((status = 200, description = "The discovery document", body = Object), NoProblems),
)]
pub async fn authorization_server_metadata(
    sessions: State<Arc<Sessions>>,
    authorization: State<Arc<Authorization>>,
) -> impl IntoResponse {
    discovery(sessions, authorization).await
}

/// The discovery document (OpenID Connect Discovery 1.0, RFC 8414): what exists, at the
/// addresses `issuer` gives. With the provider off (`ISSUER` is a name), only what resource
/// servers and the first-party API use.
fn discovery_document(issuer: &str, provider: bool) -> serde_json::Value {
    let base = issuer.trim_end_matches('/');
    let url = |path: &str| format!("{base}{path}");
    let mut document = provider_document(issuer);
    if !provider && let Some(members) = document.as_object_mut() {
        let kept = [
            "issuer",
            "jwks_uri",
            "id_token_signing_alg_values_supported",
            "subject_types_supported",
            "claims_supported",
            "service_documentation",
        ];
        members.retain(|name, _| kept.contains(&name.as_str()));
    }
    if let Some(members) = document.as_object_mut() {
        // The first-party JSON API, which is not OAuth: its endpoints under a name of their own.
        members.insert(
            "portcullis_endpoints".to_owned(),
            serde_json::json!({
                "register": url("/v1/auth/register"),
                "login": url("/v1/auth/login"),
                "refresh": url("/v1/auth/refresh"),
                "logout": url("/v1/auth/logout"),
                "me": url("/v1/auth/me"),
                "second_factor": url("/v1/auth/login/mfa"),
                "passkey_login_options": url("/v1/auth/passkeys/login/options"),
                "passkey_login": url("/v1/auth/passkeys/login"),
            }),
        );
    }
    document
}

/// The provider's members of the discovery document.
fn provider_document(issuer: &str) -> serde_json::Value {
    let base = issuer.trim_end_matches('/');
    let url = |path: &str| format!("{base}{path}");
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": url("/oauth2/authorize"),
        "jwks_uri": url("/.well-known/jwks.json"),
        "token_endpoint": url("/oauth2/token"),
        "userinfo_endpoint": url("/oauth2/userinfo"),
        "end_session_endpoint": url("/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint": url("/oauth2/introspect"),
        "revocation_endpoint": url("/oauth2/revoke"),
        "revocation_endpoint_auth_methods_supported": client_auth,
        "backchannel_logout_supported": false,
        "backchannel_logout_session_supported": false,
        "pushed_authorization_request_endpoint": url("/oauth2/par"),
        "require_pushed_authorization_requests": false,
        "request_parameter_supported": false,
        "code_challenge_methods_supported": ["S256"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "subject_types_supported": ["public"],
        "claims_supported": [
            "iss", "aud", "sub", "sid", "iat", "exp", "jti", "roles", "amr", "client_id",
            "auth_time", "scope", "azp", "nonce", "at_hash", "email", "email_verified", "name",
        ],
        "service_documentation": url("/openapi.json"),
    })
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
