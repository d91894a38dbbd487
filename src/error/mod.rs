//! `ApiError`: the one place that picks status codes, `code`s and public messages.
//!
//! Responses are RFC 9457 problem details. Every `code` of the contract is an `ErrorCode`, and
//! the one table below gives each its status, its slug (the `code` member and the end of `type`)
//! and its title; the OpenAPI document is built from the same table. A handler's error carries
//! its problem in a response extension; the `problem_details` middleware adds the request id and
//! renders it, and turns any other error status (from axum, a layer, a panic) into a problem too,
//! so every error body has the same shape. Internal causes are logged once there, never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::AuthError;
use crate::domain::{PolicyViolation, with_causes};

/// Declares `ErrorCode` and its table: each row is a variant, its status, slug, title and
/// default detail.
macro_rules! error_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $status:ident, $slug:literal, $title:literal, $detail:literal;
    )+) => {
        /// A machine-readable error of the contract (`code` in a problem body).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The HTTP status this code is always answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// The `code` member, and the last segment of the problem's `type`.
            pub fn slug(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $slug,)+
                }
            }

            /// The problem's `title`: the same for every occurrence of the code (RFC 9457 §3.1.3).
            pub fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title,)+
                }
            }

            /// The public `detail` when the error has nothing more specific to say.
            pub fn default_detail(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $detail,)+
                }
            }
        }
    };
}

error_codes! {
    /// Bad JSON, wrong field types, missing fields, invalid UTF-8.
    MalformedRequest = BAD_REQUEST, "malformed_request", "Malformed request",
        "the request could not be processed";
    /// A WebAuthn ceremony that fails verification, or whose challenge is unknown, expired or used.
    InvalidChallenge = BAD_REQUEST, "invalid_challenge", "Invalid challenge",
        "the challenge is unknown, expired or failed verification";
    /// The email or password is wrong (the same answer for an unknown email).
    InvalidCredentials = UNAUTHORIZED, "invalid_credentials", "Invalid credentials",
        "the email or password is incorrect";
    /// A refresh (or other single-use) token that is unknown, expired or revoked.
    InvalidToken = UNAUTHORIZED, "invalid_token", "Invalid token",
        "the token is unknown, expired or revoked";
    /// A rotated refresh token presented again: its session is revoked.
    TokenReused = UNAUTHORIZED, "token_reused", "Token reused",
        "the refresh token was already used; its session has been revoked";
    /// No, or a bad, bearer access token.
    Unauthorized = UNAUTHORIZED, "unauthorized", "Unauthorized",
        "a valid bearer access token is required";
    /// The password was right; a second factor is needed.
    MfaRequired = UNAUTHORIZED, "mfa_required", "Second factor required",
        "a second factor is required";
    /// A wrong or missing TOTP or recovery code.
    InvalidMfaCode = UNAUTHORIZED, "invalid_mfa_code", "Invalid second-factor code",
        "the second-factor code is incorrect";
    /// The caller may not do this.
    Forbidden = FORBIDDEN, "forbidden", "Forbidden",
        "not allowed";
    /// The right password for an account whose address is not verified, when that is required.
    EmailNotVerified = FORBIDDEN, "email_not_verified", "Email not verified",
        "the email address is not verified";
    /// The right password for a disabled account.
    AccountDisabled = FORBIDDEN, "account_disabled", "Account disabled",
        "the account is disabled";
    /// No such resource, or not the caller's.
    NotFound = NOT_FOUND, "not_found", "Not found",
        "no such resource";
    /// The path exists, the method does not.
    MethodNotAllowed = METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed",
        "this method is not allowed on this resource";
    /// The request did not arrive in time.
    RequestTimeout = REQUEST_TIMEOUT, "request_timeout", "Request timeout",
        "the request took too long to arrive";
    /// The email belongs to another account.
    EmailTaken = CONFLICT, "email_taken", "Email already registered",
        "this email is already registered";
    /// An action the rules forbid in the current state.
    Conflict = CONFLICT, "conflict", "Conflict",
        "the action is not allowed in the current state";
    /// A body over 16 KiB.
    PayloadTooLarge = PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large",
        "the request body is larger than 16 KiB";
    /// A body that is not `application/json`.
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
        "Unsupported media type",
        "the request body must be application/json";
    /// A well-formed request whose values are not valid (an email, a query parameter).
    ValidationFailed = UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed",
        "the request is not valid";
    /// A password that breaks the policy; the body lists every failed rule in `violations`.
    PasswordPolicy = UNPROCESSABLE_ENTITY, "password_policy", "Password does not meet the policy",
        "the password does not meet the password policy";
    /// Too many failed attempts; `Retry-After` says how long.
    AccountLocked = LOCKED, "account_locked", "Account locked",
        "too many failed attempts; retry after the time in Retry-After";
    /// A budget is spent; `Retry-After` and `RateLimit-*` say how long.
    RateLimited = TOO_MANY_REQUESTS, "rate_limited", "Too many requests",
        "too many requests; retry after the time in Retry-After";
    /// A request header block (request line and fields) over 64 KiB (RFC 6585 §5).
    HeaderTooLarge = REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large",
        "Request header fields too large",
        "the request line and header fields are larger than 64 KiB";
    /// Never expected; never leaks internals.
    Internal = INTERNAL_SERVER_ERROR, "internal", "Internal error",
        "an internal error occurred; quote the request id when reporting it";
    /// A backend is down; `Retry-After` says when to try again.
    ServiceUnavailable = SERVICE_UNAVAILABLE, "service_unavailable", "Service unavailable",
        "a backend is unavailable; try again shortly";
}

