//! The Redis backend for what changes on every request and must be shared at once by every
//! instance: sessions and refresh tokens, rate budgets, and failure counters and locks.
//!
//! Every decision that reads and writes is one Lua script, so it runs atomically on the server:
//! rotating a refresh token, taking from a budget, counting a failure. Keys carry a configurable
//! prefix, so several deployments (or tests) can share one Redis, and the same layout serves one
//! server and a Redis Cluster (`docs/REDIS.md`). Keys expire with what they hold, so nothing
//! needs purging. The connections reconnect by themselves; while Redis (or a master of the
//! cluster) is away, calls fail within a few seconds and the API answers 503.

mod grants;
mod limits;
mod lockouts;
mod sessions;
mod tickets;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{Health, StoreError};
use crate::domain::UserId;

/// How long one call waits for a connection, and for an answer (retries and redirections
/// included), before the request answers 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
}

/// One Redis server, or a Redis Cluster. Both reconnect by themselves; the cluster client also
/// follows `MOVED` and `ASK` redirections and refreshes its slot map.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    /// Connects to `url`: `redis://` or `rediss://` for one server, `redis+cluster://` with
    /// comma-separated seed nodes for a cluster. Every key starts with `prefix`. The connection
    /// is made in the background, so a server that is down at start only makes calls fail
    /// (503) until it is there.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let connection = match url.strip_prefix("redis+cluster://") {
            Some(seeds) => Connection::Cluster(cluster(seeds)?),
            None => {
                let client =
                    redis::Client::open(url).map_err(|e| StoreError::backend("connect", e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Connection::Server(
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(|e| StoreError::backend("connect", e))?,
                )
            }
        };
        Ok(Self { connection, prefix: prefix.to_owned() })
    }

    /// A key of no one user's: `prefix` then `parts` joined by `:`.
    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    /// A key of one user's, under the user's hash tag: `prefix{user}:rest`.
    fn user_key(&self, user: UserId, rest: &str) -> String {
        format!("{}{{{user}}}:{rest}", self.prefix)
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }
}

/// The cluster client for `seeds` (`[user:password@]host:port[,host:port...]`).
fn cluster(seeds: &str) -> Result<ClusterConnection, StoreError> {
    let (credentials, hosts) = match seeds.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials), hosts),
        None => (None, seeds),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|host| match credentials {
            Some(credentials) => format!("redis://{credentials}@{host}"),
            None => format!("redis://{host}"),
        })
        .collect();
    let client = ClusterClientBuilder::new(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .overall_response_timeout(Some(RESPONSE_TIMEOUT))
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(200)
        .build()
        .map_err(|e| StoreError::backend("connect", e))?;
    let config = ClusterConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    Ok(client.get_pending_async_connection_with_config(config))
}

#[async_trait]
impl Health for RedisStore {
    /// One server answers `PING`. A cluster is ready when its slot map covers every slot and
    /// every master in it answers `PING` on its own address (a fan-out `PING` would skip a
    /// master the client has lost).
    async fn ping(&self) -> Result<(), StoreError> {
        match self.connection() {
            Connection::Server(mut server) => {
                redis::cmd("PING")
                    .query_async::<Value>(&mut server)
                    .await
                    .map_err(failed("ping"))?;
            }
            Connection::Cluster(mut cluster) => {
                let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut cluster)
                    .await
                    .map_err(failed("ping"))?;
                let (covered, masters) = slot_masters(&slots);
                if covered < SLOTS {
                    let missing = format!("{} of {SLOTS} slots have no master", SLOTS - covered);
                    return Err(StoreError::unavailable("ping", missing));
                }
                for (host, port) in masters {
                    let routing =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    cluster
                        .route_command(redis::cmd("PING"), routing)
                        .await
                        .map_err(failed("ping"))?;
                }
            }
        }
        Ok(())
    }
}

/// The slots of a Redis Cluster.
const SLOTS: u32 = 16_384;

/// From a `CLUSTER SLOTS` reply (`[start, end, [host, port, ...], replicas...]` per range): how
/// many slots have a master, and each master's address once.
fn slot_masters(ranges: &[Vec<Value>]) -> (u32, Vec<(String, u16)>) {
    let mut covered = 0;
    let mut masters: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let number = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u32::try_from(*n).ok(),
            _ => None,
        };
        let (Some(start), Some(end)) = (number(range.first()), number(range.get(1))) else {
            continue;
        };
        let Some(Value::Array(master)) = range.get(2) else { continue };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => continue,
        };
        let Some(port) = number(master.get(1)).and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        covered += end.saturating_sub(start) + 1;
        if !masters.contains(&(host.clone(), port)) {
            masters.push((host, port));
        }
    }
    (covered, masters)
}

/// Maps a Redis error of `operation` to what callers can act on, keeping the cause.
fn failed(operation: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |error| {
        use redis::{ErrorKind, ServerErrorKind};
        let away = matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::ReadOnly
                )
        );
        if away
            || error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_cluster_error()
        {
            StoreError::unavailable(operation, error)
        } else {
            StoreError::backend(operation, error)
        }
    }
}
