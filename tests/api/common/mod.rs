//! Test harness: starts the real server on a random port with its own fresh data directory, and
//! talks HTTP to it.

#![allow(dead_code)]

pub mod browser;
pub mod passkey;
pub mod smtp;
pub mod totp;

use std::net::SocketAddr;
use std::path::PathBuf;

use portcullis::config::Settings;
use portcullis::startup::Application;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A password that meets the default policy.
pub const PASSWORD: &str = "Correct-Horse-42";

pub struct TestApp {
    pub address: SocketAddr,
    /// The separate metrics listener, when `PORTCULLIS_METRICS_BIND` is set.
    pub metrics_address: Option<SocketAddr>,
    pub client: Client,
    pub storage: Storage,
    /// The data directory (used by the embedded backend and the command line).
    pub data_dir: PathBuf,
    /// Deletes the storage when the test ends; `None` when it belongs to another test app.
    _owner: Option<StorageOwner>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Where a test app keeps its data: a fresh data directory and, on PostgreSQL, a fresh database.
#[derive(Clone, Debug)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// With PostgreSQL, sessions, budgets and lockouts go to Redis under this key prefix.
    pub redis_prefix: Option<String>,
}

pub struct StorageOwner {
    _dir: TempDir,
    database: Option<String>,
    redis_prefix: Option<String>,
}

impl StorageOwner {
    /// The Redis key prefix this owner deletes, if any.
    pub fn redis_prefix(&self) -> Option<&str> {
        self.redis_prefix.as_deref()
    }
}

impl Drop for StorageOwner {
    fn drop(&mut self) {
        let (database, prefix) = (self.database.take(), self.redis_prefix.take());
        if database.is_none() && prefix.is_none() {
            return;
        }
        // Drop is not async: clean up from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Some(name) = database
                    && let Ok(pool) = sqlx::PgPool::connect(&postgres_admin_url()).await
                {
                    let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = sqlx::query(&sql).execute(&pool).await;
                }
                if let Some(prefix) = prefix {
                    delete_redis_keys(&prefix).await;
                }
            });
        })
        .join();
    }
}

/// Deletes every key under `prefix` on the test Redis and, when there is one, on every master
/// of the test Redis Cluster (one key per `DEL`: a multi-key `DEL` must stay in one slot).
async fn delete_redis_keys(prefix: &str) {
    let mut servers = vec![redis_url()];
    servers.extend(redis_cluster_url().map(|c| cluster_nodes(&c)).unwrap_or_default());
    for url in servers {
        let Ok(client) = redis::Client::open(url) else { continue };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else { continue };
        let mut pipe = redis::pipe();
        for key in redis_keys(&mut connection, prefix).await {
            pipe.cmd("DEL").arg(key).ignore();
        }
        let _: Result<(), _> = pipe.query_async(&mut connection).await;
    }
}

/// The keys under `prefix` on one Redis server.
pub async fn redis_keys(
    connection: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut all = Vec::new();
    loop {
        let scan: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await;
        let Ok((next, keys)) = scan else { return all };
        all.extend(keys);
        if next == 0 {
            return all;
        }
        cursor = next;
    }
}

/// `redis://host:port` of every seed node of a `redis+cluster://` URL.
pub fn cluster_nodes(url: &str) -> Vec<String> {
    let seeds = url.trim_start_matches("redis+cluster://");
    seeds.split(',').filter(|s| !s.is_empty()).map(|s| format!("redis://{s}")).collect()
}

/// The test Redis Cluster's URL (`PORTCULLIS_TEST_REDIS_CLUSTER`, its seed nodes), if any.
pub fn redis_cluster_url() -> Option<String> {
    std::env::var("PORTCULLIS_TEST_REDIS_CLUSTER").ok().filter(|u| !u.is_empty())
}

/// Whether the suite runs on PostgreSQL and the Redis Cluster.
pub fn on_redis_cluster() -> bool {
    std::env::var("PORTCULLIS_TEST_BACKEND").is_ok_and(|b| b == "postgres-redis-cluster")
}

