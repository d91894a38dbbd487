//! The Redis backend for what changes on every request and must be shared at once by every
//! instance: sessions and refresh tokens, rate budgets, and failure counters and locks.
//!
//! Every decision that reads and writes is one Lua script, so it runs atomically on the server:
//! rotating a refresh token, taking from a budget, counting a failure. Keys carry a configurable
//! prefix, so several deployments (or tests) can share one Redis. Keys expire with what they
//! hold, so nothing needs purging. The connection manager reconnects by itself; while Redis is
//! away, calls fail within a second or two and the API answers 503.

mod limits;
mod lockouts;
mod sessions;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Health, StoreError};

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisStore {
    /// Connects to `url` (`redis://` or `rediss://`); every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::backend("connect", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_with_config(client, config).await.map_err(failed("connect"))?;
        Ok(Self { connection, prefix: prefix.to_owned() })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

#[async_trait]
impl Health for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.connection())
            .await
            .map_err(failed("ping"))?;
        Ok(())
    }
}

/// Maps a Redis error of `operation` to what callers can act on, keeping the cause.
fn failed(operation: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |error| {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            StoreError::unavailable(operation, error)
        } else {
            StoreError::backend(operation, error)
        }
    }
}

/// Escapes a literal for a `SCAN MATCH` pattern.
fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