impl ErrorCode {
    /// The code of an error status that no handler chose (axum's 405, a layer's 413 or 408).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationFailed,
            423 => ErrorCode::AccountLocked,
            429 => ErrorCode::RateLimited,
            431 => ErrorCode::HeaderTooLarge,
            503 => ErrorCode::ServiceUnavailable,
            500..=599 => ErrorCode::Internal,
            _ => ErrorCode::MalformedRequest,
        }
    }
}

/// The `Retry-After` of a 503, in seconds. A backend outage has no known end, so this is a short
/// back-off that spreads retries (RFC 9110 §10.2.3) rather than a promise.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 1;

/// An error on its way to becoming a problem-details response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    /// The code's status, except for a bare error status that no code names (a 431, say), which
    /// keeps its own so that the body's `status` matches the response.
    status: StatusCode,
    detail: String,
    violations: Option<Vec<PolicyViolation>>,
    retry_after: Option<u64>,
    /// `RateLimit-Limit` of a 429.
    rate_limit: Option<u32>,
    /// Extension members of the problem (RFC 9457 §3.2), such as the `mfa_token` of
    /// `mfa_required`.
    extensions: Option<Box<Map<String, Value>>>,
    internal_cause: Option<String>,
}

/// The problem, kept in the response's extensions until the middleware renders it.
#[derive(Clone, Debug)]
pub struct Problem(pub Map<String, Value>);