/// The backends the suite runs against: `PORTCULLIS_TEST_BACKEND=postgres-redis` for PostgreSQL
/// and Redis, `postgres-redis-cluster` for PostgreSQL and the Redis Cluster, else the embedded
/// default.
pub fn on_postgres() -> bool {
    std::env::var("PORTCULLIS_TEST_BACKEND").is_ok_and(|b| b.starts_with("postgres-redis"))
}

/// The Redis URL the suite's apps use: the cluster's on the cluster pass, else the server's.
pub fn suite_redis_url() -> String {
    if on_redis_cluster() {
        redis_cluster_url().expect("the cluster pass needs PORTCULLIS_TEST_REDIS_CLUSTER")
    } else {
        redis_url()
    }
}

pub fn redis_url() -> String {
    std::env::var("PORTCULLIS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn postgres_admin_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The `host:port` a URL like `postgres://user:pass@host:5432/db` connects to, `default_port`
/// when it names none: where a test relays to, from `PORTCULLIS_TEST_POSTGRES` or `_REDIS`.
pub fn address_of(url: &str, default_port: u16) -> String {
    let (_, host_port, _) = split_address(url);
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if has_port { host_port.to_owned() } else { format!("{host_port}:{default_port}") }
}

/// `url` with its `host:port` replaced by `address` (credentials, database and options kept).
pub fn with_address(url: &str, address: &str) -> String {
    let (before, _, after) = split_address(url);
    format!("{before}{address}{after}")
}

/// A URL as (scheme and credentials, `host[:port]`, path and query).
fn split_address(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    let host = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    (&url[..host], &url[host..end], &url[end..])
}

/// Fresh storage for one test; it is deleted when the returned owner is dropped.
pub async fn new_storage() -> (Storage, StorageOwner) {
    storage_on(on_postgres()).await
}

/// Fresh storage with a PostgreSQL database, whichever backend the suite runs against.
pub async fn new_postgres_storage() -> (Storage, StorageOwner) {
    storage_on(true).await
}

/// Fresh embedded storage (a data directory), whichever backend the suite runs against.
pub async fn new_embedded_storage() -> (Storage, StorageOwner) {
    storage_on(false).await
}

/// A fresh Redis key prefix (and a data directory), without a PostgreSQL database.
pub async fn new_redis_storage() -> (Storage, StorageOwner) {
    let (mut storage, mut owner) = storage_on(false).await;
    let prefix = format!("pt:{}:", uuid::Uuid::new_v4().simple());
    storage.redis_prefix = Some(prefix.clone());
    owner.redis_prefix = Some(prefix);
    (storage, owner)
}

/// Whether the real servers a test needs are there. Under the project's test script (which sets
/// `PORTCULLIS_TEST_POSTGRES`) or in CI they must be, and their absence fails the test; elsewhere
/// a missing server skips the test, and says so.
pub async fn servers_answer(test: &str, postgres: bool, redis: bool) -> bool {
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("PORTCULLIS_TEST_POSTGRES").is_some();
    let mut missing = Vec::new();
    if postgres && !postgres_answers().await {
        missing.push("PostgreSQL");
    }
    if redis && !redis_answers().await {
        missing.push("Redis");
    }
    assert!(missing.is_empty() || !required, "{test}: {missing:?} required here but not answering");
    if !missing.is_empty() {
        let verb = if missing.len() == 1 { "does" } else { "do" };
        let mut enable = Vec::new();
        if missing.contains(&"PostgreSQL") {
            enable.push(
                "start PostgreSQL on 127.0.0.1:5432 (user postgres) or set \
                 PORTCULLIS_TEST_POSTGRES to an admin URL",
            );
        }
        if missing.contains(&"Redis") {
            enable.push("start Redis on 127.0.0.1:6379 or set PORTCULLIS_TEST_REDIS");
        }
        eprintln!(
            "SKIPPED {test}: {} {verb} not answer; to run it, {}, or run scripts/test (which \
             starts them)",
            missing.join(" and "),
            enable.join(", and ")
        );
    }
    missing.is_empty()
}

/// The test Redis Cluster's URL, for a test that runs on it beside the other backends. Under the
/// project's test script or in CI there must be one (the script starts it); elsewhere a test
/// without one skips that backend, and says so.
pub fn cluster_for(test: &str) -> Option<String> {
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("PORTCULLIS_TEST_POSTGRES").is_some();
    let url = redis_cluster_url();
    assert!(url.is_some() || !required, "{test}: PORTCULLIS_TEST_REDIS_CLUSTER required here");
    if url.is_none() {
        eprintln!(
            "SKIPPED {test}: no Redis Cluster; to run it, set PORTCULLIS_TEST_REDIS_CLUSTER to \
             its seed nodes (redis+cluster://HOST:PORT,...), or run scripts/test (which starts one)"
        );
    }
    url
}

/// Whether `redis-server` is installed, for a test that starts servers of its own. Under the
/// project's test script or in CI it must be; elsewhere its absence skips the test, and says so.
pub fn redis_server_installed(test: &str) -> bool {
    let installed = std::process::Command::new("redis-server").arg("--version").output().is_ok();
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("PORTCULLIS_TEST_POSTGRES").is_some();
    assert!(installed || !required, "{test}: redis-server required here");
    if !installed {
        eprintln!(
            "SKIPPED {test}: redis-server is not installed; to run it, install Redis \
             (apt-get install redis-server)"
        );
    }
    installed
}

/// Whether the test PostgreSQL server answers within two seconds.
pub async fn postgres_answers() -> bool {
    let url = postgres_admin_url();
    let connect = sqlx::PgPool::connect(&url);
    matches!(tokio::time::timeout(std::time::Duration::from_secs(2), connect).await, Ok(Ok(_)))
}

/// Whether the test Redis server answers within two seconds.
pub async fn redis_answers() -> bool {
    let Ok(client) = redis::Client::open(redis_url()) else { return false };
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    matches!(tokio::time::timeout(std::time::Duration::from_secs(2), ping).await, Ok(Ok(_)))
}

async fn storage_on(postgres: bool) -> (Storage, StorageOwner) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let database = if postgres {
        let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&postgres_admin_url()).await.unwrap();
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&pool).await.unwrap();
        pool.close().await;
        Some(name)
    } else {
        None
    };
    let database_url = database.as_ref().map(|name| {
        let admin = postgres_admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_owned();
        format!("{base}/{name}")
    });
    let redis_prefix = postgres.then(|| format!("pt:{}:", uuid::Uuid::new_v4().simple()));
    let storage = Storage { data_dir, database_url, redis_prefix: redis_prefix.clone() };
    (storage, StorageOwner { _dir: dir, database, redis_prefix })
}

