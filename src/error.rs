//! `ApiError`: the one place that picks status codes, `code`s and public messages.
//!
//! Responses are RFC 9457 problem details. A handler's error carries its problem in a response
//! extension; the `problem_details` middleware adds the request id and renders it, and turns any
//! other error status (from axum, a layer, a panic) into a problem too, so every error body has
//! the same shape. Internal causes are logged once there, never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::AuthError;
use crate::domain::PolicyViolation;

/// An error on its way to becoming a problem-details response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    violations: Option<Vec<PolicyViolation>>,
    retry_after: Option<u64>,
    /// `RateLimit-Limit` of a 429.
    rate_limit: Option<u32>,
    bearer_challenge: bool,
    internal_cause: Option<String>,
}

/// The problem, kept in the response's extensions until the middleware renders it.
#[derive(Clone, Debug)]
pub struct Problem(pub Map<String, Value>);

/// The hidden cause of a 5xx, logged by the middleware with the request id.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            violations: None,
            retry_after: None,
            rate_limit: None,
            bearer_challenge: false,
            internal_cause: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", detail)
    }

    pub fn unauthorized() -> Self {
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer access token is required",
        );
        error.bearer_challenge = true;
        error
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a backend is unavailable; try again shortly",
        );
        error.internal_cause = Some(cause.into());
        error
    }

    pub fn internal(cause: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; quote the request id when reporting it",
        );
        error.internal_cause = Some(cause.into());
        error
    }

    /// The problem a bare status maps to, for error responses that no handler built.
    pub fn from_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            401 => return Self::unauthorized(),
            403 => ("forbidden", "not allowed"),
            404 => ("not_found", "no such resource"),
            405 => ("method_not_allowed", "this method is not allowed on this resource"),
            408 => ("request_timeout", "the request took too long to arrive"),
            413 => ("payload_too_large", "the request body is larger than 16 KiB"),
            415 => ("unsupported_media_type", "the request body must be application/json"),
            422 => ("validation_failed", "the request is not valid"),
            429 => ("rate_limited", "too many requests"),
            503 => return Self::unavailable("service unavailable"),
            500..=599 => return Self::internal(format!("error status {status} without a cause")),
            _ => ("malformed_request", "the request could not be processed"),
        };
        Self::new(status, code, detail)
    }

    fn title(&self) -> &'static str {
        match self.code {
            "malformed_request" => "Malformed request",
            "unsupported_media_type" => "Unsupported media type",
            "payload_too_large" => "Payload too large",
            "validation_failed" => "Validation failed",
            "password_policy" => "Password does not meet the policy",
            "email_taken" => "Email already registered",
            "invalid_credentials" => "Invalid credentials",
            "invalid_token" => "Invalid token",
            "token_reused" => "Token reused",
            "unauthorized" => "Unauthorized",
            "forbidden" => "Forbidden",
            "account_locked" => "Account locked",
            "rate_limited" => "Too many requests",
            "not_found" => "Not found",
            "method_not_allowed" => "Method not allowed",
            "request_timeout" => "Request timeout",
            "service_unavailable" => "Service unavailable",
            _ => "Internal error",
        }
    }

    fn problem(&self) -> Problem {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("/errors/{}", self.code)));
        body.insert("title".into(), json!(self.title()));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("code".into(), json!(self.code));
        body.insert("detail".into(), json!(self.detail));
        if let Some(violations) = &self.violations {
            body.insert("violations".into(), json!(violations));
        }
        Problem(body)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidEmail(e) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", e.to_string())
            }
            AuthError::PasswordPolicy(violations) => {
                let mut error = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "password_policy",
                    "the password does not meet the password policy",
                );
                error.violations = Some(violations);
                error
            }
            AuthError::EmailTaken => {
                Self::new(StatusCode::CONFLICT, "email_taken", "this email is already registered")
            }
            AuthError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is incorrect",
            ),
            AuthError::InvalidToken => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the refresh token is unknown, expired or revoked",
            ),
            AuthError::TokenReused => Self::new(
                StatusCode::UNAUTHORIZED,
                "token_reused",
                "the refresh token was already used; its session has been revoked",
            ),
            AuthError::Unauthorized => Self::unauthorized(),
            AuthError::Forbidden => Self::from_status(StatusCode::FORBIDDEN),
            AuthError::InvalidQuery(detail) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail)
            }
            AuthError::RateLimited { limit, retry_after } => {
                let mut error = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry after the time in Retry-After",
                );
                error.retry_after = Some(whole_seconds(retry_after));
                error.rate_limit = Some(limit);
                error
            }
            AuthError::Locked { retry_after } => {
                let mut error = Self::new(
                    StatusCode::LOCKED,
                    "account_locked",
                    "too many failed attempts; retry after the time in Retry-After",
                );
                error.retry_after = Some(whole_seconds(retry_after));
                error
            }
            AuthError::NotFound => Self::not_found(),
            AuthError::Unavailable(cause) => Self::unavailable(cause),
            AuthError::Internal(cause) => Self::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = (self.status, render(&problem, None)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.bearer_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(limit) = self.rate_limit {
            // draft-ietf-httpapi-ratelimit-headers: on a refusal nothing remains, and the reset
            // is the wait until the next allowed request.
            headers.insert("ratelimit-limit", HeaderValue::from(limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(0));
            headers.insert("ratelimit-reset", HeaderValue::from(self.retry_after.unwrap_or(1)));
        }
        response.extensions_mut().insert(problem);
        if let Some(cause) = self.internal_cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

/// Whole seconds, rounded up so that a client that waits that long is never refused again, and
/// never 0.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Serialises a problem, with the request id when it is known.
pub fn render(problem: &Problem, request_id: Option<&str>) -> String {
    let mut body = problem.0.clone();
    body.insert("request_id".into(), json!(request_id));
    Value::Object(body).to_string()
}