/// The hidden cause of a 5xx, logged by the middleware with the request id.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl ApiError {
    /// An error of `code` with its generic detail.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            status: code.status(),
            detail: code.default_detail().to_owned(),
            violations: None,
            // Every 503, whoever builds it, tells clients to back off.
            retry_after: (code == ErrorCode::ServiceUnavailable).then_some(UNAVAILABLE_RETRY_AFTER),
            rate_limit: None,
            extensions: None,
            internal_cause: None,
        }
    }

    /// A more specific public message. It must never echo request input (it may be a password).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest).detail(detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    pub fn unavailable(cause: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable).caused_by(cause)
    }

    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal).caused_by(cause)
    }

    /// The hidden cause, logged by the middleware and never shown.
    fn caused_by(mut self, cause: impl Into<String>) -> Self {
        self.internal_cause = Some(cause.into());
        self
    }

    /// The problem a bare status maps to, for error responses that no handler built.
    pub fn from_status(status: StatusCode) -> Self {
        let code = ErrorCode::for_status(status);
        let mut error = match code {
            ErrorCode::ServiceUnavailable => Self::unavailable("service unavailable"),
            ErrorCode::Internal => Self::internal(format!("error status {status} without a cause")),
            _ => Self::new(code),
        };
        error.status = status;
        error
    }

    fn problem(&self) -> Problem {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("/errors/{}", self.code.slug())));
        body.insert("title".into(), json!(self.code.title()));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("code".into(), json!(self.code.slug()));
        body.insert("detail".into(), json!(self.detail));
        if let Some(violations) = &self.violations {
            body.insert("violations".into(), json!(violations));
        }
        if let Some(extensions) = &self.extensions {
            body.extend(extensions.as_ref().clone());
        }
        Problem(body)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidEmail(e) => {
                Self::new(ErrorCode::ValidationFailed).detail(e.to_string())
            }
            AuthError::PasswordPolicy(violations) => {
                let mut error = Self::new(ErrorCode::PasswordPolicy);
                error.violations = Some(violations);
                error
            }
            AuthError::EmailTaken => Self::new(ErrorCode::EmailTaken),
            AuthError::InvalidCredentials => Self::new(ErrorCode::InvalidCredentials),
            AuthError::InvalidToken => Self::new(ErrorCode::InvalidToken)
                .detail("the refresh token is unknown, expired or revoked"),
            AuthError::TokenReused => Self::new(ErrorCode::TokenReused),
            AuthError::MfaRequired { mfa_token } => {
                let mut error = Self::new(ErrorCode::MfaRequired).detail(
                    "the password is right; complete the login at /v1/auth/login/mfa with the \
                     mfa_token and a code",
                );
                let mut members = Map::new();
                members.insert("mfa_token".into(), json!(mfa_token.0));
                members.insert("methods".into(), json!(crate::auth::MFA_METHODS));
                error.extensions = Some(Box::new(members));
                error
            }
            AuthError::InvalidMfaCode => Self::new(ErrorCode::InvalidMfaCode),
            AuthError::InvalidChallenge(why) => Self::new(ErrorCode::InvalidChallenge)
                .detail(format!("the passkey ceremony failed: {why}")),
            AuthError::Conflict(why) => Self::new(ErrorCode::Conflict).detail(why),
            AuthError::AccountDisabled => Self::new(ErrorCode::AccountDisabled),
            AuthError::InvalidMailToken => Self::new(ErrorCode::InvalidToken)
                .detail("the link's token is unknown, expired, already used or not for this"),
            AuthError::EmailNotVerified => Self::new(ErrorCode::EmailNotVerified)
                .detail("confirm the address with the link sent to it, or ask for a new one"),
            AuthError::Unauthorized => Self::unauthorized(),
            AuthError::Forbidden => Self::new(ErrorCode::Forbidden),
            AuthError::InvalidQuery(detail) => {
                Self::new(ErrorCode::ValidationFailed).detail(detail)
            }
            AuthError::RateLimited { limit, retry_after } => {
                let mut error = Self::new(ErrorCode::RateLimited);
                error.retry_after = Some(whole_seconds(retry_after));
                error.rate_limit = Some(limit);
                error
            }
            AuthError::Locked { retry_after } => {
                let mut error = Self::new(ErrorCode::AccountLocked);
                error.retry_after = Some(whole_seconds(retry_after));
                error
            }
            AuthError::NotFound => Self::not_found(),
            AuthError::Unavailable(cause) => Self::unavailable(with_causes(&*cause)),
            AuthError::Internal(cause) => Self::internal(with_causes(&*cause)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = (self.status, render(&problem, None)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        // RFC 6750 §3: a 401 for a missing or bad bearer token names the scheme.
        if self.code == ErrorCode::Unauthorized {
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

#[cfg(test)]
mod tests;