/// Cheap hashing parameters (tests check behaviour, not cost) and budgets large enough that only
/// the tests about limits meet them; a test's own variables override these.
const TEST_DEFAULTS: [(&str, &str); 5] = [
    ("PORTCULLIS_ARGON2_MEMORY_KIB", "1024"),
    ("PORTCULLIS_ARGON2_ITERATIONS", "1"),
    ("PORTCULLIS_RATE_LIMIT_IP", "100000/min"),
    ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "100000/min"),
    ("PORTCULLIS_RATE_LIMIT_READS", "100000/min"),
];

pub async fn spawn() -> TestApp {
    spawn_with(&[]).await
}

pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
    let (storage, owner) = new_storage().await;
    spawn_owning(storage, owner, vars).await
}

/// Starts a server on `storage`, which it deletes when it is dropped.
pub async fn spawn_owning(storage: Storage, owner: StorageOwner, vars: &[(&str, &str)]) -> TestApp {
    let mut app = spawn_in(&storage, vars).await;
    app._owner = Some(owner);
    app
}

/// Starts a server on existing storage (a second instance, or a restart).
pub async fn spawn_in(storage: &Storage, vars: &[(&str, &str)]) -> TestApp {
    spawn_in_with_clock(storage, vars, std::sync::Arc::new(portcullis::domain::SystemClock)).await
}

/// Starts a server on fresh storage whose use cases read the time from `clock`, so that a test
/// moves time forward instead of sleeping.
pub async fn spawn_with_clock(
    vars: &[(&str, &str)],
    clock: std::sync::Arc<dyn portcullis::domain::Clock>,
) -> TestApp {
    let (storage, owner) = new_storage().await;
    let mut app = spawn_in_with_clock(&storage, vars, clock).await;
    app._owner = Some(owner);
    app
}

