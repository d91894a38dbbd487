//! The calibrated bench suite (issue 13): every performance goal of the project, measured against
//! references taken in the same run on the same machine, on the real server binary.
//!
//! Run it with `scripts/bench [--backend embedded|postgres-redis|both] [--quick] [--out FILE]`,
//! which checks for wrk and argon2-cffi and then runs `cargo bench --bench suite -- ARGS`. Options:
//! `--duration SECS` per wrk scenario (10, `--quick` 2), `--flood-secs SECS` for P3 (60, `--quick`
//! 10), `--p4-cap RATE` (the most requests per second P4 offers per stream, 5000), `--out FILE`
//! (default `target/bench/results`, written as `.json` and `.md`), `--only P1,P3` (a subset, for
//! short runs while developing). Progress goes to standard error; the calibration block, the
//! results table and a table of what each load cost the server go to standard output.
//!
//! # Method
//!
//! The server under test is `portcullis serve` (`CARGO_BIN_EXE_portcullis`, built with the bench
//! profile) as a child process, configured through its environment only, on a port picked
//! beforehand on 127.0.0.1, in a fresh data directory, killed on every exit path. Argon2id keeps
//! the server's defaults (m=19456 KiB, t=2, p=1, OWASP); rate budgets are set out of the way
//! (100000000/min) and the lockout threshold and failure cap to 10^9, except where a scenario is
//! about them. The "embedded" pair is the default: SQLite in the data directory, in-process rate
//! budgets. The "postgres-redis" pair uses a scratch database `portcullis_bench_<uuid>` on
//! postgres://postgres@127.0.0.1:5432 and a unique key prefix on redis://127.0.0.1:6379, both
//! removed at the end.
//!
//! Calibration first (see `suite/calibrate.rs`): `H` (one verification by the project's own
//! hasher, one thread), `H_ref` (the C reference, argon2-cffi, which also checks that the
//! project's PHC string is real Argon2id), `B = cores / H` and `B_ref = cores / H_ref` (logins
//! per second the cores allow), the project's hasher with every slot busy (whether `B` is
//! reachable on this machine at all), `R0` (an axum hello world under the same wrk load: what
//! HTTP alone costs here), a Redis round trip and Ed25519 sign/verify. Every reference is taken on
//! the same machine in the same run, so a ratio compares like with like; but other work on the
//! machine lowers the scenarios more than the short calibration, so the suite measures how busy
//! the machine is (from /proc/stat, while the suite is idle) before and after, and warns.
//!
//! Closed-loop throughput (P1, P2, P5-P8) is wrk with `-t cores -c 32` unless said otherwise,
//! with Lua scripts in `suite/*.lua` that count every status. Open-loop load (P3, P4, the second
//! half of P7) is the driver in `suite/open_loop.rs`: a constant arrival rate, latencies from the
//! scheduled send time, a per-request deadline; it reports its own lateness ("driver lag") so
//! that a late client is not mistaken for a slow server. Load generator and server share the
//! machine's cores, as the references do (R0's wrk too); on a small machine that costs the server
//! CPU, which `B` (cores that do nothing but hash) does not account for.
//!
//! Around every load the suite reads the server's CPU time (/proc/PID/stat) and its
//! `portcullis_password_hashes_total` (`/metrics`): the diagnostics table gives server CPU per
//! request, the cores the server kept busy, and hashes per request, which say where a shortfall
//! comes from (a server that keeps one core busy with two hashing slots is serialised somewhere).
//!
//! | id | what | goal |
//! |---|---|---|
//! | P1 | login, 256 accounts, right password | ≥ 0.95 × B and ≥ 1.8 × B_ref |
//! | P2 | wrong password vs unknown email, `-c cores` | throughputs ± 5 %, medians within 5 % of H |
//! | P3 | login flood at 10 × B, open loop | goodput ≥ 0.9 × B; refusals 429/503 with Retry-After, p99 ≤ 10 ms; no timeouts |
//! | P4 | `/me` and refresh at ½ their unloaded rates during P3 | p99 ≤ 10 ms / 20 ms, ≥ 50 % of unloaded |
//! | P5 | logins over budget (`RATE_LIMIT_IP=1/h`) | ≥ 0.5 × R0 embedded, ≥ 0.2 × R0 Redis |
//! | P6 | `GET /v1/auth/me`, 64 tokens | ≥ 0.3 × R0 embedded, ≥ 0.15 × R0 PostgreSQL + Redis |
//! | P7 | refresh, one chain per connection; then open loop at ½ of that | ≥ 0.04 × R0; p99 ≤ 10 ms |
//! | P8 | registration, a new email each request | ≥ 0.9 × B |
//! | P9 | server RSS idle, and peak during P3 | ≤ 40 MiB; ≤ idle + cores × 19 MiB + 64 MiB |
//! | P10 | storage round trips per request (postgres-redis, counting proxies) | /me ≤ 1, refresh ≤ 1 Redis + audit, login ≤ 3 |
//! | P11 | audit appends, two instances on one PostgreSQL | ≥ 10,000 events/s, chain valid |
//!
//! P4 offers half of P6's and P7's unloaded throughputs, at most `--p4-cap`; when the cap keeps
//! the offer under half, the throughput half of the goal cannot be judged and the row says `n/a`
//! (unless its p99 already fails). P9 assumes as many hashes in flight as cores: the server gives
//! its `PasswordHasher` `available_parallelism()` slots (src/startup/mod.rs), each hash holding
//! 19 MiB; the peak is the larger of VmHWM read after P3 and VmRSS sampled every 100 ms during it.
//! P10 counts a round trip each time a client sends after its server last spoke, per
//! connection, through a proxy in front of PostgreSQL and one in front of Redis
//! (`suite/proxy.rs`), on a fresh server with accounts of its own, after as many warm-up requests
//! as it measures (steady state: connections open, statements prepared). A self-check first runs
//! known conversations through the proxies (10 `SELECT 1`, 10 PINGs), and the same through sqlx
//! pools with and without `test_before_acquire`, which shows what a pool's pings cost. The
//! server's own background traffic is measured over an idle window (as long as the longest
//! request window, at least 3 s) and subtracted pro rata; a goal allows 0.05 for that
//! subtraction's noise. P11 runs for `min(--duration, 5 s)`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "suite/calibrate.rs"]
mod calibrate;
#[path = "suite/open_loop.rs"]
mod open_loop;
#[path = "suite/proxy.rs"]
mod proxy;
#[path = "suite/report.rs"]
mod report;
#[path = "suite/server.rs"]
mod server;
#[path = "suite/util.rs"]
mod util;
#[path = "suite/wrk.rs"]
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use portcullis::audit::{Audit, AuditEvent, EventType, Outcome};
use portcullis::config::Settings;
use portcullis::domain::{Clock as _, RequestContext, SystemClock, UserId};
use portcullis::metrics::Metrics;
use portcullis::store::sql::SqlStore;
use serde_json::{Value, json};

