//! Connections held outside the pool for the reads that every authenticated request makes (its
//! session and its account).
//!
//! sqlx's pool tests every connection as it comes back, with a round trip (a message to the
//! connection's thread and back on SQLite, a `Sync` to the server on PostgreSQL), and no option
//! turns that off: a one-statement read costs two round trips. These connections are taken from
//! the pool once and detached from it, so a read costs one. A connection is kept only after a
//! statement succeeded on it; one that failed, or whose caller went away mid-statement, is
//! dropped and replaced from the pool, so a broken connection is never used twice. One left idle
//! for a while is tested before use, as the pool's are, and one idle since before a lost
//! connection was seen (see `losses`) is dropped unused. A read that fails as a lost connection
//! does is tried once more, on a connection that cannot be one of those.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::losses;

/// A connection idle for longer is tested before use, here and in the PostgreSQL pool (see
/// `dialect`). sqlx already tests each one as it comes back to the pool, so one in use moments
/// ago is known to work: testing it again on every acquire, as sqlx does by default, would add a
/// round trip to every statement. One that broke since (the server restarted) is caught by
/// `losses`: once any statement or test has failed on a lost connection, every connection idle
/// since before it is closed unused.
pub(super) const TEST_IDLE_AFTER: Duration = Duration::from_millis(250);

pub(super) struct HotReads {
    pool: AnyPool,
    idle: Mutex<Vec<(AnyConnection, Instant)>>,
    slots: Semaphore,
}

impl HotReads {
    /// At most `size` connections, taken from `pool` as they are first needed.
    pub(super) fn new(pool: AnyPool, size: usize) -> Self {
        Self { pool, idle: Mutex::new(Vec::with_capacity(size)), slots: Semaphore::new(size) }
    }

    /// A connection for one read, waiting for a free one when all are in use.
    pub(super) async fn get(&self) -> Result<Hot<'_>, sqlx::Error> {
        let permit = self.slots.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some((_, since)) if losses::seen_since(since) => self.pool.acquire().await?.detach(),
            Some((mut connection, since)) if since.elapsed() > TEST_IDLE_AFTER => {
                match connection.ping().await {
                    Ok(()) => connection,
                    Err(error) => {
                        losses::note(&error);
                        self.pool.acquire().await?.detach()
                    }
                }
            }
            Some((connection, _)) => connection,
            None => self.pool.acquire().await?.detach(),
        };
        Ok(Hot { reads: self, connection: Some(connection), _permit: permit })
    }

    /// Runs `read` on a connection, kept for the next read if it succeeds. If it fails as a lost
    /// connection does, it runs once more on another: the note makes every connection idle
    /// since before the failure be dropped, so the second one is new or proven alive since.
    pub(super) async fn read<T, F>(&self, read: F) -> Result<T, sqlx::Error>
    where
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    {
        let mut hot = self.get().await?;
        let error = match read(hot.connection()?).await {
            Ok(value) => {
                hot.keep();
                return Ok(value);
            }
            Err(error) if losses::is_lost(&error) => error,
            Err(error) => return Err(error),
        };
        losses::note(&error);
        drop(hot);
        let mut hot = self.get().await?;
        let value = read(hot.connection()?).await?;
        hot.keep();
        Ok(value)
    }
}

/// A connection in use; dropped with it unless `keep` gives it back.
pub(super) struct Hot<'a> {
    reads: &'a HotReads,
    connection: Option<AnyConnection>,
    _permit: SemaphorePermit<'a>,
}

impl Hot<'_> {
    pub(super) fn connection(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        self.connection.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Gives the connection back for the next read: only after its statement succeeded.
    pub(super) fn keep(mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.reads.idle.lock()) {
            idle.push((connection, Instant::now()));
        }
    }
}
