//! `StoreError`: all that leaves the store, whatever the backend's own error was.

/// The cause of a store error, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// All that leaves `store`. Each error names the operation that failed and keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (for example, an email already registered).
    #[error("conflict")]
    Conflict,
    /// The backend could not be reached or did not answer in time; the caller answers 503.
    #[error("{operation}: backend unavailable")]
    Unavailable {
        operation: &'static str,
        #[source]
        cause: Cause,
    },
    /// Anything else: a bug or corrupt data. The caller answers 500 and logs it.
    #[error("{operation}: backend error")]
    Backend {
        operation: &'static str,
        #[source]
        cause: Cause,
    },
}

impl StoreError {
    pub fn unavailable(operation: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Unavailable { operation, cause: cause.into() }
    }

    pub fn backend(operation: &'static str, cause: impl Into<Cause>) -> Self {
        Self::Backend { operation, cause: cause.into() }
    }

    /// The message with every cause, for the log: "rotate refresh token: backend unavailable:
    /// pool timed out".
    pub fn with_causes(&self) -> String {
        crate::domain::with_causes(self)
    }
}
