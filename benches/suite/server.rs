//! The server under test, as a child process of the real binary, and the scratch PostgreSQL
//! database and Redis key prefix of a run.
//!
//! `Server::start` validates its environment with `portcullis config check` first (so a bad
//! variable is reported by name), then runs `portcullis serve` on a port picked beforehand, in a
//! fresh data directory, and waits for `/readyz` to answer 200. The child is killed and reaped
//! when the `Server` is dropped, on every exit path of the suite, panics included.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Context, Result, free_port, progress, tail};

/// The binary cargo built for this bench (release profile under `cargo bench`).
pub const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// The storage pairs the suite measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the data directory, sessions in it too, rate budgets in process memory.
    Embedded,
    /// PostgreSQL for the data, Redis for sessions, lockouts and budgets.
    PostgresRedis,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::PostgresRedis => "postgres-redis",
        }
    }
}

/// A running `portcullis serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub pid: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with `vars` (full `PORTCULLIS_*` names) on top of the suite's own: a free
    /// port on 127.0.0.1, a fresh data directory, error-level logs. Inherited `PORTCULLIS_*`
    /// variables are removed, so the caller's shell cannot change what is measured.
    pub async fn start(label: &str, vars: &[(String, String)]) -> Result<Self> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let port = free_port()?;
        let mut env: Vec<(String, String)> = vec![
            ("PORTCULLIS_BIND".into(), format!("127.0.0.1:{port}")),
            ("PORTCULLIS_DATA_DIR".into(), dir.path().join("data").display().to_string()),
            ("PORTCULLIS_LOG".into(), "error".into()),
        ];
        env.extend(vars.iter().cloned());
        let command = |args: &[&str]| {
            let mut command = Command::new(BINARY);
            command.args(args);
            for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("PORTCULLIS_")) {
                command.env_remove(name);
            }
            command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            command
        };

        let check =
            command(&["config", "check"]).output().context(format!("run {BINARY} config check"))?;
        if !check.status.success() {
            return Err(format!(
                "{label}: `portcullis config check` failed ({}): {}",
                check.status,
                tail(&String::from_utf8_lossy(&check.stderr), 5)
            )
            .into());
        }

        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).context("server log file")?;
        let child = command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .context(format!("spawn {BINARY} serve"))?;
        let pid = child.id();
        let mut server =
            Server { child, base: format!("http://127.0.0.1:{port}"), pid, log, _dir: dir };
        server.wait_ready(label, Duration::from_secs(90)).await?;
        progress(format!("{label}: server pid {pid} ready on {}", server.base));
        Ok(server)
    }

    async fn wait_ready(&mut self, label: &str, within: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("HTTP client")?;
        let deadline = Instant::now() + within;
        let url = format!("{}/readyz", self.base);
        loop {
            if let Some(status) = self.child.try_wait().context("wait for the server")? {
                return Err(format!(
                    "{label}: the server exited before it was ready ({status}): {}",
                    self.log_tail()
                )
                .into());
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{label}: /readyz did not answer 200 within {within:?}: {}",
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the server's standard error (its error-level log lines).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let text = tail(&text, 5);
        if text.is_empty() { "(no log output)".to_owned() } else { text }
    }

    /// Whether the child is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// What the server had spent at one moment: CPU time (all threads, user and system, from
/// `/proc/PID/stat`) and Argon2 hashes (`portcullis_password_hashes_total` on `/metrics`); and,
/// to tell what other work on the machine took, the whole machine's busy time (`/proc/stat`,
/// steal included) and the suite's own CPU time with its reaped children (wrk, python).
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub cpu: Option<Duration>,
    pub hashes: Option<f64>,
    pub at: Instant,
    pub machine_busy: Option<Duration>,
    pub suite_cpu: Option<Duration>,
    /// CPU time of every `postgres` and `redis-server` process: the storage's share of the work.
    pub storage_cpu: Duration,
}

impl Server {
    pub async fn probe(&self) -> Probe {
        let hashes = async {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
            let text = client.get(format!("{}/metrics", self.base)).send().await.ok()?;
            let text = text.text().await.ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("portcullis_password_hashes_total "))
                .and_then(|v| v.trim().parse().ok())
        };
        let hashes = hashes.await;
        Probe {
            cpu: cpu_time(self.pid),
            hashes,
            at: Instant::now(),
            machine_busy: machine_busy_time(),
            suite_cpu: suite_cpu_time(),
            storage_cpu: storage_cpu_time(),
        }
    }
}

fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// The machine's busy time since boot: every CPU's user, nice, system and steal time. Interrupt
/// and softirq time are left out: under load they are mostly the loopback networking of the
/// benchmark's own requests (half a core at 20,000 Redis round trips a second), which no process
/// is charged for; other work shows as user, system or steal time of other processes.
fn machine_busy_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let busy = [0, 1, 2, 7].iter().map(|&i| fields.get(i).copied().unwrap_or(0)).sum::<u64>();
    Some(Duration::from_secs_f64(busy as f64 / clock_ticks() as f64))
}

/// This process's CPU time and that of its children already waited for (utime, stime, cutime,
/// cstime of `/proc/self/stat`).
fn suite_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 =
        (11..15).map(|i| fields.get(i).and_then(|v| v.parse::<u64>().ok())).sum::<Option<u64>>()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// The CPU time of the storage servers on this machine: every process named `postgres` (the
/// server's connections are long-lived backends) or `redis-server`.
fn storage_cpu_time() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    let ticks: u64 = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            if name != "postgres" && !name.starts_with("redis-server") {
                return None;
            }
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

/// `sysconf(_SC_CLK_TCK)`, through getconf (the crate forbids `unsafe`); 100 where unknown.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch PostgreSQL database `portcullis_bench_<uuid>` and a Redis key prefix of the same id.
/// `remove` drops both; if it was not called (an error path), `Drop` does it on a thread of its
/// own, so no scratch database outlives the run.
pub struct Scratch {
    pub database: String,
    pub prefix: String,
    removed: bool,
}

impl Scratch {
    pub async fn create() -> Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("portcullis_bench_{id}");
        let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres"))
            .await
            .context(format!("connect to PostgreSQL at {POSTGRES}"))?;
        sqlx::query(&format!(r#"CREATE DATABASE "{database}""#))
            .execute(&admin)
            .await
            .context("create the scratch database")?;
        admin.close().await;
        Ok(Self { database, prefix: format!("bench:{id}:"), removed: false })
    }

    pub fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.database)
    }

    pub async fn remove(&mut self) -> Result<()> {
        self.removed = true;
        remove(&self.database, &self.prefix).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (database, prefix) = (self.database.clone(), self.prefix.clone());
        // Inside the suite's runtime no other runtime may block this thread: use one of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => runtime.block_on(remove(&database, &prefix)),
                Err(e) => Err(e.into()),
            }
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not remove the scratch database {}: {e}", self.database),
            Err(_) => eprintln!("could not remove the scratch database {}", self.database),
        }
    }
}

async fn remove(database: &str, prefix: &str) -> Result<()> {
    let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres"))
        .await
        .context("connect to PostgreSQL")?;
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{database}" WITH (FORCE)"#))
        .execute(&admin)
        .await
        .context(format!("drop {database}"))?;
    admin.close().await;
    let client = redis::Client::open(REDIS).context("Redis URL")?;
    let mut connection =
        client.get_multiplexed_async_connection().await.context("connect to Redis")?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .context("list the scratch keys")?;
    for chunk in keys.chunks(500) {
        let _: i64 =
            redis::cmd("DEL").arg(chunk).query_async(&mut connection).await.context("DEL")?;
    }
    Ok(())
}

/// The variables that point a server at PostgreSQL and Redis (`postgres_addr`/`redis_addr`
/// `host:port`, so that P10 can put its counting proxies in between).
pub fn shared_env(
    scratch: &Scratch,
    prefix: &str,
    postgres_addr: &str,
    redis_addr: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "PORTCULLIS_DATABASE_URL".into(),
            format!("postgres://postgres@{postgres_addr}/{}", scratch.database),
        ),
        ("PORTCULLIS_REDIS_URL".into(), format!("redis://{redis_addr}")),
        ("PORTCULLIS_REDIS_PREFIX".into(), prefix.to_owned()),
    ]
}
