//! The HTTP edge: router, extractors, middleware and handlers. Knows axum; asks `auth` for
//! everything else.
//!
//! Every route is registered in `api_routes` with `routes!`, which takes the path and method
//! from the handler's `#[utoipa::path]`: the router and the OpenAPI document come from that one
//! table, so a route cannot be served undocumented or documented unserved. Add routes there only.

mod account;
mod admin;
mod client_ip;
mod clients;
pub mod cookie;
mod extract;
mod factors;
mod grants;
mod guard;
mod head;
mod interactions;
pub mod limits;
mod middleware;
mod oauth;
pub mod openapi;
mod operations;
mod pages;
mod routes;
pub mod serve;
pub mod tls;
mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::auth::{
    Accounts, Administration, Authorization, BrowserSessions, ClientEndpoints, Clients, Events,
    Factors, Grants, Recovery, Registration, Sessions, SignIn,
};
use crate::config::Posture;
use crate::metrics::Metrics;
use crate::store::Health;
pub use client_ip::client_ip;
pub use extract::{TrustedProxies, bearer_token, decode_json_object};
pub use pages::Pages;
pub use routes::{Credentials, LogoutRequest, NewAccount, PasswordChange, RefreshRequest};
pub use serve::{Clamped, ServeSettings, serve};
pub use tls::Tls;

/// Largest request body accepted: 16 KiB, far above any legitimate request of the contract.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers share.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub sign_in: Arc<SignIn>,
    /// Who is calling, and the sessions and their tokens: the narrow state of most handlers.
    pub sessions: Arc<Sessions>,
    pub registration: Arc<Registration>,
    pub accounts: Arc<Accounts>,
    pub factors: Arc<Factors>,
    pub recovery: Arc<Recovery>,
    pub admin: Arc<Administration>,
    /// The audit trail as its readers see it.
    pub events: Arc<Events>,
    /// The OAuth clients.
    pub clients: Arc<Clients>,
    /// The endpoints where a client authenticates.
    pub client_endpoints: Arc<ClientEndpoints>,
    /// The authorization endpoint and the steps its pages finish.
    pub authorization: Arc<Authorization>,
    /// The browsers' sign-in sessions.
    pub browsers: Arc<BrowserSessions>,
    /// The apps each user has authorised.
    pub grants: Arc<Grants>,
    /// The pages' templates.
    pub pages: Arc<Pages>,
    pub health: Arc<dyn Health>,
    pub proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
    /// The posture report, computed once at start from the settings.
    pub posture: Arc<Posture>,
    /// With `REFRESH_COOKIE=on`: the refresh cookie's rules.
    pub cookie: Option<Arc<cookie::CookiePolicy>>,
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

/// Every route of the API but `/metrics`, each with its OpenAPI operation.
fn api_routes() -> Vec<UtoipaMethodRouter<AppState>> {
    vec![
        routes!(routes::register),
        routes!(routes::login),
        routes!(routes::refresh),
        routes!(routes::logout),
        routes!(routes::logout_all),
        routes!(routes::change_password),
        routes!(routes::me, routes::update_me),
        routes!(routes::sessions),
        routes!(routes::revoke_session),
        routes!(grants::grants),
        routes!(grants::revoke_grant),
        routes!(routes::events),
        routes!(account::verify_email),
        routes!(account::resend_verification),
        routes!(account::forgot_password),
        routes!(account::reset_password),
        routes!(account::change_email),
        routes!(account::delete_account),
        routes!(factors::login_second_factor),
        routes!(factors::start_totp, factors::disable_totp),
        routes!(factors::confirm_totp),
        routes!(factors::regenerate_recovery_codes),
        routes!(factors::passkey_registration_options),
        routes!(factors::add_passkey, factors::passkeys),
        routes!(factors::remove_passkey),
        routes!(factors::passkey_login_options),
        routes!(factors::passkey_login),
        routes!(admin::audit_trail),
        routes!(admin::unlock_user),
        routes!(admin::users, admin::create_user),
        routes!(admin::user, admin::update_user, admin::delete_user),
        routes!(admin::end_user_sessions),
        routes!(admin::posture),
        routes!(clients::clients, clients::create_client),
        routes!(clients::client, clients::update_client, clients::delete_client),
        routes!(clients::rotate_secret),
        routes!(pages::authorize_get, pages::authorize_post),
        routes!(oauth::token),
        routes!(userinfo::userinfo_get, userinfo::userinfo_post),
        routes!(oauth::introspect),
        routes!(oauth::par),
        routes!(oauth::revoke),
        routes!(pages::end_session_get, pages::end_session_post),
        routes!(interactions::interaction),
        routes!(interactions::accept),
        routes!(interactions::reject),
        routes!(operations::authorization_server_metadata),
        routes!(operations::jwks),
        routes!(operations::discovery),
        routes!(operations::healthz),
        routes!(operations::readyz),
        routes!(operations::openapi),
    ]
}