use calibrate::PASSWORD;
use open_loop::{Chains, Kind};
use proxy::Proxy;
use report::{Calibration, Diag, Met, Row};
use server::{Backend, POSTGRES_ADDR, Probe, REDIS, REDIS_ADDR, Scratch, Server, shared_env};
use util::{Context, Error, Result, ms, proc_status_kib, progress};

const USAGE: &str = "usage: cargo bench --bench suite -- [--backend embedded|postgres-redis|both] \
[--quick] [--out FILE] [--duration SECS] [--flood-secs SECS] [--p4-cap RATE] [--only P1,P3,...]";

/// Accounts registered for the login scenarios (P1, P2, P3).
const ACCOUNTS: usize = 256;
/// Logins whose tokens P6 (access tokens), P7's open loop and P4 (refresh chains) use.
const TOKENS: usize = 64;
const WRONG_PASSWORD: &str = "Wrong-Horse-42";
/// Budgets and lockout out of the way, for the scenarios that are not about them.
const LOOSE: &[(&str, &str)] = &[
    ("PORTCULLIS_RATE_LIMIT_IP", "100000000/min"),
    ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "100000000/min"),
    ("PORTCULLIS_RATE_LIMIT_READS", "100000000/min"),
    ("PORTCULLIS_LOCKOUT_THRESHOLD", "1000000000"),
    ("PORTCULLIS_LOCKOUT_MAX_FAILURES", "1000000000"),
];
/// How long an open-loop request may take, from its scheduled time, before it counts as a timeout.
const OPEN_LOOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most flood (and `/me`) requests in flight at once; past it a request is not sent but
/// counted. A server that answers its refusals within 10 ms needs a few hundred at most.
const FLOOD_IN_FLIGHT: usize = 1024;
const MIB: f64 = 1024.0;

fn email(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}@bench.example")
}

struct Args {
    backends: Vec<Backend>,
    quick: bool,
    out: PathBuf,
    duration: Duration,
    flood: Duration,
    p4_cap: f64,
    /// Only these scenarios (`--only P1,P3`), for short runs while developing.
    only: Option<Vec<String>>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut backends = vec![Backend::Embedded];
        let (mut quick, mut out, mut duration, mut flood, mut p4_cap) =
            (false, None, None, None, 5000.0);
        let mut only = None;
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => {
                    (name.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value =
                || inline.clone().or_else(|| args.next()).context(format!("{name} needs a value"));
            match name.as_str() {
                // cargo passes --bench to every bench binary.
                "--bench" => {}
                "--quick" => quick = true,
                "--backend" => {
                    backends = match value()?.as_str() {
                        "embedded" => vec![Backend::Embedded],
                        "postgres-redis" => vec![Backend::PostgresRedis],
                        "both" => vec![Backend::Embedded, Backend::PostgresRedis],
                        other => return Err(format!("unknown backend {other}").into()),
                    }
                }
                "--out" => out = Some(PathBuf::from(value()?)),
                "--duration" => duration = Some(seconds(&value()?)?),
                "--flood-secs" => flood = Some(seconds(&value()?)?),
                "--p4-cap" => {
                    p4_cap = value()?
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0)
                        .context("--p4-cap needs a positive rate")?
                }
                "--only" => {
                    only = Some(value()?.split(',').map(|id| id.trim().to_uppercase()).collect())
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        let default =
            |normal: u64, fast: u64| Duration::from_secs(if quick { fast } else { normal });
        Ok(Some(Self {
            backends,
            quick,
            out: out.unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/results"))
            }),
            duration: duration.unwrap_or_else(|| default(10, 2)),
            flood: flood.unwrap_or_else(|| default(60, 10)),
            p4_cap,
            only,
        }))
    }
}

fn seconds(text: &str) -> Result<Duration> {
    let n: u64 =
        text.parse().ok().filter(|n| *n > 0).context(format!("not a number of seconds: {text}"))?;
    Ok(Duration::from_secs(n))
}

fn main() -> ExitCode {
    util::start_clock();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("suite: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("suite: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suite: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut calibration = calibrate_all(&args).await?;
    for line in calibration.lines() {
        progress(line);
    }
    let (mut rows, mut diags) = (Vec::new(), Vec::new());
    for &backend in &args.backends {
        let mut suite = Suite {
            args: &args,
            cal: &calibration,
            backend,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("HTTP client")?,
            rows: Vec::new(),
            diags: Vec::new(),
        };
        progress(format!("== {} ==", backend.name()));
        if let Err(e) = suite.run().await {
            suite.failed("setup", "start the backend and its server", e);
        }
        rows.extend(suite.rows);
        diags.extend(suite.diags);
    }

    calibration.busy_after =
        calibrate::machine_busy(Duration::from_secs(1), calibration.cores).await;
    println!("## Calibration\n");
    for line in calibration.lines() {
        println!("- {line}");
    }
    println!("\n## Results\n");
    print!("{}", report::table(&rows));
    println!("\n## What each load cost the server\n");
    print!("{}", report::diag_table(&diags));
    if let Some(note) = report::other_work_note(&diags) {
        println!("\n{note}");
    }
    let run = json!({
        "started_at": started_at,
        "backends": args.backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
        "quick": args.quick,
        "wrk_duration_s": args.duration.as_secs(),
        "flood_s": args.flood.as_secs(),
        "p4_cap_per_s": args.p4_cap,
        "only": args.only,
        "binary": server::BINARY,
    });
    let (json_path, md_path) = report::write(&args.out, &calibration, &rows, &diags, run)?;
    progress(format!("results written to {} and {}", json_path.display(), md_path.display()));
    Ok(())
}

async fn calibrate_all(args: &Args) -> Result<Calibration> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (cpu, kernel) = calibrate::machine();
    let busy_before = calibrate::machine_busy(Duration::from_secs(1), cores).await;
    if let Some(busy) = busy_before.filter(|b| *b > 0.25) {
        progress(format!(
            "WARNING: the machine is busy with other work ({busy:.2} of {cores} cores): \
             every result of this run will be too low"
        ));
    }
    // The parameters the server will use: its defaults, read the way it reads them.
    let settings =
        Settings::load(None, Vec::<(String, String)>::new()).context("the default settings")?;
    let argon2 = settings.argon2;
    progress(format!(
        "calibration on {cpu} ({cores} cores): Argon2id m={} KiB t={} p={}",
        argon2.memory_kib, argon2.iterations, argon2.parallelism
    ));
    let hasher = tokio::task::spawn_blocking(move || calibrate::hasher(argon2, cores))
        .await
        .context("hasher calibration")??;
    progress(format!("H = {:.2} ms", ms(hasher.h)));
    let (h_ref, h_ref_library, phc_agrees) =
        match calibrate::reference_hash(argon2, &hasher.phc).await {
            Ok(reference) => (Some(reference.h_ref), reference.library, reference.phc_agrees),
            Err(e) => {
                progress(format!("H_ref unavailable: {e}"));
                (None, e.to_string(), None)
            }
        };
    let r0 = calibrate::hello_world(cores, args.duration).await.context("R0 (hello world)")?;
    progress(format!("R0 = {:.0} req/s ({})", r0.rate_of(200), r0.statuses_text()));
    let redis_rtt = calibrate::redis_round_trip(REDIS).await.map_err(|e| e.to_string());
    let (sign, verify) = calibrate::eddsa()?;
    Ok(Calibration {
        cpu,
        kernel,
        cores,
        memory_kib: argon2.memory_kib,
        iterations: argon2.iterations,
        parallelism: argon2.parallelism,
        h: hasher.h,
        h_ref,
        h_ref_library,
        r0: r0.rate_of(200),
        r0_p99: r0.p99,
        redis_rtt,
        sign,
        verify,
        hashing_slots: cores,
        hasher_parallel: hasher.parallel_rate,
        phc_agrees,
        busy_before,
        busy_after: None,
    })
}

