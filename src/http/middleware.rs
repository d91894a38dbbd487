//! Middleware: request ids, request logging, metrics and security headers (one layer, `frame`),
//! problem-details rendering with the header-block limit (one layer, `problem_details`), the
//! CORS guard, and the panic handler. Each `from_fn` layer boxes a future and clones the service
//! below it on every request, so what always runs together is one layer.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::domain::escape_controls;
use crate::error::{ApiError, ErrorCode, InternalCause, Problem, render};
use crate::metrics::{Metrics, UNMATCHED_ROUTE};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request, in its extensions for extractors and handlers; shared, since every
/// request reads it again on the way out.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Frames every request: gives it a fresh id and echoes it on the response, logs it once when it
/// completes, counts and times it by method, route pattern and status, and sets the security
/// headers on its response.
///
/// The id is always made here, never taken from the client: audit events carry it as the key of
/// the request that caused them, and a client-chosen id could repeat or point at another
/// request. A well-formed `X-Request-Id` of the client is only logged, as `client_request_id`,
/// for tracing across services.
pub async fn frame(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let client_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_request_id(v))
        .map(str::to_owned);
    request.extensions_mut().insert(RequestId(Arc::from(id.as_str())));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        client_request_id = client_id.as_deref(),
        method = %escape_controls(request.method().as_str()),
        // The path is the client's: escaped, as every untrusted text in a log (CWE-117).
        path = %escape_controls(request.uri().path()),
    );
    // Cheap clones (a `Method` of the standard set is a tag, a `MatchedPath` an `Arc<str>`):
    // the labels are resolved to a bounded set in `Metrics`, not copied into new strings here.
    let method = request.method().clone();
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, |path| path.as_str());
    metrics.observe_request(&method, route, response.status(), elapsed.as_secs_f64());
    set_security_headers(response.headers_mut());
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request completed"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Up to 64 characters of `[A-Za-z0-9._-]`: enough for any tracing id, too little to smuggle
/// anything into the logs.
fn is_acceptable_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The contract's security headers alone, for the listener that serves only `/metrics`.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set_security_headers(response.headers_mut());
    response
}

