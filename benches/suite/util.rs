//! Small helpers shared by the suite's modules: errors with context, progress lines, statistics.

use std::fmt::Display;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every failure of the suite is a message: what was being done, and why it failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.context("what")` on a `Result` or an `Option`, for error messages that say what failed.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}").into())
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| what.to_string().into())
    }
}

fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Starts the clock of the progress lines.
pub fn start_clock() {
    started();
}

/// A progress line on standard error, stamped with the seconds since the start.
pub fn progress(message: impl Display) {
    eprintln!("[suite {:>6.1}s] {message}", started().elapsed().as_secs_f64());
}

/// The median of some durations (zero when there are none).
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// The `p`-th percentile (nearest rank) of some durations (zero when there are none).
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A free TCP port on 127.0.0.1: bound to port 0, read back, and released again, so that a child
/// process can be told which port to listen on (a child told to bind port 0 could not tell us).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), when the process still exists.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line =
        status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].split_whitespace().next()?.parse().ok()
}

/// The last `n` lines of a text, for error messages that quote a child's output.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