/// Starts a server on existing storage whose use cases read the time from `clock` (instances
/// that share storage and a clock).
pub async fn spawn_in_with_clock(
    storage: &Storage,
    vars: &[(&str, &str)],
    clock: std::sync::Arc<dyn portcullis::domain::Clock>,
) -> TestApp {
    let settings = settings_for(storage, vars);
    // `PORTCULLIS_TEST_LOG=debug` (any filter) shows the servers' logs, for a failing test.
    if let Ok(filter) = std::env::var("PORTCULLIS_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let application = Application::build_with_clock(settings, true, clock).await.unwrap();
    let address = application.local_addr().unwrap();
    let metrics_address = application.metrics_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        metrics_address,
        client: Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        storage: storage.clone(),
        data_dir: storage.data_dir.clone(),
        _owner: None,
        stop: Some(stop),
        server: Some(server),
    }
}

pub fn settings_for(storage: &Storage, vars: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![("PORTCULLIS_BIND".into(), "127.0.0.1:0".into())];
    env.extend(storage.env());
    env.extend(TEST_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(None, env).unwrap()
}

impl Storage {
    /// The variables that point the server or the command line at this storage.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("PORTCULLIS_DATA_DIR".to_owned(), self.data_dir.display().to_string())];
        if let Some(url) = &self.database_url {
            env.push(("PORTCULLIS_DATABASE_URL".to_owned(), url.clone()));
        }
        if let Some(prefix) = &self.redis_prefix {
            env.push(("PORTCULLIS_REDIS_URL".to_owned(), suite_redis_url()));
            env.push(("PORTCULLIS_REDIS_PREFIX".to_owned(), prefix.clone()));
        }
        env
    }

    /// A connection to the database, whichever backend holds it, for tests that inspect it.
    pub async fn db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("portcullis.db").display()),
        };
        sqlx::AnyPool::connect(&url).await.unwrap()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// The value of one series of `/metrics`, e.g. `portcullis_password_hashes_total`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text =
            self.client.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Response {
        self.request(Method::GET, path, Some(bearer), None).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post("/v1/auth/register", json!({ "email": email, "password": password })).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/v1/auth/login", json!({ "email": email, "password": password })).await
    }

    /// Registers and logs in; returns the token pair.
    pub async fn signed_in(&self, email: &str) -> Value {
        assert_eq!(self.register(email, PASSWORD).await.status(), StatusCode::CREATED);
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/v1/auth/refresh", json!({ "refresh_token": refresh_token })).await
    }

    /// Logs in an existing account; asserts success and returns the token pair.
    pub async fn logged_in(&self, email: &str, password: &str) -> Value {
        ok_json(self.login(email, password).await).await
    }

    /// Refreshes; asserts success and returns the new token pair.
    pub async fn refreshed(&self, refresh_token: &str) -> Value {
        ok_json(self.refresh(refresh_token).await).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// Asserts a 200 answer and returns its JSON body, so a later assertion cannot pass on the empty
/// fields of an error body.
pub async fn ok_json(response: Response) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "body: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Asserts a problem-details error with the given status and code; returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("/errors/{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert_eq!(body["request_id"], request_id.as_str());
    body
}

/// Creates a user with the admin role through the command line, on the app's database. The
/// command runs off the test's runtime, so the app it shares its storage with keeps serving (and
/// finishes any write the command would wait for) meanwhile.
pub async fn create_admin(app: &TestApp, email: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["user", "create", "--email", email, "--admin"])
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).await.unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
}

/// Runs the binary on the app's database and returns its exit status; the app keeps serving
/// meanwhile.
pub async fn run_cli(app: &TestApp, args: &[&str]) -> Option<i32> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap()
        .code()
}

