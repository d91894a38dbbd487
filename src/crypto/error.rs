//! `CryptoError`: why a cryptographic step failed, with its cause kept as a typed source.

use crate::store::StoreError;

/// A cause, kept for the log line of the 5xx it leads to.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A presented token that does not verify: malformed, forged, expired, or of an unknown key.
    #[error("the token does not verify")]
    Rejected,
    /// Too many password checks are waiting for a hashing slot; this one is refused at once.
    #[error("too many password checks waiting")]
    Busy,
    /// A step that cannot fail on sound inputs failed: a malformed stored key, a library error,
    /// a hashing thread gone.
    #[error("{what}")]
    Failed {
        what: &'static str,
        #[source]
        cause: Option<Cause>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CryptoError {
    /// A failure with nothing below it.
    pub fn failed(what: &'static str) -> Self {
        Self::Failed { what, cause: None }
    }

    /// A failure caused by `cause`.
    pub fn caused(what: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Failed { what, cause: Some(cause.into()) }
    }
}
