//! The references the goals are ratios of, measured in the same run on the same machine.
//!
//! - `H`: one password verification through the project's own `PasswordHasher` at the configured
//!   parameters, one call at a time on a current-thread runtime (the hasher runs each hash on the
//!   blocking pool; one call at a time, that is one thread hashing). Median of `SAMPLES`.
//! - `H_ref`: the same Argon2id computation by the C reference implementation, through Python's
//!   argon2-cffi (`benches/suite/argon2_ref.py`), timed in Python with `perf_counter`. The script
//!   also verifies a PHC string the project's hasher made: a fast `H` counts only if it is the
//!   real Argon2id.
//! - The project's hasher with every slot busy (`cores` slots): whether `B` is reachable here.
//! - `B = cores / H`, `B_ref = cores / H_ref`: the logins per second the machine's cores allow when
//!   they do nothing but hash.
//! - `R0`: a hello-world axum handler on a runtime with one worker per core, under the same wrk
//!   load as the scenarios: what the HTTP stack alone serves on this machine.
//! - A Redis round trip (median of sequential PINGs on a multiplexed connection), and Ed25519
//!   signing and verification of a 200-byte message (what an access token costs to mint/check).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use futures::StreamExt as _;
use portcullis::config::Argon2Settings;
use portcullis::crypto::PasswordHasher;
use portcullis::domain::Password;
use portcullis::metrics::Metrics;

use crate::util::{Context, Result, median, progress};
use crate::wrk;

pub const SAMPLES: usize = 20;
pub const PASSWORD: &str = "Correct-Horse-42";

/// What the project's hasher showed: `H`, a PHC string it made (for the cross-check with the C
/// reference), and its throughput with every slot busy.
pub struct HasherTimes {
    pub h: Duration,
    pub phc: String,
    /// Verifications per second with `cores` slots and twice as many checks always waiting: what
    /// the machine's cores really give when they all hash at once (memory bandwidth and SMT
    /// siblings shared), next to `B = cores / H`, which assumes they scale perfectly.
    pub parallel_rate: f64,
}

/// `H`: the median time of one `PasswordHasher::verify` of the right password, one at a time;
/// then the same hasher's throughput with all `cores` slots busy.
pub fn hasher(settings: Argon2Settings, cores: usize) -> Result<HasherTimes> {
    // The suite's runtime must not be blocked from inside: a thread and runtimes of its own.
    let measure = std::thread::spawn(move || -> Result<HasherTimes> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("runtime")?;
        let (h, phc) = runtime.block_on(async move {
            let metrics = Arc::new(Metrics::new().context("metrics")?);
            let hasher = PasswordHasher::new(settings, 1, metrics).context("PasswordHasher")?;
            let hash = hasher.hash(Password::new(PASSWORD)).await.context("hash")?;
            let mut samples = Vec::with_capacity(SAMPLES);
            for round in 0..=SAMPLES {
                let start = Instant::now();
                let verified = hasher
                    .verify(Password::new(PASSWORD), Some(hash.clone()))
                    .await
                    .context("verify")?;
                let elapsed = start.elapsed();
                if !verified.matches {
                    return Err::<_, crate::util::Error>(
                        "the hasher did not match its own hash".into(),
                    );
                }
                // The first round warms up (page faults of the first 19 MiB block).
                if round > 0 {
                    samples.push(elapsed);
                }
            }
            Ok((median(&samples), hash))
        })?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()
            .context("runtime")?;
        let stored = phc.clone();
        let parallel_rate = runtime.block_on(async move {
            let metrics = Arc::new(Metrics::new().context("metrics")?);
            let hasher =
                Arc::new(PasswordHasher::new(settings, cores, metrics).context("PasswordHasher")?);
            let rounds = 10 * cores;
            let start = Instant::now();
            let results: Vec<bool> = futures::stream::iter(0..rounds)
                .map(|_| {
                    let (hasher, phc) = (hasher.clone(), stored.clone());
                    async move {
                        hasher
                            .verify(Password::new(PASSWORD), Some(phc))
                            .await
                            .is_ok_and(|v| v.matches)
                    }
                })
                .buffer_unordered(2 * cores)
                .collect()
                .await;
            if results.iter().any(|ok| !ok) {
                return Err::<_, crate::util::Error>("a concurrent verification failed".into());
            }
            Ok(rounds as f64 / start.elapsed().as_secs_f64())
        })?;
        Ok(HasherTimes { h, phc, parallel_rate })
    });
    measure.join().map_err(|_| "the hasher calibration thread panicked")?
}

