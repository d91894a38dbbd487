//! The posture report: settings that are valid but weak, each with what to do about it.
//!
//! `posture` is a pure function of `Settings`: no I/O, no clock, so `config check` and
//! `GET /v1/admin/posture` print the same findings for the same configuration. Findings are
//! advice; none of them stops the service from starting. Each rule cites the guidance it follows.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{Rate, Settings};

mod rules;

/// How much a finding matters: `high` exposes credentials or tokens, `medium` weakens a
/// protection substantially, `low` falls short of current guidance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// One weak setting: a stable `id`, the variable to change, and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// Stable, snake_case: tools may match on it.
    pub id: &'static str,
    /// The variable to change, with its `PORTCULLIS_` prefix.
    pub variable: &'static str,
    pub severity: Severity,
    /// What to do, in one line.
    pub message: String,
}

/// Every finding of one configuration, most severe first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Posture {
    pub findings: Vec<Finding>,
}

/// OWASP Password Storage Cheat Sheet, Argon2id with p=1: each (memory KiB, iterations) pair is
/// an equivalent minimum.
const ARGON2_MINIMUMS: [(u32, u32); 5] =
    [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)];

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// The findings for `settings`.
pub fn posture(settings: &Settings) -> Posture {
    let mut findings: Vec<Finding> = rules::RULES.iter().flat_map(|rule| rule(settings)).collect();
    findings.sort_by_key(|finding| finding.severity);
    Posture { findings }
}

/// One finding when `found`, none otherwise; the message is only written when needed.
fn finding(
    found: bool,
    id: &'static str,
    variable: &'static str,
    severity: Severity,
    message: impl FnOnce() -> String,
) -> Vec<Finding> {
    if found { vec![Finding { id, variable, severity, message: message() }] } else { Vec::new() }
}

fn public(s: &Settings) -> bool {
    !is_loopback(s.http.bind)
}

/// Whether a URL's host is reached over the network (a Unix socket is not).
fn off_loopback(url: &str) -> bool {
    !host_of(url).is_none_or(is_loopback_host)
}

fn is_loopback(address: SocketAddr) -> bool {
    address.ip().is_loopback()
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of a URL like `scheme://user:pass@host:port/path?query`; `None` when it has none
/// (a Unix socket).
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    (!host.is_empty()).then_some(host)
}

/// Whether `rate` allows more than `most` requests a minute.
fn exceeds_per_minute(rate: Rate, most: u64) -> bool {
    u64::from(rate.count) * 60 > most * rate.period.as_secs().max(1)
}

/// A path with `.` dropped and `..` applied, so that `./data/master.key` is seen inside `data`.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A duration as the settings write it: `90s`, `2h`, `120d`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