/// The pages: HTML, outside the API's OpenAPI document.
fn page_routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/login", get(pages::login_page).post(pages::submit_login))
        .route("/consent", get(pages::consent_page).post(pages::decide_consent))
        .route("/logout", get(pages::end_session_get).post(pages::confirm_logout))
        .route("/login/resume", get(interactions::resume))
        .route("/assets/{name}", get(pages::asset))
}

/// `/metrics`, on the main listener or on its own.
fn metrics_route<S>() -> UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Metrics>: FromRef<S>,
{
    routes!(operations::metrics)
}

/// The OpenAPI 3.1 document of the whole API, `/metrics` included wherever it is bound.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let api = OpenApiRouter::<AppState>::with_openapi(openapi::base());
    let mut document = api_routes()
        .into_iter()
        .chain([metrics_route()])
        .fold(api, OpenApiRouter::routes)
        .into_openapi();
    openapi::forbid_control_characters_in_queries(&mut document);
    document
}

/// The (method, path) of every route the main router can serve: what it is built from.
pub fn route_table() -> Vec<(Method, String)> {
    let mut table = Vec::new();
    for (_, paths, _) in api_routes().into_iter().chain([metrics_route()]) {
        for (path, item) in &paths.paths {
            for (method, _) in openapi::operations(item) {
                table.push((method, path.clone()));
            }
        }
    }
    table
}

/// The whole application, with every layer.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let mut api = OpenApiRouter::new();
    for entry in api_routes() {
        api = api.routes(entry);
    }
    if settings.metrics_on_main_listener {
        api = api.routes(metrics_route());
    }
    let (routes, _) = api.split_for_parts();
    let mut routes = routes.merge(page_routes());
    if !state.authorization.provider() {
        // `ISSUER` is a name: the provider and its pages are not there.
        routes = routes.layer(axum::middleware::from_fn(middleware::without_provider));
    }
    let routes = routes
        .fallback(operations::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::problem_details));
    let routes = with_cors(routes, &settings.cors_origins, state.cookie.is_some());
    let metrics = state.metrics.clone();
    routes.layer(axum::middleware::from_fn_with_state(metrics, middleware::frame)).with_state(state)
}

/// `/metrics` alone, for `METRICS_BIND`: a listener only operators reach.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    let (routes, _) = OpenApiRouter::new().routes(metrics_route()).split_for_parts();
    routes.layer(axum::middleware::from_fn(middleware::security_headers)).with_state(metrics)
}

/// CORS for the configured origins only (none by default). A request from any other origin,
/// preflight included, gets no CORS header at all.
fn with_cors(routes: Router<AppState>, origins: &[String], cookie: bool) -> Router<AppState> {
    let allowed: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    if allowed.is_empty() {
        return routes;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.clone()))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        // The refresh cookie travels only on credentialed requests.
        .allow_credentials(cookie)
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            HeaderName::from_static("x-request-id"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(Duration::from_secs(600));
    let allowed = Arc::new(allowed);
    routes.layer(cors).layer(axum::middleware::from_fn(move |request, next| {
        middleware::cors_guard(allowed.clone(), request, next)
    }))
}