/// The real `portcullis serve` binary, run as a child process: for what only a process shows
/// (signals, exit status). It logs JSON at `info`, and its address is read from the line that
/// says it listens.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub address: SocketAddr,
    /// Every log line after the one with the address.
    pub log: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `portcullis serve` on `storage` with the test defaults and `vars`, and waits (at
    /// most 30 s) until it listens.
    pub fn start(storage: &Storage, vars: &[(&str, &str)]) -> ServerProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command.arg("serve");
        Self::start_command(command, storage, vars)
    }

    /// Like `start`, with the process limited to `limit` open file descriptors (`ulimit -n`).
    pub fn start_with_fd_limit(
        storage: &Storage,
        vars: &[(&str, &str)],
        limit: u32,
    ) -> ServerProcess {
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_portcullis"));
        Self::start_command(command, storage, vars)
    }

    fn start_command(
        mut command: std::process::Command,
        storage: &Storage,
        vars: &[(&str, &str)],
    ) -> ServerProcess {
        use std::io::BufRead;
        command
            .env_clear()
            .envs(storage.env())
            .envs(TEST_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("PORTCULLIS_BIND", "127.0.0.1:0")
            .env("PORTCULLIS_LOG", "info")
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .envs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let address = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = log.recv_timeout(left).expect("the server did not say where it listens");
            let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
            if entry["message"] == "portcullis is listening" {
                break entry["address"].as_str().unwrap().parse().unwrap();
            }
        };
        ServerProcess { child, address, log }
    }

    /// Sends a signal by name (`TERM`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits at most `bound` for the process to exit, and returns its status (None if it is
    /// still running, and then kills it).
    pub fn wait_for_exit(
        &mut self,
        bound: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `bytes` on a new raw TCP connection and reads the answer until the server closes it
/// (at most `bound`): for requests no HTTP client would send.
pub async fn raw_exchange(
    address: SocketAddr,
    bytes: &[u8],
    bound: std::time::Duration,
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open past {bound:?}");
    answer
}

/// A control or bidirectional-control character that must never appear raw in a log line or
/// an audit answer (line feeds, which end log lines, excepted).
pub fn is_raw_control(c: char) -> bool {
    let raw = matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    );
    raw && c != '\n'
}

/// A free loopback port, for a listener the test binds itself (a relay).
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Relays connections from `listen` to `upstream` (`host:port`) until aborted; aborting it drops
/// every relayed connection too, and new ones are refused: the backend is gone for the app.
pub fn relay(listen: SocketAddr, upstream: String) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(listen).unwrap();
    let listener = socket.listen(64).unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut client, _)) = listener.accept().await else { continue };
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(upstream.as_str()).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    })
}

/// A relay on a port of its own in front of a backend, that a test cuts and restores.
pub struct Relay {
    pub address: SocketAddr,
    upstream: String,
    link: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying to `upstream` (`host:port`) from a free loopback port.
    pub fn start(upstream: String) -> Relay {
        let address = free_port();
        let link = Some(relay(address, upstream.clone()));
        Relay { address, upstream, link }
    }

    /// Drops every relayed connection and refuses new ones; returns once the port is closed.
    pub async fn cut(&mut self) {
        if let Some(link) = self.link.take() {
            link.abort();
            let _ = link.await;
        }
    }

    /// Relays again, on the same port.
    pub fn restore(&mut self) {
        if self.link.is_none() {
            self.link = Some(relay(self.address, self.upstream.clone()));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            link.abort();
        }
    }
}

/// Polls `/readyz` for up to ten seconds; returns the last status.
pub async fn wait_until_ready(app: &TestApp) -> StatusCode {
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..40 {
        ready = app.client.get(app.url("/readyz")).send().await.unwrap().status();
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    ready
}

/// Whether `python3` imports every module of `modules` (space-separated). A test that cannot
/// do its main part without them says so and is skipped locally; in CI, where `.ci/run`
/// installs them, their absence fails it.
pub fn python_has(modules: &str, test: &str) -> bool {
    let import = format!("import {}", modules.split(' ').collect::<Vec<_>>().join(", "));
    let ready = std::process::Command::new("python3")
        .args(["-c", &import])
        .output()
        .is_ok_and(|output| output.status.success());
    if !ready {
        assert!(std::env::var_os("CI").is_none(), "{test} needs Python's {modules} in CI");
        eprintln!("SKIPPED {test}: install {modules} with pip to run it");
    }
    ready
}
