//! The PostgreSQL backend: the same tables and the same semantics as the embedded one, for many
//! stateless instances sharing one database.
//!
//! Refresh-token rotation relies on PostgreSQL's row locks: of several concurrent conditional
//! `UPDATE`s of one token, the first takes the row and the others, once it commits, re-check the
//! condition against the new row and find it rotated. Lockout counting is one `INSERT ... ON
//! CONFLICT DO UPDATE`, atomic in the same way.

mod audit;
mod keys;
mod lockouts;
mod sessions;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::codec::{duration_millis, from_millis, millis, parse_id};
use super::{Health, StoreError};

/// Implements the store traits on one PostgreSQL pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url`. The pool reconnects by itself when the server comes back after an
    /// outage; while it is away, calls fail within the acquire timeout and the API answers 503.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .application_name("portcullis");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }

    /// Applies the embedded migrations. Instances starting together serialise on the migrator's
    /// advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))
    }
}

#[async_trait]
impl Health for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_error)?;
        Ok(())
    }
}

fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // Class 08 (connection exception), 57P (operator intervention: shutdown, restart) and
        // 53 (insufficient resources): the server is away or overloaded, not our data.
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
            }) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Backend(error.to_string()),
    }
}