/// The scenarios of one backend, and the rows they produce.
struct Suite<'a> {
    args: &'a Args,
    cal: &'a Calibration,
    backend: Backend,
    client: reqwest::Client,
    rows: Vec<Row>,
    diags: Vec<Diag>,
}

/// A row's fields other than its backend.
struct Measured {
    measured: String,
    reference: String,
    ratio: Option<f64>,
    goal: String,
    met: Met,
    detail: Value,
}

impl Suite<'_> {
    /// Whether `--only` (if given) asks for scenario `id`.
    fn wants(&self, id: &str) -> bool {
        self.args.only.as_ref().is_none_or(|only| only.iter().any(|o| o == id))
    }

    /// Records what a load cost the server between two probes.
    fn diag(
        &mut self,
        id: &'static str,
        what: impl Into<String>,
        before: Probe,
        after: Probe,
        requests: u64,
    ) {
        let delta =
            |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| a.saturating_sub(b));
        let cpu = delta(after.cpu, before.cpu);
        let hashes = after.hashes.zip(before.hashes).map(|(a, b)| a - b);
        let machine = delta(after.machine_busy, before.machine_busy);
        let suite = delta(after.suite_cpu, before.suite_cpu);
        let storage = after.storage_cpu.saturating_sub(before.storage_cpu);
        let other = match (machine, cpu, suite) {
            (Some(m), Some(c), Some(s)) => {
                Some(m.saturating_sub(c).saturating_sub(s).saturating_sub(storage))
            }
            _ => None,
        };
        if let Some(cores) =
            other.map(|o| o.as_secs_f64() / (after.at - before.at).as_secs_f64().max(1e-9))
            && cores > report::OTHER_WORK_LIMIT
        {
            progress(format!(
                "WARNING: other work on the machine took {cores:.2} cores during {id}"
            ));
        }
        self.diags.push(Diag {
            id,
            backend: self.backend.name().to_owned(),
            what: what.into(),
            requests,
            wall: after.at - before.at,
            cpu,
            hashes,
            storage,
            other,
        });
    }

    fn push(&mut self, id: &'static str, scenario: impl Into<String>, m: Measured) {
        if id != "setup" && !self.wants(id) {
            return;
        }
        let row = Row {
            id,
            scenario: scenario.into(),
            backend: self.backend.name().to_owned(),
            measured: m.measured,
            reference: m.reference,
            ratio: m.ratio,
            goal: m.goal,
            met: m.met,
            detail: m.detail,
        };
        progress(format!(
            "{} {} [{}]: {} (ratio {}, goal {}: {:?})",
            row.id,
            row.scenario,
            row.backend,
            row.measured,
            report::ratio_text(row.ratio),
            row.goal,
            row.met
        ));
        self.rows.push(row);
    }

    fn failed(&mut self, id: &'static str, scenario: &str, error: Error) {
        let m = Measured {
            measured: format!("error: {error}"),
            reference: "–".into(),
            ratio: None,
            goal: "–".into(),
            met: Met::Error,
            detail: json!({ "error": error.to_string() }),
        };
        self.push(id, scenario, m);
    }

    fn embedded(&self) -> bool {
        self.backend == Backend::Embedded
    }

    fn env(
        &self,
        scratch: Option<&Scratch>,
        role: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env = match scratch {
            Some(s) => shared_env(s, &format!("{}{role}:", s.prefix), POSTGRES_ADDR, REDIS_ADDR),
            None => Vec::new(),
        };
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    fn spec<'s>(
        &self,
        script: &'s str,
        base: &str,
        connections: usize,
        args: &[&str],
    ) -> wrk::Spec<'s> {
        wrk::Spec {
            script,
            threads: self.cal.cores.min(connections),
            connections,
            duration: self.args.duration,
            url: format!("{base}/"),
            args: args.iter().map(|a| a.to_string()).collect(),
            data: Vec::new(),
        }
    }

    async fn run(&mut self) -> Result<()> {
        let mut scratch = match self.backend {
            Backend::PostgresRedis => Some(Scratch::create().await?),
            Backend::Embedded => None,
        };
        let result = self.scenarios(scratch.as_ref()).await;
        if let Some(scratch) = scratch.as_mut()
            && let Err(e) = scratch.remove().await
        {
            progress(format!("could not remove {}: {e}", scratch.database));
        }
        result
    }

    async fn scenarios(&mut self, scratch: Option<&Scratch>) -> Result<()> {
        let name = self.backend.name();
        let main = ["P1", "P2", "P3", "P4", "P6", "P7", "P8", "P9"];
        if main.iter().any(|id| self.wants(id)) {
            let mut server =
                Server::start(&format!("{name} main"), &self.env(scratch, "main", LOOSE)).await?;
            self.on_main_server(&mut server).await?;
        }
        if self.wants("P5")
            && let Err(e) = self.p5(scratch).await
        {
            self.failed("P5", "logins over budget", e);
        }
        if let Some(scratch) = scratch {
            if self.wants("P10")
                && let Err(e) = self.p10(scratch).await
            {
                self.failed("P10", "storage round trips per request", e);
            }
            if self.wants("P11")
                && let Err(e) = self.p11().await
            {
                self.failed("P11", "audit appends, two instances", e);
            }
        }
        Ok(())
    }

    /// P1-P4 and P6-P9, on one server with loose budgets.
    async fn on_main_server(&mut self, server: &mut Server) -> Result<()> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = proc_status_kib(server.pid, "VmRSS");
        let base = server.base.clone();

        progress(format!("registering {ACCOUNTS} accounts"));
        let before = server.probe().await;
        self.register(&base, "p1-", ACCOUNTS, 16).await?;
        let what = format!("{ACCOUNTS} registrations, 16 at a time");
        self.diag("setup", what, before, server.probe().await, ACCOUNTS as u64);
        let emails: Vec<String> = (0..TOKENS).map(|i| email("p1-", i)).collect();
        let pairs = self.login_many(&base, &emails).await?;
        let access: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let chains = Chains::new(pairs.iter().map(|p| p.1.clone()).collect());
        let wrk_chain_emails: Vec<String> =
            (0..self.refresh_threads()).map(|i| email("p1-", TOKENS + i)).collect();
        let wrk_chains: Vec<String> =
            self.login_many(&base, &wrk_chain_emails).await?.into_iter().map(|p| p.1).collect();

        if self.wants("P1")
            && let Err(e) = self.p1(server).await
        {
            self.failed("P1", "login, many accounts", e);
        }
        if self.wants("P2")
            && let Err(e) = self.p2(server).await
        {
            self.failed("P2", "wrong password vs unknown email", e);
        }
        let mut me_rate = None;
        if self.wants("P6") {
            match self.p6(server, &access).await {
                Ok(rate) => me_rate = Some(rate),
                Err(e) => self.failed("P6", "GET /v1/auth/me", e),
            }
        }
        let mut refresh_rate = None;
        if self.wants("P7") {
            match self.p7(server, wrk_chains, chains.clone()).await {
                Ok(rate) => refresh_rate = Some(rate),
                Err(e) => self.failed("P7", "refresh", e),
            }
        }
        alive(server)?;
        if ["P3", "P4", "P9"].iter().any(|id| self.wants(id))
            && let Err(e) =
                self.p3_p4_p9(server, idle_rss, &access, chains, me_rate, refresh_rate).await
        {
            self.failed("P3", "login flood at 10 × B", e);
        }
        alive(server)?;
        if self.wants("P8")
            && let Err(e) = self.p8(server).await
        {
            self.failed("P8", "registration", e);
        }
        alive(server)
    }

    /// wrk, with what it cost the server recorded as a diagnostic.
    async fn wrk(
        &mut self,
        id: &'static str,
        what: &str,
        server: &Server,
        spec: wrk::Spec<'_>,
    ) -> Result<wrk::Outcome> {
        let before = server.probe().await;
        let out = wrk::run(spec).await?;
        let after = server.probe().await;
        self.diag(id, what, before, after, out.requests);
        Ok(out)
    }

    fn refresh_threads(&self) -> usize {
        4 * self.cal.cores
    }

    /// Registers `<prefix><i>@bench.example` for i in 0..n, `concurrency` at a time.
    async fn register(&self, base: &str, prefix: &str, n: usize, concurrency: usize) -> Result<()> {
        let client = &self.client;
        let results: Vec<Result<()>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let body = json!({ "email": email(prefix, i), "password": PASSWORD });
                let response = client
                    .post(format!("{base}/v1/auth/register"))
                    .json(&body)
                    .send()
                    .await
                    .context("register")?;
                let status = response.status();
                if status != 201 {
                    let text = response.text().await.unwrap_or_default();
                    return Err(
                        format!("register {} answered {status}: {text}", email(prefix, i)).into()
                    );
                }
                Ok(())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn login_many(&self, base: &str, emails: &[String]) -> Result<Vec<(String, String)>> {
        let client = &self.client;
        let results: Vec<Result<(String, String)>> = futures::stream::iter(emails)
            .map(|email| login(client, base, email))
            .buffered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn p1(&mut self, server: &Server) -> Result<()> {
        let count = ACCOUNTS.to_string();
        let spec = self.spec(wrk::LOGIN, &server.base, 32, &["p1-", &count, PASSWORD]);
        let out = self.wrk("P1", "login, right password, -c32", server, spec).await?;
        let rate = out.rate_of(200);
        let scenario =
            format!("login, {ACCOUNTS} accounts (wrk -t{} -c32)", self.cal.cores.min(32));
        let measured = format!(
            "{rate:.1} logins/s (p50 {:.0} ms, p99 {:.0} ms; {})",
            ms(out.p50),
            ms(out.p99),
            out.statuses_text()
        );
        let b = self.cal.b();
        self.push(
            "P1",
            scenario.clone(),
            Measured {
                measured: measured.clone(),
                reference: format!("B = {b:.1}/s"),
                ratio: Some(rate / b),
                goal: "≥ 0.95 × B".into(),
                met: Met::from(rate / b >= 0.95),
                detail: out.json(),
            },
        );
        let (reference, ratio, met) = match self.cal.b_ref() {
            Some(b_ref) => (
                format!("B_ref = {b_ref:.1}/s"),
                Some(rate / b_ref),
                Met::from(rate / b_ref >= 1.8),
            ),
            None => ("B_ref unavailable".into(), None, Met::NotApplicable),
        };
        self.push(
            "P1",
            scenario,
            Measured {
                measured,
                reference,
                ratio,
                goal: "≥ 1.8 × B_ref".into(),
                met,
                detail: out.json(),
            },
        );
        Ok(())
    }

    async fn p2(&mut self, server: &Server) -> Result<()> {
        let cores = self.cal.cores;
        let count = ACCOUNTS.to_string();
        let base = &server.base;
        let spec = self.spec(wrk::LOGIN, base, cores, &["p1-", &count, WRONG_PASSWORD]);
        let what = format!("login, wrong password, -c{cores}");
        let wrong = self.wrk("P2", &what, server, spec).await?;
        let spec = self.spec(wrk::LOGIN, base, cores, &["nobody-", "1000000", PASSWORD]);
        let what = format!("login, unknown email, -c{cores}");
        let unknown = self.wrk("P2", &what, server, spec).await?;
        let (w, u) = (wrong.rate_of(401), unknown.rate_of(401));
        let detail = json!({ "wrong_password": wrong.json(), "unknown_email": unknown.json() });
        let odd = |o: &wrk::Outcome| {
            if o.count(|s| s != 401) > 0 || o.socket_errors > 0 {
                format!(" [{}]", o.statuses_text())
            } else {
                String::new()
            }
        };
        let ratio = w / u;
        self.push(
            "P2",
            format!("401 throughput, wrong password vs unknown email (-c{cores})"),
            Measured {
                measured: format!(
                    "wrong {w:.1}/s{}, unknown {u:.1}/s{}",
                    odd(&wrong),
                    odd(&unknown)
                ),
                reference: format!("unknown {u:.1}/s"),
                ratio: Some(ratio),
                goal: "0.95 – 1.05".into(),
                met: Met::from((ratio - 1.0).abs() <= 0.05),
                detail: detail.clone(),
            },
        );
        let delta = wrong.p50.abs_diff(unknown.p50);
        let h = self.cal.h;
        self.push(
            "P2",
            format!("401 median, wrong password vs unknown email (-c{cores})"),
            Measured {
                measured: format!(
                    "|Δp50| {:.2} ms (wrong {:.2} ms, unknown {:.2} ms)",
                    ms(delta),
                    ms(wrong.p50),
                    ms(unknown.p50)
                ),
                reference: format!("H = {:.2} ms", ms(h)),
                ratio: Some(delta.as_secs_f64() / h.as_secs_f64()),
                goal: "≤ 0.05 × H".into(),
                met: Met::from(delta.as_secs_f64() <= 0.05 * h.as_secs_f64()),
                detail,
            },
        );
        Ok(())
    }

    async fn p6(&mut self, server: &Server, access: &[String]) -> Result<f64> {
        let mut spec = self.spec(wrk::ME, &server.base, 32, &[]);
        spec.data = access.to_vec();
        let out = self.wrk("P6", "GET /me, -c32", server, spec).await?;
        let rate = out.rate_of(200);
        let factor = if self.embedded() { 0.3 } else { 0.15 };
        let r0 = self.cal.r0;
        self.push(
            "P6",
            format!("GET /v1/auth/me, {} tokens (wrk -t{} -c32)", access.len(), self.cal.cores),
            Measured {
                measured: format!(
                    "{rate:.0} req/s (p50 {:.2} ms, p99 {:.2} ms; {})",
                    ms(out.p50),
                    ms(out.p99),
                    out.statuses_text()
                ),
                reference: format!("R0 = {r0:.0}/s"),
                ratio: Some(rate / r0),
                goal: format!("≥ {factor} × R0"),
                met: Met::from(rate / r0 >= factor),
                detail: out.json(),
            },
        );
        Ok(rate)
    }

    async fn p7(
        &mut self,
        server: &Server,
        wrk_chains: Vec<String>,
        chains: Arc<Chains>,
    ) -> Result<f64> {
        let n = self.refresh_threads();
        let base = server.base.as_str();
        let mut spec = self.spec(wrk::REFRESH, base, n, &[]);
        spec.threads = n;
        spec.data = wrk_chains;
        let out = self.wrk("P7", &format!("refresh, -t{n} -c{n}"), server, spec).await?;
        let rate = out.rate_of(200);
        let r0 = self.cal.r0;
        self.push(
            "P7",
            format!("refresh, one chain per connection (wrk -t{n} -c{n})"),
            Measured {
                measured: format!(
                    "{rate:.0} req/s (p50 {:.2} ms, p99 {:.2} ms; {})",
                    ms(out.p50),
                    ms(out.p99),
                    out.statuses_text()
                ),
                reference: format!("R0 = {r0:.0}/s"),
                ratio: Some(rate / r0),
                goal: "≥ 0.04 × R0".into(),
                met: Met::from(rate / r0 >= 0.04),
                detail: out.json(),
            },
        );

        let half = rate / 2.0;
        if half < 1.0 {
            return Err(
                format!("refresh throughput {rate:.1}/s too low for the open-loop half").into()
            );
        }
        let request = open_loop::refresh(self.client.clone(), base.into(), chains.clone());
        let before = server.probe().await;
        let outcome =
            open_loop::run(half, self.args.duration, TOKENS, OPEN_LOOP_TIMEOUT, request).await;
        let answered = (outcome.samples.len() - outcome.skipped()) as u64;
        let what = format!("refresh, open loop at {half:.0}/s");
        self.diag("P7", what, before, server.probe().await, answered);
        let ok = |k: &Kind| matches!(k, Kind::Status { status: 200, .. });
        let (achieved, p99) = (outcome.rate(ok), outcome.latency(ok, 99.0));
        let mut detail = outcome.json();
        detail["chains_lost"] = json!(chains.lost());
        self.push(
            "P7",
            format!("refresh, open loop at ½ of that ({half:.0}/s, {TOKENS} chains)"),
            Measured {
                measured: format!(
                    "p99 {:.2} ms, {achieved:.0}/s achieved ({}; chains lost {})",
                    ms(p99),
                    outcome.statuses_text(),
                    chains.lost()
                ),
                reference: "10 ms".into(),
                ratio: Some(ms(p99) / 10.0),
                goal: "p99 ≤ 10 ms, ≥ 95 % of offered".into(),
                met: Met::from(ms(p99) <= 10.0 && achieved >= 0.95 * half),
                detail,
            },
        );
        Ok(rate)
    }

    /// P3 (the flood), P4 (`/me` and refresh during it) and P9 (memory, idle and during it).
    async fn p3_p4_p9(
        &mut self,
        server: &Server,
        idle_rss: Option<u64>,
        access: &[String],
        chains: Arc<Chains>,
        me_unloaded: Option<f64>,
        refresh_unloaded: Option<f64>,
    ) -> Result<()> {
        let b = self.cal.b();
        let rate = 10.0 * b;
        let duration = self.args.flood;
        let base: Arc<str> = server.base.as_str().into();
        let cap = self.args.p4_cap;
        // P4's streams run only when P4 is asked for; without P6/P7, at 100/s each.
        let p4 = self.wants("P4");
        let me_rate = if p4 { me_unloaded.map_or(100.0, |u| (u / 2.0).min(cap)) } else { 0.0 };
        let refresh_rate =
            if p4 { refresh_unloaded.map_or(100.0, |u| (u / 2.0).min(cap)) } else { 0.0 };
        progress(format!(
            "P3 flood: {rate:.0} logins/s for {}s, with /me at {me_rate:.0}/s and refresh at {refresh_rate:.0}/s",
            duration.as_secs()
        ));

        let flood_client = reqwest::Client::new();
        let flood_request = {
            let (client, base) = (flood_client.clone(), base.clone());
            move |i: u64| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let body = json!({ "email": email("p1-", i as usize % ACCOUNTS), "password": PASSWORD });
                    let sent =
                        client.post(format!("{base}/v1/auth/login")).json(&body).send().await;
                    open_loop::reply(sent).await.0
                }
            }
        };
        let me_request = {
            let (client, base) = (reqwest::Client::new(), base.clone());
            let tokens: Arc<Vec<String>> = Arc::new(access.to_vec());
            move |i: u64| {
                let (client, base, tokens) = (client.clone(), base.clone(), tokens.clone());
                async move {
                    let token = &tokens[i as usize % tokens.len()];
                    let sent =
                        client.get(format!("{base}/v1/auth/me")).bearer_auth(token).send().await;
                    open_loop::reply(sent).await.0
                }
            }
        };
        let refresh_request =
            open_loop::refresh(reqwest::Client::new(), base.clone(), chains.clone());
        let lost_before = chains.lost();

        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (stop, pid) = (stop.clone(), server.pid);
            tokio::spawn(async move {
                let mut peak = 0;
                while !stop.load(Ordering::SeqCst) {
                    peak = proc_status_kib(pid, "VmRSS").unwrap_or(0).max(peak);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                peak
            })
        };
        let before = server.probe().await;
        let (flood, me, refresh) = tokio::join!(
            open_loop::run(rate, duration, FLOOD_IN_FLIGHT, OPEN_LOOP_TIMEOUT, flood_request),
            open_loop::run(me_rate, duration, FLOOD_IN_FLIGHT, OPEN_LOOP_TIMEOUT, me_request),
            open_loop::run(refresh_rate, duration, TOKENS, OPEN_LOOP_TIMEOUT, refresh_request),
        );
        stop.store(true, Ordering::SeqCst);
        let answered =
            |o: &open_loop::Outcome| o.count(|k| matches!(k, Kind::Status { .. })) as u64;
        let what = format!(
            "flood {rate:.0}/s + /me {me_rate:.0}/s + refresh {refresh_rate:.0}/s (all answers)"
        );
        let total = answered(&flood) + answered(&me) + answered(&refresh);
        self.diag("P3", what, before, server.probe().await, total);
        let sampled_peak = sampler.await.context("RSS sampler")?;
        let hwm = proc_status_kib(server.pid, "VmHWM");

        // P3: goodput, refusals, timeouts.
        let ok = |k: &Kind| matches!(k, Kind::Status { status: 200, .. });
        let refusal = |k: &Kind| matches!(k, Kind::Status { status: 429 | 503, .. });
        let bare = |k: &Kind| matches!(k, Kind::Status { status: 429 | 503, retry_after: false });
        let other = |k: &Kind| matches!(k, Kind::Status { status, .. } if ![200, 429, 503].contains(status));
        let goodput = flood.rate(ok);
        let flood_name =
            format!("login flood, open loop at 10 × B = {rate:.0}/s for {}s", duration.as_secs());
        let detail = flood.json();
        self.push(
            "P3",
            format!("{flood_name}: goodput"),
            Measured {
                measured: format!(
                    "{goodput:.1} logins/s (200 p50 {:.0} ms, p99 {:.0} ms)",
                    ms(flood.latency(ok, 50.0)),
                    ms(flood.latency(ok, 99.0))
                ),
                reference: format!("B = {b:.1}/s"),
                ratio: Some(goodput / b),
                goal: "≥ 0.9 × B".into(),
                met: Met::from(goodput / b >= 0.9),
                detail: detail.clone(),
            },
        );
        let (refused, bare_count, others) =
            (flood.count(refusal), flood.count(bare), flood.count(other));
        let refusal_p99 = flood.latency(refusal, 99.0);
        let met = if refused == 0 {
            Met::NotApplicable
        } else {
            Met::from(ms(refusal_p99) <= 10.0 && bare_count == 0 && others == 0)
        };
        self.push(
            "P3",
            format!("{flood_name}: refusals"),
            Measured {
                measured: format!(
                    "p99 {:.1} ms (p50 {:.1} ms) over {refused} refusals; without Retry-After \
                 {bare_count}; other statuses {others} [{}]; driver lag p99 {:.1} ms",
                    ms(refusal_p99),
                    ms(flood.latency(refusal, 50.0)),
                    flood.statuses_text(),
                    ms(flood.lag(99.0)),
                ),
                reference: "10 ms".into(),
                ratio: Some(ms(refusal_p99) / 10.0),
                goal: "429/503 + Retry-After, p99 ≤ 10 ms".into(),
                met,
                detail: detail.clone(),
            },
        );
        let (timeouts, failed, skipped) = (flood.timeouts(), flood.failed(), flood.skipped());
        self.push("P3", format!("{flood_name}: timeouts"), Measured {
            measured: format!(
                "{timeouts} timeouts (> {}s), {failed} connection failures, {skipped} not sent (driver bound)",
                OPEN_LOOP_TIMEOUT.as_secs()
            ),
            reference: "0".into(),
            ratio: None,
            goal: "no timeouts".into(),
            met: Met::from(timeouts == 0 && failed == 0 && skipped == 0),
            detail,
        });

        // P4: /me and refresh during the flood.
        for (what, outcome, unloaded, p99_goal, extra) in [
            ("GET /v1/auth/me", &me, me_unloaded, 10.0, String::new()),
            (
                "refresh",
                &refresh,
                refresh_unloaded,
                20.0,
                format!("; chains lost {}", chains.lost() - lost_before),
            ),
        ] {
            let achieved = outcome.rate(ok);
            let p99 = outcome.latency(ok, 99.0);
            let offered = outcome.offered_rate;
            let (reference, ratio, met) = match unloaded {
                None => ("unloaded unknown".to_owned(), None, Met::NotApplicable),
                Some(u) => {
                    let capped = offered < 0.5 * u * 0.999;
                    let met = if ms(p99) > p99_goal || achieved < 0.95 * offered {
                        Met::No
                    } else if capped {
                        Met::NotApplicable
                    } else {
                        Met::from(achieved >= 0.5 * u * 0.95)
                    };
                    (format!("unloaded {u:.0}/s"), Some(achieved / u), met)
                }
            };
            let capped_note = if unloaded.is_some_and(|u| offered < 0.5 * u * 0.999) {
                format!(" (offer capped at {cap:.0}/s)")
            } else {
                String::new()
            };
            self.push(
                "P4",
                format!("{what} during P3, open loop at {offered:.0}/s{capped_note}"),
                Measured {
                    measured: format!(
                        "{achieved:.0}/s achieved, p99 {:.1} ms [{}{extra}]",
                        ms(p99),
                        outcome.statuses_text()
                    ),
                    reference,
                    ratio,
                    goal: format!("≥ 0.5 × unloaded, p99 ≤ {p99_goal:.0} ms"),
                    met,
                    detail: outcome.json(),
                },
            );
        }

        // P9: memory.
        let idle = idle_rss.context("the server's idle VmRSS could not be read")?;
        let idle_mib = idle as f64 / MIB;
        self.push(
            "P9",
            "server RSS, idle after start",
            Measured {
                measured: format!("{idle_mib:.1} MiB"),
                reference: "40 MiB".into(),
                ratio: Some(idle_mib / 40.0),
                goal: "≤ 40 MiB".into(),
                met: Met::from(idle_mib <= 40.0),
                detail: json!({ "idle_vmrss_kib": idle }),
            },
        );
        let argon2_mib = self.cal.memory_kib as f64 / 1024.0;
        let limit = idle_mib + self.cal.hashing_slots as f64 * argon2_mib + 64.0;
        let peak_kib = hwm.unwrap_or(0).max(sampled_peak);
        let peak_mib = peak_kib as f64 / MIB;
        self.push("P9", "server RSS, peak during P3", Measured {
            measured: format!(
                "{peak_mib:.1} MiB (VmHWM {:.1} MiB, sampled VmRSS max {:.1} MiB)",
                hwm.unwrap_or(0) as f64 / MIB,
                sampled_peak as f64 / MIB
            ),
            reference: format!(
                "idle + {} hashes × {argon2_mib:.0} MiB + 64 MiB = {limit:.0} MiB",
                self.cal.hashing_slots
            ),
            ratio: Some(peak_mib / limit),
            goal: "≤ 1".into(),
            met: Met::from(peak_mib <= limit),
            detail: json!({ "vmhwm_kib": hwm, "sampled_vmrss_max_kib": sampled_peak, "limit_mib": limit }),
        });
        Ok(())
    }

    async fn p8(&mut self, server: &Server) -> Result<()> {
        let prefix = format!("p8-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let spec = self.spec(wrk::REGISTER, &server.base, 32, &[&prefix, PASSWORD]);
        let out = self.wrk("P8", "registration, -c32", server, spec).await?;
        let rate = out.rate_of(201);
        let b = self.cal.b();
        self.push(
            "P8",
            format!("registration, a new email each request (wrk -t{} -c32)", self.cal.cores),
            Measured {
                measured: format!(
                    "{rate:.1} registrations/s (p50 {:.0} ms, p99 {:.0} ms; {})",
                    ms(out.p50),
                    ms(out.p99),
                    out.statuses_text()
                ),
                reference: format!("B = {b:.1}/s"),
                ratio: Some(rate / b),
                goal: "≥ 0.9 × B".into(),
                met: Met::from(rate / b >= 0.9),
                detail: out.json(),
            },
        );
        Ok(())
    }

    async fn p5(&mut self, scratch: Option<&Scratch>) -> Result<()> {
        let env = self.env(scratch, "limited", &[("PORTCULLIS_RATE_LIMIT_IP", "1/h")]);
        let server = Server::start(&format!("{} limited", self.backend.name()), &env).await?;
        let spec = self.spec(wrk::LOGIN, &server.base, 32, &["nobody-", "1000", PASSWORD]);
        let out = self.wrk("P5", "login over budget, -c32", &server, spec).await?;
        drop(server);
        let rate = out.rate();
        let factor = if self.embedded() { 0.5 } else { 0.2 };
        let r0 = self.cal.r0;
        let unexpected =
            out.count(|s| s != 429 && s != 401) + out.count(|s| s == 401).saturating_sub(1) as u64;
        self.push(
            "P5",
            format!("login over budget, RATE_LIMIT_IP=1/h (wrk -t{} -c32)", self.cal.cores),
            Measured {
                measured: format!(
                    "{rate:.0} req/s (p50 {:.2} ms, p99 {:.2} ms; {}{})",
                    ms(out.p50),
                    ms(out.p99),
                    out.statuses_text(),
                    if unexpected > 0 {
                        format!("; {unexpected} unexpected")
                    } else {
                        String::new()
                    }
                ),
                reference: format!("R0 = {r0:.0}/s"),
                ratio: Some(rate / r0),
                goal: format!("≥ {factor} × R0"),
                met: Met::from(rate / r0 >= factor && unexpected == 0),
                detail: out.json(),
            },
        );
        Ok(())
    }

    async fn p10(&mut self, scratch: &Scratch) -> Result<()> {
        let postgres = Proxy::start(POSTGRES_ADDR).await?;
        let redis = Proxy::start(REDIS_ADDR).await?;
        let mut env = shared_env(
            scratch,
            &format!("{}main:", scratch.prefix),
            &format!("127.0.0.1:{}", postgres.port),
            &format!("127.0.0.1:{}", redis.port),
        );
        env.extend(LOOSE.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let check =
            proxy_self_check(&postgres, &redis, scratch).await.context("proxy self-check")?;
        progress(format!("P10 proxy self-check: {check}"));
        let server = Server::start("postgres-redis via counting proxies", &env).await?;
        let base = server.base.clone();
        let client = reqwest::Client::new();
        let k = if self.args.quick { 10 } else { 20 };
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Accounts of its own, registered one at a time before anything is counted (concurrent
        // requests would open pooled connections that sequential ones then rotate through, each
        // preparing its statements anew), then as many requests of each kind as are measured,
        // so that the counts are of the steady state: connections open, statements prepared.
        self.register(&base, "p10-", 2 * k, 1).await?;
        let warm: Vec<String> = (k..2 * k).map(|i| email("p10-", i)).collect();
        for email in &warm {
            let (access, refresh) = login(&client, &base, email).await?;
            me(&client, &base, &access).await?;
            refresh_once(&client, &base, &refresh).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let settle = Duration::from_millis(300);
        let snapshot = || (postgres.round_trips(), redis.round_trips(), Instant::now());

        let start = snapshot();
        let mut pairs = Vec::new();
        for i in 0..k {
            pairs.push(login(&client, &base, &email("p10-", i)).await?);
        }
        tokio::time::sleep(settle).await;
        let after_login = snapshot();
        for (access, _) in &pairs {
            me(&client, &base, access).await?;
        }
        tokio::time::sleep(settle).await;
        let after_me = snapshot();
        for (_, refresh) in &pairs {
            refresh_once(&client, &base, refresh).await?;
        }
        tokio::time::sleep(settle).await;
        let after_refresh = snapshot();
        let windows = [(start, after_login), (after_login, after_me), (after_me, after_refresh)];
        let longest = windows.iter().map(|(a, b)| b.2 - a.2).max().unwrap_or_default();
        let idle_window = longest.max(Duration::from_secs(3));
        let idle_start = snapshot();
        tokio::time::sleep(idle_window).await;
        let idle_end = snapshot();
        drop(server);

        let idle_secs = (idle_end.2 - idle_start.2).as_secs_f64();
        let idle_pg = (idle_end.0 - idle_start.0) as f64 / idle_secs;
        let idle_redis = (idle_end.1 - idle_start.1) as f64 / idle_secs;
        let per_request = |(a, b): ((u64, u64, Instant), (u64, u64, Instant))| {
            let secs = (b.2 - a.2).as_secs_f64();
            let pg = ((b.0 - a.0) as f64 - idle_pg * secs).max(0.0) / k as f64;
            let rd = ((b.1 - a.1) as f64 - idle_redis * secs).max(0.0) / k as f64;
            (pg, rd, json!({ "postgres": b.0 - a.0, "redis": b.1 - a.1, "window_s": secs }))
        };
        let idle = json!({
            "window_s": idle_secs,
            "postgres": idle_end.0 - idle_start.0,
            "redis": idle_end.1 - idle_start.1,
        });
        let slack = 0.05;
        let [login_w, me_w, refresh_w] = windows;
        let goals = [
            ("GET /v1/auth/me", me_w, "≤ 1 in all"),
            ("POST /v1/auth/refresh", refresh_w, "Redis ≤ 1, PG ≤ 1 (batched audit)"),
            ("POST /v1/auth/login", login_w, "≤ 3 in all"),
        ];
        for (what, window, goal) in goals {
            let (pg, rd, raw) = per_request(window);
            let ok = match what {
                "POST /v1/auth/refresh" => rd <= 1.0 + slack && pg <= 1.0 + slack,
                "POST /v1/auth/login" => pg + rd <= 3.0 + slack,
                _ => pg + rd <= 1.0 + slack,
            };
            self.push(
                "P10",
                format!("storage round trips per {what} ({k} sequential, idle subtracted)"),
                Measured {
                    measured: format!("PG {pg:.2} + Redis {rd:.2} = {:.2}", pg + rd),
                    reference: "per request".into(),
                    ratio: Some(pg + rd),
                    goal: goal.into(),
                    met: Met::from(ok),
                    detail: json!({ "requests": k, "window": raw, "idle": idle, "proxy_self_check": check }),
                },
            );
        }
        Ok(())
    }

    async fn p11(&mut self) -> Result<()> {
        let mut scratch = Scratch::create().await?;
        let result = self.p11_on(&scratch).await;
        if let Err(e) = scratch.remove().await {
            progress(format!("could not remove {}: {e}", scratch.database));
        }
        result
    }

    async fn p11_on(&mut self, scratch: &Scratch) -> Result<()> {
        const WRITERS: usize = 64;
        let url = scratch.url();
        let first = SqlStore::connect(&url).await.context("connect the first instance")?;
        first.migrate().await.context("migrate")?;
        let second = SqlStore::connect(&url).await.context("connect the second instance")?;
        let audits = [
            Audit::new(Arc::new(first), Arc::new(Metrics::new().context("metrics")?)),
            Audit::new(Arc::new(second), Arc::new(Metrics::new().context("metrics")?)),
        ];
        let appended = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let started = Instant::now();
        let deadline = started + self.args.duration.min(Duration::from_secs(5));
        let mut tasks = Vec::new();
        for (instance, audit) in audits.iter().enumerate() {
            for writer in 0..WRITERS {
                let (audit, appended, failures, first_error) =
                    (audit.clone(), appended.clone(), failures.clone(), first_error.clone());
                tasks.push(tokio::spawn(async move {
                    let context = RequestContext {
                        ip: Some("192.0.2.1".parse().expect("an address")),
                        user_agent: Some("portcullis-bench-suite".into()),
                        request_id: Some(format!("bench-{instance}-{writer}")),
                        from_page: false,
                    };
                    let user = UserId::new();
                    while Instant::now() < deadline {
                        let event = AuditEvent::new(
                            EventType::Login,
                            Outcome::Success,
                            &context,
                            SystemClock.now(),
                        )
                        .user(user);
                        match audit.record(event).await {
                            Ok(()) => {
                                appended.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e.to_string());
                            }
                        }
                    }
                }));
            }
        }
        for task in tasks {
            task.await.context("audit writer")?;
        }
        let elapsed = started.elapsed();
        let (appended, failures) =
            (appended.load(Ordering::SeqCst), failures.load(Ordering::SeqCst));
        let rate = appended as f64 / elapsed.as_secs_f64();
        progress(format!(
            "P11: {appended} events in {:.1}s, verifying the chain",
            elapsed.as_secs_f64()
        ));
        let report = audits[0].verify(SystemClock.now()).await.context("verify the chain")?;
        let valid = report.problems.is_empty() && report.events == appended;
        let chain = if valid {
            format!("chain valid, {} events", report.events)
        } else {
            format!(
                "chain INVALID: {} events for {appended} appended, {} problems{}",
                report.events,
                report.problems.len(),
                report.problems.first().map(|p| format!(", first: {p}")).unwrap_or_default()
            )
        };
        let error = first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.push(
            "P11",
            format!("audit appends, 2 instances × {WRITERS} tasks on PostgreSQL"),
            Measured {
                measured: format!(
                    "{rate:.0} events/s ({chain}; {failures} failed appends{})",
                    error.map(|e| format!(", first: {e}")).unwrap_or_default()
                ),
                reference: "10,000/s".into(),
                ratio: Some(rate / 10_000.0),
                goal: "≥ 10,000/s, chain valid".into(),
                met: Met::from(rate >= 10_000.0 && valid && failures == 0),
                detail: json!({
                    "appended": appended,
                    "failures": failures,
                    "seconds": elapsed.as_secs_f64(),
                    "chain_events": report.events,
                    "problems": report.problems,
                }),
            },
        );
        Ok(())
    }
}

/// Checks the counting proxies against known conversations, and shows what a pool's
/// `test_before_acquire` (a ping before each use) costs: 10 `SELECT 1` on one connection (10
/// expected), the same through a one-connection pool with `test_before_acquire(true)` (as the
/// server's PostgreSQL pool is configured) and with `false`, and 10 Redis PINGs (10 expected).
async fn proxy_self_check(postgres: &Proxy, redis: &Proxy, scratch: &Scratch) -> Result<Value> {
    use sqlx::Connection as _;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", postgres.port, scratch.database);
    let mut connection = sqlx::PgConnection::connect(&url).await.context("connect")?;
    sqlx::query("SELECT 1").execute(&mut connection).await.context("SELECT 1")?;
    let before = postgres.round_trips();
    for _ in 0..10 {
        sqlx::query("SELECT 1").execute(&mut connection).await.context("SELECT 1")?;
    }
    let one_connection = postgres.round_trips() - before;
    connection.close().await.context("close")?;
    let mut pooled = Vec::new();
    for test_before_acquire in [true, false] {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(test_before_acquire)
            .connect(&url)
            .await
            .context("pool")?;
        sqlx::query("SELECT 1").execute(&pool).await.context("SELECT 1")?;
        let before = postgres.round_trips();
        for _ in 0..10 {
            sqlx::query("SELECT 1").execute(&pool).await.context("SELECT 1")?;
        }
        pooled.push(postgres.round_trips() - before);
        pool.close().await;
    }
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).context("Redis")?;
    let mut connection = client.get_multiplexed_async_connection().await.context("Redis")?;
    let _: String = redis::cmd("PING").query_async(&mut connection).await.context("PING")?;
    let before = redis.round_trips();
    for _ in 0..10 {
        let _: String = redis::cmd("PING").query_async(&mut connection).await.context("PING")?;
    }
    let pings = redis.round_trips() - before;
    Ok(json!({
        "pg_10_select_one_connection": one_connection,
        "pg_10_select_pool_test_before_acquire": pooled[0],
        "pg_10_select_pool_no_test_before_acquire": pooled[1],
        "redis_10_ping": pings,
    }))
}

fn alive(server: &mut Server) -> Result<()> {
    if server.alive() {
        Ok(())
    } else {
        Err(format!("the server died: {}", server.log_tail()).into())
    }
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> Result<(String, String)> {
    let body = json!({ "email": email, "password": PASSWORD });
    let response = client
        .post(format!("{base}/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .context(format!("login {email}"))?;
    let status = response.status();
    let pair: Value = response.json().await.context(format!("login {email}: body"))?;
    if status != 200 {
        return Err(format!("login {email} answered {status}: {pair}").into());
    }
    let token = |name: &str| {
        pair[name].as_str().map(str::to_owned).context(format!("login {email}: no {name}"))
    };
    Ok((token("access_token")?, token("refresh_token")?))
}

async fn me(client: &reqwest::Client, base: &str, access: &str) -> Result<()> {
    expect_ok(client.get(format!("{base}/v1/auth/me")).bearer_auth(access), "GET /me").await
}

async fn refresh_once(client: &reqwest::Client, base: &str, token: &str) -> Result<()> {
    let body = json!({ "refresh_token": token });
    expect_ok(client.post(format!("{base}/v1/auth/refresh")).json(&body), "refresh").await
}

/// Sends `request`, which must answer 200, and reads its body to the end.
async fn expect_ok(request: reqwest::RequestBuilder, what: &str) -> Result<()> {
    let response = request.send().await.context(what)?;
    let status = response.status();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{what} answered {status}: {body}").into());
    }
    response.bytes().await.context(format!("{what} body"))?;
    Ok(())
}
