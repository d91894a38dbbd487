//! The errors of the OAuth endpoints, as RFC 6749 §5.2 names them.

use std::time::Duration;

use crate::auth::AuthError;

#[derive(Debug)]
pub enum OAuthError {
    /// A request refused with an RFC 6749 error code (400), and a description for the developer.
    Refused { error: &'static str, description: String },
    /// The client's authentication failed (401, `WWW-Authenticate: Basic`).
    InvalidClient(&'static str),
    /// Over a budget (429, `Retry-After`).
    RateLimited { retry_after: Duration },
    /// A backend failed (500 or 503): logged, never shown.
    Failed(AuthError),
}

impl OAuthError {
    /// A refusal with an error code of its own (`unsupported_response_type`,
    /// `request_not_supported`, …).
    pub fn refused_with(error: &'static str, description: impl Into<String>) -> Self {
        Self::refused(error, description)
    }

    fn refused(error: &'static str, description: impl Into<String>) -> Self {
        Self::Refused { error, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::refused("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::refused("invalid_grant", description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::refused("invalid_scope", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::refused("unauthorized_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::refused("unsupported_grant_type", description)
    }
}

impl From<AuthError> for OAuthError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::RateLimited { retry_after, .. } => Self::RateLimited { retry_after },
            other => Self::Failed(other),
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Failed(error.into())
    }
}

impl From<crate::crypto::CryptoError> for OAuthError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        Self::Failed(error.into())
    }
}
