//! Why a start fails, in words an operator can act on: the variable to change, and the
//! backend's own message without a password.

use std::net::SocketAddr;

use crate::config::DatabaseUrl;
use crate::store::StoreError;

use super::summary;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration asks for something this build cannot do (exit status 2).
    #[error("{variable}: {message}")]
    Config { variable: &'static str, message: String },
    /// A valid setting that could not be acted on (exit status 1): a database that refuses, an
    /// address in use. The message is the backend's own words, without secrets.
    #[error("{variable}: {message}")]
    Setting { variable: &'static str, message: String },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{}", crate::domain::with_causes(.0))]
    Auth(#[from] crate::auth::AuthError),
    #[error("the master key: {0}")]
    Seal(#[from] crate::crypto::SealError),
    #[error("{}", crate::domain::with_causes(.0))]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A database error at start as one line: the variable that names the database, then
/// PostgreSQL's own message (`database "x" does not exist`), or the backend and what went wrong
/// reaching it; never the password of the URL.
pub(super) fn database_failed(
    url: &DatabaseUrl,
    operation: &str,
    error: &StoreError,
) -> StartupError {
    let (variable, backend, text) = match url {
        DatabaseUrl::Embedded(path) => {
            ("PORTCULLIS_DATA_DIR", format!("SQLite at {}", path.display()), "")
        }
        DatabaseUrl::Sqlite(url) => ("PORTCULLIS_DATABASE_URL", format!("SQLite at {url}"), ""),
        DatabaseUrl::Postgres(url) => (
            "PORTCULLIS_DATABASE_URL",
            format!("PostgreSQL at {}", summary::postgres_address(url)),
            url.as_str(),
        ),
    };
    let said_by_server = matches!(url, DatabaseUrl::Postgres(_))
        && std::error::Error::source(error)
            .and_then(|cause| cause.downcast_ref::<sqlx::Error>())
            .is_some_and(|cause| matches!(cause, sqlx::Error::Database(_)));
    let timed_out = std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<sqlx::Error>())
        .is_some_and(|cause| matches!(cause, sqlx::Error::PoolTimedOut));
    let cause = if timed_out {
        // The pool keeps no reason: the server refused, or did not answer in time.
        "no connection within the timeout (is the server up, at that address?)".to_owned()
    } else {
        root_cause(error)
    };
    let message = if said_by_server {
        format!("{operation}{cause}")
    } else {
        format!("{backend}: {operation}{cause}")
    };
    StartupError::Setting { variable, message: without_password(text, &message) }
}

/// The innermost cause of `error`: the driver's or the server's own words.
pub(super) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// `message` with the password of `url` masked, in case a driver quoted it.
pub(super) fn without_password(url: &str, message: &str) -> String {
    let password = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned));
    match password {
        Some(password) if !password.is_empty() => {
            let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let mut message = message.replace(&password, "********");
            if !decoded.is_empty() {
                message = message.replace(&decoded, "********");
            }
            message
        }
        _ => message.to_owned(),
    }
}

/// "Address in use" and its kin at start, naming the variable and the address.
pub(super) fn listen_failed(
    variable: &'static str,
    address: SocketAddr,
    error: std::io::Error,
) -> StartupError {
    let message = match error.kind() {
        std::io::ErrorKind::AddrInUse => format!("{address} is already in use"),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{address} is not an address of this machine")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("{address}: permission denied (ports below 1024 need privileges)")
        }
        _ => format!("cannot listen on {address}: {error}"),
    };
    StartupError::Setting { variable, message }
}
