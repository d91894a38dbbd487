//! The embedded backend: one SQLite file holds users, devices, sessions, refresh tokens, signing
//! keys and the audit trail, so all of it survives a restart and the CLI sees it.
//!
//! The database runs in WAL mode, so readers never block the writer. SQLite runs one writer at a
//! time, so this process writes through a pool of one connection: concurrent writes queue in
//! order on that pool instead of polling SQLite's lock with growing sleeps, which keeps the tail
//! latency of writes low. Other processes on the same file (a second instance, the command line)
//! wait on the busy timeout instead of failing with "database is locked", and every write
//! transaction starts with a write statement, so it takes the write lock up front and never has
//! to upgrade a read lock (the one case where SQLite gives up without waiting).

mod audit;
mod keys;
mod lockouts;
mod sessions;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::codec::{duration_millis, from_millis, millis, parse_id};
use super::{Health, StoreError};

/// Implements every store trait on one SQLite file: reads on a pool, writes on one connection.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad SQLite URL: {e}")))?;
        Self::open(options).await
    }

    /// Opens (creating if needed) the database file at `path`, whatever characters it holds.
    pub async fn open_file(path: &std::path::Path) -> Result<Self, StoreError> {
        Self::open(SqliteConnectOptions::new().filename(path)).await
    }

    async fn open(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool, writer })
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_error)?;
        Ok(())
    }
}

/// Maps driver errors to the three kinds callers can act on.
fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // SQLITE_BUSY and SQLITE_LOCKED after the busy timeout: the database is overloaded.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6")) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Backend(error.to_string()),
    }
}
