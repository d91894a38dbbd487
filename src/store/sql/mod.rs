//! One SQL store for both databases: SQLite (the embedded default) and PostgreSQL (for many
//! stateless instances on one database).
//!
//! Every query is written once, on `sqlx::Any`, with `$N` placeholders (which both drivers bind)
//! and no casts: sqlx sends each parameter's type, so a `NULL` is typed on PostgreSQL too. The
//! schema stores what both databases hold alike: times as integer milliseconds, ids as text,
//! hashes as bytes. What truly differs between them is in `dialect`: the migration folder, the
//! pools, the SQLite settings applied on connect, and SQLite's single writer.
//!
//! Atomicity rests on what both databases give: a conditional `UPDATE ... RETURNING` that claims
//! a row (on SQLite, because one writer runs at a time; on PostgreSQL, because concurrent updates
//! of one row queue on its lock and re-check the condition once the one before them commits), and
//! `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` for counters.

#[macro_use]
mod rows;
mod audit;
mod clients;
mod dialect;
mod grants;
mod hot;
mod keys;
mod lockouts;
mod losses;
mod mail;
mod mfa;
mod sessions;
mod tickets;
mod users;

use async_trait::async_trait;
use sqlx::AnyPool;

pub use dialect::Dialect;

use super::{Health, StoreError};

/// Implements every SQL-served store trait on one database.
#[derive(Clone)]
pub struct SqlStore {
    /// Reads: a pool of several connections.
    read: AnyPool,
    /// Writes: the same pool on PostgreSQL; one connection on SQLite, so that writers queue in
    /// order in this process instead of polling SQLite's lock.
    write: AnyPool,
    /// The reads of every authenticated request, on connections of their own.
    hot: std::sync::Arc<hot::HotReads>,
    dialect: Dialect,
}

impl SqlStore {
    /// Connects to the database at `url` (`sqlite:…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Dialect::of_url(url)?.open(url).await
    }

    /// Opens (creating if needed) the SQLite file at `path`, whatever characters it holds.
    pub async fn open_file(path: &std::path::Path) -> Result<Self, StoreError> {
        Dialect::Sqlite.open(&dialect::sqlite_url(path)).await
    }

    /// Applies the migrations of this database; returns how many it applied. PostgreSQL
    /// instances starting together serialise on the migrator's advisory lock; on SQLite, where
    /// that lock does nothing, the caller serialises them (the start holds a lock file).
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let before = self.applied_migrations().await;
        self.dialect
            .migrator()
            .run(&self.write)
            .await
            .map_err(|e| StoreError::backend("migrate", e))?;
        Ok(self.applied_migrations().await.saturating_sub(before))
    }

    /// How many migrations the database records as applied (none before its first migration).
    async fn applied_migrations(&self) -> usize {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.write)
            .await
            .map_or(0, |count| usize::try_from(count).unwrap_or(0))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

#[async_trait]
impl Health for SqlStore {
    /// Readiness: tried once more if its connection turns out lost, which also retires every
    /// connection idle since before (see `losses`), so that once it answers, no request is
    /// handed a connection that died with the server.
    async fn ping(&self) -> Result<(), StoreError> {
        losses::read(&self.read, |connection| {
            Box::pin(async move { sqlx::query("SELECT 1").execute(connection).await.map(drop) })
        })
        .await
        .map_err(failed("ping"))
    }
}

/// Maps a driver error of `operation` to the three kinds callers can act on, keeping the cause.
/// A lost connection is noted (see `losses`).
fn failed(operation: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| {
        losses::note(&error);
        let unavailable = match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => return StoreError::Conflict,
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) after the busy timeout. PostgreSQL:
            // class 08 (connection exception), 57P (shutdown, restart) and 53 (insufficient
            // resources). The server is away or overloaded, not our data.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                matches!(c.as_ref(), "5" | "6")
                    || c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
            }),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        };
        if unavailable {
            StoreError::unavailable(operation, error)
        } else {
            StoreError::backend(operation, error)
        }
    }
}
