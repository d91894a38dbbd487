//! Connections lost with their server, and the connections that may have gone with them.
//!
//! A PostgreSQL restart, or a network cut, kills every open connection at once, but a pooled
//! connection only finds out when it is next used, and those used moments ago are not tested
//! before use (see `TEST_IDLE_AFTER`). So once one statement fails as a lost connection does, the
//! time is noted, and every connection idle since before then is closed instead of used: after
//! the first failure, requests get connections opened, or proven alive, after it. A read that
//! fails as a lost connection is tried once more on such a connection: it changed nothing, so
//! repeating it is safe. Writes are not repeated (a lost answer does not prove the statement was
//! not applied); they rely on the first part.
//!
//! The time is one per process: a process has one SQL database. Where tests open several in one
//! process, a failure on one makes the others reconnect, which costs a connection and nothing
//! else.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};

/// When the last lost connection was seen, in nanoseconds after `epoch()`, plus one (0: never).
static LAST_LOSS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Whether the error says the connection is dead: its socket failed, or the server ended it
/// (class 08, connection exception; 57P01–57P03, shutdown and restart).
pub(super) fn is_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
        }
        _ => false,
    }
}

/// Notes the error's time if it is a lost connection.
pub(super) fn note(error: &sqlx::Error) {
    if is_lost(error) {
        let since = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        LAST_LOSS.fetch_max(since + 1, Ordering::AcqRel);
    }
}

/// Whether a lost connection was seen at or after `instant`: a connection idle since then may
/// be dead too.
pub(super) fn seen_since(instant: Instant) -> bool {
    let last = LAST_LOSS.load(Ordering::Acquire);
    if last == 0 {
        return false;
    }
    let at = epoch() + Duration::from_nanos(last - 1);
    at >= instant
}

/// Whether a lost connection was seen since a connection idle for `idle_for` was last used.
pub(super) fn seen_while_idle(idle_for: Duration) -> bool {
    Instant::now().checked_sub(idle_for).is_none_or(seen_since)
}

/// A read on a connection of `pool`, tried once more on another connection if the first one
/// turns out lost (the note makes the pool close the other connections idle since before it).
pub(super) async fn read<T, F>(pool: &AnyPool, read: F) -> Result<T, sqlx::Error>
where
    F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    let first = read(&mut *pool.acquire().await?).await;
    match first {
        Err(error) if is_lost(&error) => {
            note(&error);
            read(&mut *pool.acquire().await?).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_are_losses() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(is_lost(&io));
        assert!(is_lost(&sqlx::Error::Protocol("unexpected message".into())));
        assert!(!is_lost(&sqlx::Error::PoolTimedOut), "a busy pool is not a lost connection");
        assert!(!is_lost(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn a_loss_condemns_the_connections_idle_since_before_it() {
        let before = Instant::now();
        note(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert!(seen_since(before));
        assert!(seen_while_idle(Duration::from_secs(3600)));
        let later = Instant::now() + Duration::from_secs(1);
        assert!(!seen_since(later), "a connection used after the loss is kept");
    }
}
