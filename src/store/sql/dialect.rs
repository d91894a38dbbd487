//! What differs between SQLite and PostgreSQL, and nothing else: the migration folder, the pools,
//! and the settings SQLite needs on every connection.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection, Executor};

use std::sync::Arc;

use super::SqlStore;
use super::hot::{HotReads, TEST_IDLE_AFTER};
use super::losses;
use crate::store::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Applied to every SQLite connection, the busy timeout first: other processes on the same file
/// (a second instance, the command line) make it wait instead of failing with "database is
/// locked"; foreign keys, which SQLite leaves off by default. Then WAL (see `enable_wal`), so
/// readers never block the writer.
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Connections of their own for the reads of every authenticated request (see `hot`).
const HOT_READS: usize = 4;

/// How long a connection tries to switch a busy database to WAL before it gives up.
const WAL_PATIENCE: Duration = Duration::from_secs(10);

/// The claim of due mail, split where PostgreSQL adds its row-lock clause (`$1` lease end, `$2`
/// now, `$3` limit).
macro_rules! claim_mail {
    () => {
        "UPDATE mail_outbox SET lease_until = $1, attempts = attempts + 1
         WHERE id IN (SELECT id FROM mail_outbox
                      WHERE due_at <= $2 AND (lease_until IS NULL OR lease_until <= $2)
                      ORDER BY due_at LIMIT $3"
    };
}
macro_rules! claim_mail_rest {
    () => {
        " AND (lease_until IS NULL OR lease_until <= $2)
         RETURNING id, created_at, attempts, message"
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::backend("connect", "the database URL is neither sqlite: nor postgres:"))
        }
    }

    /// The statement that claims due mail. PostgreSQL skips rows another sender has locked, so
    /// concurrent senders take different messages instead of waiting for and losing the same
    /// ones; SQLite has one writer, which serialises the claims anyway.
    pub(super) fn claim_mail(self) -> &'static str {
        match self {
            Self::Sqlite => concat!(claim_mail!(), ")", claim_mail_rest!()),
            Self::Postgres => {
                concat!(claim_mail!(), " FOR UPDATE SKIP LOCKED)", claim_mail_rest!())
            }
        }
    }

    /// The statement that opens every change that could take an enabled admin away, so that
    /// its check sees every such change committed before it. PostgreSQL, under READ COMMITTED,
    /// lets two transactions each change one admin while each still sees the other's as
    /// enabled: a transaction-scoped advisory lock serialises them. SQLite has one writer, and
    /// the change is its transaction's first statement, so it holds the write lock already.
    pub(super) fn serialise_admin_changes(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some("SELECT 1 FROM pg_advisory_xact_lock(7402310318542150401)"),
        }
    }

    pub fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Opens the pools. PostgreSQL: one pool of 16 that reconnects by itself after an outage,
    /// failing calls within 3 s while the server is away (the API answers 503). SQLite: 8 readers
    /// and one writer; every write transaction starts with a write statement, so it takes the
    /// write lock up front and never has to upgrade a read lock (the one case where SQLite gives
    /// up without waiting).
    pub(super) async fn open(self, url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let failed = super::failed("connect");
        match self {
            Self::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .test_before_acquire(false)
                    .before_acquire(|connection, meta| {
                        Box::pin(async move {
                            // Idle since before a lost connection was seen: it may have died
                            // with it, and untested it would fail its request. Closed instead.
                            if losses::seen_while_idle(meta.idle_for) {
                                return Ok(false);
                            }
                            if meta.idle_for > TEST_IDLE_AFTER {
                                connection.ping().await.inspect_err(losses::note)?;
                            }
                            Ok(true)
                        })
                    })
                    .connect(&with_application_name(url))
                    .await
                    .map_err(failed)?;
                let hot = Arc::new(HotReads::new(pool.clone(), HOT_READS));
                Ok(SqlStore { read: pool.clone(), write: pool, hot, dialect: self })
            }
            Self::Sqlite => {
                // Like the embedded default, an explicit SQLite URL creates its file if missing.
                let url = if url.contains("mode=") {
                    url.to_owned()
                } else {
                    format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
                };
                let write = sqlite_pool(1).connect(&url).await.map_err(&failed)?;
                let read = sqlite_pool(8).min_connections(1).connect(&url).await.map_err(failed)?;
                let hot = Arc::new(HotReads::new(read.clone(), HOT_READS));
                Ok(SqlStore { read, write, hot, dialect: self })
            }
        }
    }
}

/// A file of this process cannot go away as a server can, so its connections are not tested
/// before use: each test is a message to the connection's thread and back.
fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection.execute(SQLITE_PRAGMAS).await?;
                enable_wal(connection).await
            })
        })
}

/// Switches the database to WAL (a no-op once it is). The switch takes an exclusive lock that
/// SQLite does not wait for, whatever the busy timeout, so while another process holds the file
/// (an instance starting at the same moment) it is tried again, for up to `WAL_PATIENCE`.
async fn enable_wal(connection: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + WAL_PATIENCE;
    loop {
        match connection.execute("PRAGMA journal_mode = WAL").await {
            Err(sqlx::Error::Database(error))
                if is_busy(error.as_ref()) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            outcome => return outcome.map(|_| ()),
        }
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, extended codes included (their low byte is the primary code).
pub(super) fn is_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The `sqlite:` URL of a file, created if missing, with the path percent-encoded so that any
/// data directory name works.
pub(super) fn sqlite_url(path: &Path) -> String {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy()
        .to_string()
}

/// Names the service in `pg_stat_activity`, unless the URL already names something.
fn with_application_name(url: &str) -> String {
    if url.contains("application_name=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name=portcullis")
}

impl SqlStore {
    /// Every `(table, column)` of the schema, sorted, without the migrator's own table: what
    /// the two migration folders must agree on.
    pub async fn columns(&self) -> Result<Vec<(String, String)>, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                   AND m.name <> '_sqlx_migrations'"
            }
            Dialect::Postgres => {
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'"
            }
        };
        let mut columns: Vec<(String, String)> = sqlx::query_as(sql)
            .fetch_all(&self.read)
            .await
            .map_err(super::failed("read schema"))?;
        columns.sort();
        Ok(columns)
    }
}
