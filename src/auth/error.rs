//! `AuthError`: the outcomes of the use cases, in the product's words.

use std::time::Duration;

use crate::crypto::CryptoError;
use crate::domain::{EmailError, PolicyViolation};
use crate::store::StoreError;

/// The cause of a 5xx, kept typed so the log shows its whole chain, once.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email: {0}")]
    InvalidEmail(#[from] EmailError),
    #[error("the password breaks the policy")]
    PasswordPolicy(Vec<PolicyViolation>),
    #[error("the email is already registered")]
    EmailTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that is unknown, expired or revoked.
    #[error("invalid refresh token")]
    InvalidToken,
    /// A token from a mail link that is unknown, expired, used, or meant for another endpoint.
    #[error("invalid mail token")]
    InvalidMailToken,
    /// The right password for an account whose address is not verified yet, where
    /// `EMAIL_VERIFICATION=required`.
    #[error("email not verified")]
    EmailNotVerified,
    /// The password was right; the login needs its second factor, with this token.
    #[error("a second factor is required")]
    MfaRequired { mfa_token: MfaToken },
    /// A wrong or missing TOTP or recovery code.
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    /// A WebAuthn ceremony that failed verification, or whose challenge is unknown, expired or
    /// used; the message says which, for the log.
    #[error("invalid challenge: {0}")]
    InvalidChallenge(String),
    /// The right credential for an account an admin disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// An action the rules forbid in the current state; the message says why.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A refresh token that was already rotated: its session is now revoked.
    #[error("refresh token reused")]
    TokenReused,
    /// No, a malformed, an expired or a revoked access token.
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    /// A query parameter is not valid; the message names it.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A budget is spent; `retry_after` is the time until a request would be allowed.
    #[error("rate limited")]
    RateLimited { limit: u32, retry_after: Duration },
    /// Too many failed attempts for this email (or device).
    #[error("locked")]
    Locked { retry_after: Duration },
    #[error("not found")]
    NotFound,
    /// A backend is down or refusing, or the service is saturated: 503. The cause is for the log.
    #[error("a backend is unavailable")]
    Unavailable(#[source] Cause),
    /// A failure that is not the caller's: 500. The cause is for the log.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl AuthError {
    /// A 500 caused by `cause`, saying what failed.
    pub fn internal(what: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Internal(Box::new(Failed { what, cause: cause.into() }))
    }
}

/// What failed, above its cause.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Failed {
    what: &'static str,
    #[source]
    cause: Cause,
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        // The message keeps the operation and every cause, for the log line of the 5xx.
        match error {
            StoreError::Unavailable { .. } => AuthError::Unavailable(Box::new(error)),
            StoreError::Conflict | StoreError::Backend { .. } => {
                AuthError::Internal(Box::new(error))
            }
        }
    }
}

impl From<CryptoError> for AuthError {
    fn from(error: CryptoError) -> Self {
        match error {
            CryptoError::Rejected => AuthError::Unauthorized,
            CryptoError::Busy => AuthError::Unavailable(Box::new(error)),
            CryptoError::Store(error) => error.into(),
            CryptoError::Failed { .. } => AuthError::Internal(Box::new(error)),
        }
    }
}

/// The token of a login's second step: a credential for five minutes, so its `Debug` hides it.
pub struct MfaToken(pub String);

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken(..)")
    }
}