/// What the C reference showed: `H_ref`, its library, and whether it agrees with the project's
/// hash (`None` when it could not tell).
pub struct Reference {
    pub h_ref: Duration,
    pub library: String,
    pub phc_agrees: Option<bool>,
}

/// `H_ref`: the C reference implementation's time for the same parameters; it also verifies
/// `phc`, a hash of `PASSWORD` made by the project's hasher.
pub async fn reference_hash(settings: Argon2Settings, phc: &str) -> Result<Reference> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/suite/argon2_ref.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(settings.memory_kib.to_string())
        .arg(settings.iterations.to_string())
        .arg(settings.parallelism.to_string())
        .arg(SAMPLES.to_string())
        .arg(phc)
        .arg(PASSWORD)
        .kill_on_drop(true)
        .output()
        .await
        .context("run python3 (is it installed?)")?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("argon2_ref.py output")?;
    let median = v["median_s"].as_f64().context("argon2_ref.py: no median_s")?;
    let library = format!(
        "{} (Python {})",
        v["library"].as_str().unwrap_or("argon2-cffi"),
        v["python"].as_str().unwrap_or("?")
    );
    let phc_agrees = match (v["phc_verified"].as_bool(), v["phc_rejects_wrong"].as_bool()) {
        (Some(verified), Some(rejects)) => Some(verified && rejects),
        _ => None,
    };
    Ok(Reference { h_ref: Duration::from_secs_f64(median), library, phc_agrees })
}

/// `R0`: wrk against a hello-world axum handler on a runtime of `cores` workers of its own.
pub async fn hello_world(cores: usize, duration: Duration) -> Result<wrk::Outcome> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind")?;
    listener.set_nonblocking(true).context("nonblocking")?;
    let address = listener.local_addr().context("address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()
            .context("runtime")?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).context("listener")?;
            let app =
                axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .context("serve")
        })
    });
    let spec = wrk::Spec {
        script: wrk::HELLO,
        threads: cores,
        connections: 32,
        duration,
        url: format!("http://{address}/"),
        args: vec![],
        data: vec![],
    };
    let outcome = wrk::run(spec).await;
    let _ = stop.send(());
    match server.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => progress(format!("R0 server: {e}")),
        Err(_) => progress("R0 server thread panicked"),
    }
    outcome
}

/// The median of 2000 sequential PINGs on one multiplexed connection.
pub async fn redis_round_trip(url: &str) -> Result<Duration> {
    let client = redis::Client::open(url).context("Redis URL")?;
    let connect = client.get_multiplexed_async_connection();
    let mut connection = tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .context(format!("connect to {url}: timed out"))?
        .context(format!("connect to {url}"))?;
    let mut samples = Vec::with_capacity(2000);
    for round in 0..2100 {
        let start = Instant::now();
        let pong: String = redis::cmd("PING").query_async(&mut connection).await.context("PING")?;
        if round >= 100 {
            samples.push(start.elapsed());
        }
        if pong != "PONG" {
            return Err(format!("PING answered {pong}").into());
        }
    }
    Ok(median(&samples))
}

/// Median Ed25519 sign and verify times of a 200-byte message (1000 of each).
pub fn eddsa() -> Result<(Duration, Duration)> {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let verifying = key.verifying_key();
    let message = [b'x'; 200];
    let (mut signs, mut verifies) = (Vec::new(), Vec::new());
    for _ in 0..1100 {
        let start = Instant::now();
        let signature = std::hint::black_box(key.sign(std::hint::black_box(&message)));
        signs.push(start.elapsed());
        let start = Instant::now();
        let ok = verifying.verify(std::hint::black_box(&message), &signature);
        verifies.push(start.elapsed());
        ok.context("an Ed25519 signature did not verify")?;
    }
    Ok((median(&signs[100..]), median(&verifies[100..])))
}

/// The CPU model (from /proc/cpuinfo) and the kernel release.
pub fn machine() -> (String, String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    (cpu, kernel)
}

/// How many cores' worth of CPU the whole machine was busy over `window`, from /proc/stat. Taken
/// while the suite itself is idle, it is other work (a build, another benchmark) that would take
/// CPU from the server and the load generators and make every number of the run too low.
pub async fn machine_busy(window: Duration, cores: usize) -> Option<f64> {
    let read = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((idle, fields.iter().take(8).sum()))
    };
    let (idle_before, total_before) = read()?;
    tokio::time::sleep(window).await;
    let (idle_after, total_after) = read()?;
    let total = total_after.checked_sub(total_before).filter(|t| *t > 0)? as f64;
    let idle = idle_after.saturating_sub(idle_before) as f64;
    Some((1.0 - idle / total).clamp(0.0, 1.0) * cores as f64)
}
