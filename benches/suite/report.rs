//! The suite's results: one row per goal, the calibration block, and the JSON and markdown files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Context, Result, ms};

/// Whether a goal was met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Met {
    Yes,
    No,
    /// The measurement cannot decide (say why in `measured`).
    NotApplicable,
    /// The scenario failed to run; `measured` holds the error.
    Error,
}

impl Met {
    pub fn from(ok: bool) -> Self {
        if ok { Met::Yes } else { Met::No }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Met::Yes => "yes",
            Met::No => "no",
            Met::NotApplicable => "n/a",
            Met::Error => "error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub id: &'static str,
    pub scenario: String,
    pub backend: String,
    pub measured: String,
    pub reference: String,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: Met,
    /// Everything measured, for the JSON file.
    pub detail: Value,
}

impl Row {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "scenario": self.scenario,
            "backend": self.backend,
            "measured": self.measured,
            "reference": self.reference,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met.as_str(),
            "detail": self.detail,
        })
    }
}

/// What a scenario cost the server: CPU time and hashes per request, from two `Probe`s.
#[derive(Clone, Debug)]
pub struct Diag {
    pub id: &'static str,
    pub backend: String,
    pub what: String,
    pub requests: u64,
    pub wall: Duration,
    pub cpu: Option<Duration>,
    pub hashes: Option<f64>,
    /// CPU of the PostgreSQL and Redis processes.
    pub storage: Duration,
    /// CPU that neither the server, its storage nor the suite (with wrk) used: other work.
    pub other: Option<Duration>,
}

/// Cores' worth of other work during a load past which its numbers are flagged as too low.
pub const OTHER_WORK_LIMIT: f64 = 0.25;

impl Diag {
    /// Cores' worth of other work on the machine during this load.
    pub fn other_cores(&self) -> Option<f64> {
        self.other.map(|o| o.as_secs_f64() / self.wall.as_secs_f64().max(1e-9))
    }

    fn per_request(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let n = self.requests.max(1) as f64;
        let cpu_ms = self.cpu.map(|c| ms(c) / n);
        let load = self.cpu.map(|c| c.as_secs_f64() / self.wall.as_secs_f64().max(1e-9));
        (cpu_ms, load, self.hashes.map(|h| h / n))
    }

    pub fn json(&self) -> Value {
        let (cpu_ms, load, hashes) = self.per_request();
        json!({
            "id": self.id, "backend": self.backend, "what": self.what,
            "requests": self.requests, "wall_s": self.wall.as_secs_f64(),
            "server_cpu_ms_per_request": cpu_ms, "server_cpu_cores": load,
            "hashes_per_request": hashes,
            "storage_cpu_ms_per_request": ms(self.storage) / self.requests.max(1) as f64,
            "other_work_cores": self.other_cores(),
        })
    }
}

pub fn diag_table(diags: &[Diag]) -> String {
    let mut out = String::from(
        "| id | backend | load | requests answered | server CPU per request | server CPU load | \
         hashes per request | PostgreSQL + Redis CPU per request | other work on the machine |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let or_dash = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".to_owned(), f);
    for d in diags {
        let (cpu_ms, load, hashes) = d.per_request();
        let storage = ms(d.storage) / d.requests.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            d.id,
            d.backend,
            cell(&d.what),
            d.requests,
            or_dash(cpu_ms, &|v| format!("{v:.2} ms")),
            or_dash(load, &|v| format!("{v:.2} cores")),
            or_dash(hashes, &|v| format!("{v:.2}")),
            or_dash(Some(storage), &|v| format!("{v:.2} ms")),
            or_dash(d.other_cores(), &|v| {
                let flag = if v > OTHER_WORK_LIMIT { " (too low: numbers depressed)" } else { "" };
                format!("{v:.2} cores{flag}")
            }),
        );
    }
    out
}