/// The contract's security headers, on every response (OWASP HTTP Headers Cheat Sheet).
fn set_security_headers(headers: &mut axum::http::HeaderMap) {
    // A page sets its own policy and referrer rule (its stylesheet, its forms' targets); every
    // other answer gets the strictest.
    for (name, value) in [
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    let fixed: [(HeaderName, &'static str); 4] = [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            HeaderName::from_static("permissions-policy"),
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), microphone=(), payment=(), usb=()",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Nothing is cached but what a handler marks cacheable itself (the JWKS and the discovery
    // document, which are public and change only with a key rotation announced ahead).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Renders every error response as problem details with the request id, and logs the hidden
/// cause of a 5xx once, with the request id, here. A request head over `MAX_HEADER_BLOCK` is
/// answered 431 (RFC 6585 §5) before any handler runs. The listener refuses such heads before
/// hyper parses them (see `head`), counting the bytes as sent; this counts them as rebuilt, and
/// catches what the two counts differ on. A query with a control character is answered 422 here
/// too, once for every route.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<crate::http::middleware::RequestId>().cloned();
    let oauth = request.uri().path().starts_with("/oauth2/");
    let response = if head_len(&request) > MAX_HEADER_BLOCK {
        ApiError::new(ErrorCode::HeaderTooLarge).into_response()
    } else if request.uri().query().is_some_and(has_control_character) {
        ApiError::new(ErrorCode::ValidationFailed)
            .detail("a query parameter holds a control character")
            .into_response()
    } else {
        next.run(request).await
    };
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if response.extensions().get::<crate::http::oauth::OwnBody>().is_some() {
        let (mut parts, body) = response.into_parts();
        if let Some(InternalCause(cause)) = parts.extensions.remove::<InternalCause>() {
            tracing::error!(status = status.as_u16(), cause = %cause, "request failed");
        }
        return Response::from_parts(parts, body);
    }
    let (mut parts, _) = response.into_parts();
    let problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => problem,
        None => {
            // An error that no handler built (axum's 405, a layer's 413): map the status.
            let generic = ApiError::from_status(status).into_response();
            let (generic_parts, _) = generic.into_parts();
            for (name, value) in &generic_parts.headers {
                parts.headers.insert(name.clone(), value.clone());
            }
            if let Some(cause) = generic_parts.extensions.get::<InternalCause>() {
                parts.extensions.insert(cause.clone());
            }
            generic_parts
                .extensions
                .get::<Problem>()
                .cloned()
                .unwrap_or(Problem(Default::default()))
        }
    };
    if let Some(InternalCause(cause)) = parts.extensions.remove::<InternalCause>() {
        tracing::error!(status = status.as_u16(), cause = %cause, "request failed");
    }
    if oauth {
        // An error no OAuth handler built (a 405, a 413, the timeout): RFC 6749's shape.
        return crate::http::oauth::generic_error(parts, &problem);
    }
    let body = render(&problem, request_id.as_ref().map(|id| &*id.0));
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The answer to a request the listener refuses before routing (its own check of the request
/// head, see `head`): the same problem details, fresh request id and security headers that
/// `frame` and `problem_details` give every other answer. Returns the status, the header
/// fields, the body and the request id.
pub fn refusal(error: ApiError) -> (StatusCode, axum::http::HeaderMap, String, Arc<str>) {
    let id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
    let (mut parts, _) = error.into_response().into_parts();
    let problem = parts.extensions.remove::<Problem>().unwrap_or(Problem(Default::default()));
    let body = render(&problem, Some(&id));
    parts.headers.remove(header::CONTENT_LENGTH);
    set_security_headers(&mut parts.headers);
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert(X_REQUEST_ID.clone(), value);
    }
    (parts.status, parts.headers, body, id)
}

/// Whether a name or value of the query, percent-decoded, holds a control character (C0, DEL or
/// C1). No parameter of the contract takes one, and they would otherwise reach a handler, a log
/// line or a database (PostgreSQL refuses NUL in text with an error, not a 4xx) as they are.
fn has_control_character(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(name, value)| name.chars().chain(value.chars()).any(char::is_control))
}

/// The largest request head answered normally: the request line and the header fields, 64 KiB.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// The size of the request head as HTTP/1.1 sends it: `METHOD SP target SP HTTP/1.1 CRLF`, then
/// `name: value CRLF` per field, then the empty line.
fn head_len(request: &Request) -> usize {
    let target = request.uri().path_and_query().map_or(1, |target| target.as_str().len());
    let line = request.method().as_str().len() + 1 + target + 1 + "HTTP/1.1\r\n".len();
    let fields: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    line + fields + 2
}

/// Removes CORS headers from responses to origins that are not allowed.
pub async fn cors_guard(allowed: Arc<Vec<HeaderValue>>, request: Request, next: Next) -> Response {
    let origin_allowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| allowed.iter().any(|a| a == origin));
    let mut response = next.run(request).await;
    if !origin_allowed {
        let names: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}

/// A panic in a handler answers 500 problem details instead of dropping the connection.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    let mut response = ApiError::internal(format!("handler panicked: {message}")).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The paths of the OpenID provider and its pages, which a service whose `ISSUER` is a name does
/// not serve.
const PROVIDER_PATHS: [&str; 6] =
    ["/oauth2/", "/v1/oauth/", "/login", "/consent", "/logout", "/assets/"];

/// Answers 404 on the provider's paths, as for any path that is not served.
pub async fn without_provider(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if PROVIDER_PATHS.iter().any(|prefix| path.starts_with(prefix)) {
        return crate::http::operations::not_found().await.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[test]
    fn control_characters_are_found_in_decoded_names_and_values() {
        for query in ["email=%00", "email=a%1Fb", "x=%7F", "e=%C2%85", "%00=1", "a=1&b=\u{7}"] {
            assert!(has_control_character(query), "{query}");
        }
        for query in ["email=ada%40example.com", "a=%C2%A0&b=+", "e=%E2%80%8B", "x=%FF", ""] {
            assert!(!has_control_character(query), "{query}");
        }
    }

    #[test]
    fn the_head_length_counts_the_request_line_and_every_field() {
        let request = Request::builder()
            .uri("/v1/auth/me?x=1")
            .header("host", "a")
            .header("x-long", "b".repeat(10))
            .body(Body::empty())
            .unwrap();
        // "GET /v1/auth/me?x=1 HTTP/1.1\r\n" + "host: a\r\n" + "x-long: bbbbbbbbbb\r\n" + "\r\n"
        assert_eq!(head_len(&request), 30 + 9 + 20 + 2);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem_details_without_the_message() {
        #[allow(clippy::panic)]
        async fn boom() -> &'static str {
            panic!("secret internals");
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn(problem_details))
            .layer(axum::middleware::from_fn_with_state(Arc::new(Metrics::new().unwrap()), frame));
        let request = Request::builder().uri("/boom").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert_eq!(body["request_id"], id.as_str());
        assert!(!body.to_string().contains("secret internals"));
    }
}
