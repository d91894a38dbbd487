//! Closed-loop load with wrk: `wrk -t T -c C -d D --latency -s SCRIPT URL -- ARGS`.
//!
//! Each script is `common.lua` followed by the scenario's own part, written to a temporary file.
//! Tokens a script needs go through a file named by `$BENCH_DATA`, one a line. The numbers come
//! from the `BENCHJSON` line common.lua's `done()` prints: wrk's request count and duration, its
//! latency histogram's percentiles, its socket errors and every thread's status counts.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Context, Result, tail};

const COMMON: &str = include_str!("common.lua");
pub const HELLO: &str = include_str!("hello.lua");
pub const LOGIN: &str = include_str!("login.lua");
pub const ME: &str = include_str!("me.lua");
pub const REFRESH: &str = include_str!("refresh.lua");
pub const REGISTER: &str = include_str!("register.lua");

pub struct Spec<'a> {
    pub script: &'a str,
    pub threads: usize,
    pub connections: usize,
    pub duration: Duration,
    /// Base URL and path of the static request (scripts with `request()` set their own path).
    pub url: String,
    pub args: Vec<String>,
    pub data: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub duration: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Socket-level errors: connect, read, write, timeout (non-2xx statuses are in `statuses`).
    pub socket_errors: u64,
    pub timeouts: u64,
    pub statuses: BTreeMap<u16, u64>,
}

impl Outcome {
    /// Responses per second, whatever their status.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Responses with this status per second.
    pub fn rate_of(&self, status: u16) -> f64 {
        self.count(|s| s == status) as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    pub fn count(&self, which: impl Fn(u16) -> bool) -> u64 {
        self.statuses.iter().filter(|(s, _)| which(**s)).map(|(_, n)| n).sum()
    }

    /// `{"200": 123, "401": 1}` as text, for reports.
    pub fn statuses_text(&self) -> String {
        let parts: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let mut text = parts.join(" ");
        if self.socket_errors > 0 {
            text.push_str(&format!(" socket-errors×{}", self.socket_errors));
        }
        text
    }

    pub fn json(&self) -> Value {
        serde_json::json!({
            "requests": self.requests,
            "duration_s": self.duration.as_secs_f64(),
            "rate": self.rate(),
            "p50_ms": crate::util::ms(self.p50),
            "p90_ms": crate::util::ms(self.p90),
            "p99_ms": crate::util::ms(self.p99),
            "max_ms": crate::util::ms(self.max),
            "socket_errors": self.socket_errors,
            "timeouts": self.timeouts,
            "statuses": self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        })
    }
}

pub async fn run(spec: Spec<'_>) -> Result<Outcome> {
    let dir = tempfile::tempdir().context("temporary directory for wrk")?;
    let script = dir.path().join("script.lua");
    std::fs::write(&script, format!("{COMMON}\n{}", spec.script)).context("write the script")?;
    let data = dir.path().join("data.txt");
    let mut file = std::fs::File::create(&data).context("write the wrk data")?;
    for line in &spec.data {
        writeln!(file, "{line}").context("write the wrk data")?;
    }
    drop(file);

    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{}", spec.threads))
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.duration.as_secs().max(1)))
        .arg("--latency")
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&script)
        .arg(&spec.url);
    if !spec.args.is_empty() {
        command.arg("--").args(&spec.args);
    }
    command.env("BENCH_DATA", &data).kill_on_drop(true);
    let limit = spec.duration + Duration::from_secs(30);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .context(format!("wrk did not finish within {limit:?}"))?
        .context("run wrk (is it installed? apt-get install -y wrk)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout.lines().find_map(|l| l.strip_prefix("BENCHJSON ")).context(format!(
        "wrk printed no result ({}): {} {}",
        output.status,
        tail(&stdout, 4),
        tail(&stderr, 4)
    ))?;
    parse(line)
}

fn parse(line: &str) -> Result<Outcome> {
    let v: Value = serde_json::from_str(line).context(format!("wrk result {line}"))?;
    let n = |path: &[&str]| -> f64 {
        path.iter().try_fold(&v, |v, k| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0)
    };
    let us = |key: &str| Duration::from_micros(n(&[key]) as u64);
    let errors = ["connect", "read", "write", "timeout"].iter().map(|k| n(&["errors", k]) as u64);
    let statuses = v
        .get("statuses")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_f64()? as u64)))
                .collect::<BTreeMap<u16, u64>>()
        })
        .unwrap_or_default();
    Ok(Outcome {
        requests: n(&["requests"]) as u64,
        duration: us("duration_us"),
        p50: us("p50_us"),
        p90: us("p90_us"),
        p99: us("p99_us"),
        max: us("max_us"),
        socket_errors: errors.sum(),
        timeouts: n(&["errors", "timeout"]) as u64,
        statuses,
    })
}