/// A warning naming the loads during which other work took more than `OTHER_WORK_LIMIT` cores.
pub fn other_work_note(diags: &[Diag]) -> Option<String> {
    let busy: Vec<String> = diags
        .iter()
        .filter_map(|d| {
            let cores = d.other_cores().filter(|c| *c > OTHER_WORK_LIMIT)?;
            Some(format!("{} {} ({}: {cores:.2} cores)", d.id, d.backend, d.what))
        })
        .collect();
    (!busy.is_empty()).then(|| {
        format!(
            "WARNING: other work on the machine took CPU during {}; those results are too low.",
            busy.join("; ")
        )
    })
}

/// The calibration measured at the start of the run.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub cpu: String,
    pub kernel: String,
    pub cores: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub h: Duration,
    pub h_ref: Option<Duration>,
    pub h_ref_library: String,
    pub r0: f64,
    pub r0_p99: Duration,
    pub redis_rtt: Result<Duration, String>,
    pub sign: Duration,
    pub verify: Duration,
    pub hashing_slots: usize,
    /// The project's hasher, all slots busy: verifications per second.
    pub hasher_parallel: f64,
    /// Whether argon2-cffi verified the project's PHC string (and refused a wrong password).
    pub phc_agrees: Option<bool>,
    /// Cores' worth of CPU the machine was busy with other work just before and after the run.
    pub busy_before: Option<f64>,
    pub busy_after: Option<f64>,
}

impl Calibration {
    /// `B`: logins per second the cores allow at `H` each.
    pub fn b(&self) -> f64 {
        self.cores as f64 / self.h.as_secs_f64()
    }

    /// `B_ref`: the same at the C reference's `H_ref`.
    pub fn b_ref(&self) -> Option<f64> {
        self.h_ref.map(|h| self.cores as f64 / h.as_secs_f64())
    }

    pub fn lines(&self) -> Vec<String> {
        let h_ref = match self.h_ref {
            Some(h) => format!("{:.2} ms ({})", ms(h), self.h_ref_library),
            None => format!("unavailable ({})", self.h_ref_library),
        };
        let b_ref = self.b_ref().map_or("unavailable".to_owned(), |b| format!("{b:.1} logins/s"));
        let redis = match &self.redis_rtt {
            Ok(rtt) => format!("{:.1} µs (median of 2000 PINGs)", rtt.as_secs_f64() * 1e6),
            Err(e) => format!("unavailable ({e})"),
        };
        let busy = |b: Option<f64>| {
            if b.is_none() {
                return "not yet measured".to_owned();
            }
            b.map_or("unknown".to_owned(), |b| {
                let warning =
                    if b > 0.25 { " — OTHER WORK WAS RUNNING: numbers too low" } else { "" };
                format!("{b:.2} of {} cores{warning}", self.cores)
            })
        };
        vec![
            format!("machine: {}, kernel {}", self.cpu, self.kernel),
            format!(
                "machine busy with other work (1 s, suite idle): before the run {}, after it {}",
                busy(self.busy_before),
                busy(self.busy_after)
            ),
            format!(
                "cores: {} (std::thread::available_parallelism); server hashing slots: {}",
                self.cores, self.hashing_slots
            ),
            format!(
                "Argon2id: m={} KiB, t={}, p={} (the server's defaults)",
                self.memory_kib, self.iterations, self.parallelism
            ),
            format!(
                "H: {:.2} ms (PasswordHasher::verify, one at a time, median of 20)",
                ms(self.h)
            ),
            format!("H_ref: {h_ref}"),
            format!("B = cores / H: {:.1} logins/s; B_ref = cores / H_ref: {b_ref}", self.b()),
            format!(
                "the project's hasher with all {} slots busy: {:.1} verifications/s ({:.0} % of B)",
                self.hashing_slots,
                self.hasher_parallel,
                100.0 * self.hasher_parallel / self.b()
            ),
            format!(
                "the project's PHC string checked by argon2-cffi: {}",
                match self.phc_agrees {
                    Some(true) => "verifies, and a wrong password is refused",
                    Some(false) => "DISAGREES (the timings are not comparable)",
                    None => "not checked",
                }
            ),
            format!(
                "R0: {:.0} req/s (axum hello world, {} workers, wrk -t{} -c32; p99 {:.2} ms)",
                self.r0,
                self.cores,
                self.cores,
                ms(self.r0_p99)
            ),
            format!("Redis round trip: {redis}"),
            format!(
                "EdDSA (Ed25519, 200-byte message): sign {:.1} µs, verify {:.1} µs",
                self.sign.as_secs_f64() * 1e6,
                self.verify.as_secs_f64() * 1e6
            ),
        ]
    }

