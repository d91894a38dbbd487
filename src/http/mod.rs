//! The HTTP edge: router, extractors, middleware and handlers. Knows axum; asks `auth` for
//! everything else.

mod admin;
mod client_ip;
mod extract;
mod middleware;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::auth::AuthService;
use crate::metrics::Metrics;
use crate::store::Health;
pub use extract::TrustedProxies;

/// Largest request body accepted: 16 KiB, far above any legitimate request of the contract.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers share.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub auth: Arc<AuthService>,
    pub health: Arc<dyn Health>,
    pub proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
}

/// How the HTTP edge behaves.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub cors_origins: Vec<String>,
    /// Bounds a whole request, body upload included: a client that trickles its request in
    /// (slowloris) is cut off instead of holding a connection and a task.
    pub request_timeout: Duration,
    /// Serve `/metrics` here; otherwise it has a listener of its own.
    pub metrics_on_main_listener: bool,
}

/// The whole application, with every layer.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let mut routes = Router::new()
        .route("/v1/auth/register", post(routes::register))
        .route("/v1/auth/login", post(routes::login))
        .route("/v1/auth/refresh", post(routes::refresh))
        .route("/v1/auth/logout", post(routes::logout))
        .route("/v1/auth/logout-all", post(routes::logout_all))
        .route("/v1/auth/password", post(routes::change_password))
        .route("/v1/auth/me", get(routes::me))
        .route("/v1/auth/sessions", get(routes::sessions))
        .route("/v1/auth/sessions/{id}", delete(routes::revoke_session))
        .route("/v1/auth/events", get(routes::events))
        .route("/v1/admin/audit", get(admin::audit_trail))
        .route("/v1/admin/users/{id}/unlock", post(admin::unlock_user))
        .route("/.well-known/jwks.json", get(routes::jwks))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(routes::openapi));
    if settings.metrics_on_main_listener {
        routes = routes.route("/metrics", get(routes::metrics));
    }
    let routes = routes
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::problem_details));
    let routes = with_cors(routes, &settings.cors_origins);
    let metrics = state.metrics.clone();
    routes
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(metrics, middleware::track))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}

/// `/metrics` alone, for `METRICS_BIND`: a listener only operators reach.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(routes::metrics))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .with_state(metrics)
}

/// CORS for the configured origins only (none by default). A request from any other origin,
/// preflight included, gets no CORS header at all.
fn with_cors(routes: Router<AppState>, origins: &[String]) -> Router<AppState> {
    let allowed: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    if allowed.is_empty() {
        return routes;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.clone()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600));
    let allowed = Arc::new(allowed);
    routes.layer(cors).layer(axum::middleware::from_fn(move |request, next| {
        middleware::cors_guard(allowed.clone(), request, next)
    }))
}