    pub fn json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "kernel": self.kernel,
            "cores": self.cores,
            "machine_busy_before_cores": self.busy_before,
            "machine_busy_after_cores": self.busy_after,
            "hashing_slots": self.hashing_slots,
            "argon2": { "algorithm": "argon2id", "memory_kib": self.memory_kib,
                        "iterations": self.iterations, "parallelism": self.parallelism },
            "h_ms": ms(self.h),
            "h_ref_ms": self.h_ref.map(ms),
            "h_ref_library": self.h_ref_library,
            "b_per_s": self.b(),
            "hasher_parallel_per_s": self.hasher_parallel,
            "phc_agrees_with_reference": self.phc_agrees,
            "b_ref_per_s": self.b_ref(),
            "r0_per_s": self.r0,
            "r0_p99_ms": ms(self.r0_p99),
            "redis_rtt_us": self.redis_rtt.as_ref().ok().map(|d| d.as_secs_f64() * 1e6),
            "eddsa_sign_us": self.sign.as_secs_f64() * 1e6,
            "eddsa_verify_us": self.verify.as_secs_f64() * 1e6,
        })
    }
}

/// A ratio with enough digits that one just under a goal (0.949 for ≥ 0.95) does not print as it.
pub fn ratio_text(ratio: Option<f64>) -> String {
    match ratio {
        None => "–".into(),
        Some(r) if !r.is_finite() => "–".into(),
        Some(r) if r.abs() >= 100.0 => format!("{r:.0}"),
        Some(r) if r.abs() >= 10.0 => format!("{r:.1}"),
        Some(r) if r.abs() >= 0.01 || r == 0.0 => format!("{r:.3}"),
        Some(r) => format!("{r:.5}"),
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| id | scenario | backend | measured | reference | ratio | goal | met |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            cell(&r.scenario),
            r.backend,
            cell(&r.measured),
            cell(&r.reference),
            ratio_text(r.ratio),
            cell(&r.goal),
            r.met.as_str()
        );
    }
    out
}

/// `FILE` as given by `--out`, without a `.json`/`.md` extension: both files are written.
pub fn base_path(out: &Path) -> PathBuf {
    match out.extension().and_then(|e| e.to_str()) {
        Some("json" | "md") => out.with_extension(""),
        _ => out.to_path_buf(),
    }
}

pub fn write(
    out: &Path,
    calibration: &Calibration,
    rows: &[Row],
    diags: &[Diag],
    run: Value,
) -> Result<(PathBuf, PathBuf)> {
    let base = base_path(out);
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context(format!("create {}", parent.display()))?;
    }
    let json_path = base.with_extension("json");
    let md_path = base.with_extension("md");
    let document = json!({
        "run": run,
        "calibration": calibration.json(),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "diagnostics": diags.iter().map(Diag::json).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&document).context("encode the results")?;
    std::fs::write(&json_path, text).context(format!("write {}", json_path.display()))?;
    let mut md = String::from("# portcullis bench suite\n\n");
    let _ = writeln!(md, "Run: {}\n", run);
    for line in calibration.lines() {
        let _ = writeln!(md, "- {line}");
    }
    md.push('\n');
    md.push_str(&table(rows));
    md.push_str("\n## What each load cost the server\n\n");
    md.push_str(&diag_table(diags));
    if let Some(note) = other_work_note(diags) {
        let _ = writeln!(md, "\n{note}");
    }
    std::fs::write(&md_path, md).context(format!("write {}", md_path.display()))?;
    Ok((json_path, md_path))
}
