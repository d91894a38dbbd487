//! The posture report: settings that are valid but weak, each with what to do about it.
//!
//! `posture` is a pure function of `Settings`: no I/O, no clock, so `config check` and
//! `GET /v1/admin/posture` print the same findings for the same configuration. Findings are
//! advice; none of them stops the service from starting. Each rule cites the guidance it follows.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;

use super::{DatabaseUrl, Rate, Settings};
use crate::domain::PasswordPolicy;

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
    let mut findings = Vec::new();
    let mut flag = |id, variable, severity, message: String| {
        findings.push(Finding { id, variable, severity, message });
    };
    let public = !is_loopback(settings.bind);

    // Transport.
    if public && settings.tls.is_none() && settings.trusted_proxies.is_empty() {
        flag(
            "plain_http",
            "PORTCULLIS_TLS_CERT",
            Severity::High,
            format!(
                "{} is not loopback and serves plain HTTP: set TLS_CERT and TLS_KEY, or serve \
                 behind a TLS proxy listed in TRUSTED_PROXIES (passwords and tokens cross the \
                 network in clear)",
                settings.bind
            ),
        );
    }
    if public && settings.metrics_bind.is_none() {
        flag(
            "metrics_public",
            "PORTCULLIS_METRICS_BIND",
            Severity::Medium,
            "/metrics is served on the public listener: set METRICS_BIND to a loopback or \
             internal address"
                .to_owned(),
        );
    }
    if let Some(net) = settings.trusted_proxies.iter().find(|net| match net {
        ipnet::IpNet::V4(v4) => v4.prefix_len() < 8,
        ipnet::IpNet::V6(v6) => v6.prefix_len() < 16,
    }) {
        flag(
            "trusted_proxies_broad",
            "PORTCULLIS_TRUSTED_PROXIES",
            Severity::Medium,
            format!(
                "{net} trusts {} from much of the Internet, so clients can pick the IP their \
                 budgets are counted against: list only your proxies' addresses",
                settings.client_ip_header.as_str()
            ),
        );
    }
    for origin in &settings.cors_origins {
        if origin.contains('*') {
            flag(
                "cors_wildcard",
                "PORTCULLIS_CORS_ORIGINS",
                Severity::Medium,
                format!(
                    "{origin} is not a wildcard here (origins match exactly): list each origin \
                     that needs the API, never a pattern"
                ),
            );
        } else if origin.eq_ignore_ascii_case("null") || host_of(origin) == Some("null") {
            flag(
                "cors_null_origin",
                "PORTCULLIS_CORS_ORIGINS",
                Severity::High,
                format!(
                    "{origin}: sandboxed frames and file: pages of any site send Origin null; \
                     remove it"
                ),
            );
        } else if origin.starts_with("http://") && !host_of(origin).is_some_and(is_loopback_host) {
            flag(
                "cors_insecure_origin",
                "PORTCULLIS_CORS_ORIGINS",
                Severity::Medium,
                format!(
                    "{origin} is plain HTTP: anyone on its network can inject script that reads \
                     tokens; allow its https:// origin instead"
                ),
            );
        }
    }
    transport_to_stores(settings, &mut flag);

    // Secrets at rest.
    master_key(settings, &mut flag);

    // Tokens. RFC 8725 §3.5 and RFC 7518 §3.2: an HMAC key needs the entropy of the hash.
    if let Some(secret) = &settings.jwt_secret {
        flag(
            "jwt_hs256",
            "PORTCULLIS_JWT_SECRET",
            Severity::Low,
            "HS256 shares the signing secret with every verifier, and any of them can mint \
             tokens: unset JWT_SECRET to sign with EdDSA and publish the JWKS"
                .to_owned(),
        );
        let bytes = secret.expose_secret().len();
        if bytes < 64 {
            flag(
                "jwt_secret_short",
                "PORTCULLIS_JWT_SECRET",
                Severity::Low,
                format!(
                    "the secret is {bytes} bytes: use at least 64 random characters (e.g. \
                     `openssl rand -hex 32`), so that text encoding still leaves 256 bits"
                ),
            );
        }
    }
    if settings.access_token_ttl > HOUR {
        flag(
            "access_token_ttl_long",
            "PORTCULLIS_ACCESS_TOKEN_TTL",
            Severity::Medium,
            format!(
                "access tokens live {}: a revoked session's token stays valid at other verifiers \
                 until exp; keep it at 1h or less (15m by default)",
                human(settings.access_token_ttl)
            ),
        );
    }
    if settings.jwt_leeway > MINUTE {
        flag(
            "jwt_leeway_long",
            "PORTCULLIS_JWT_LEEWAY",
            Severity::Low,
            format!(
                "{} of leeway extends every token past its exp: RFC 7519 §4.1.4 allows a small \
                 one for clock skew; keep it at 60s or less",
                human(settings.jwt_leeway)
            ),
        );
    }
    if settings.refresh_reuse_grace > MINUTE {
        flag(
            "refresh_reuse_grace_long",
            "PORTCULLIS_REFRESH_REUSE_GRACE",
            Severity::Medium,
            format!(
                "a rotated refresh token is accepted for {} without revoking the session, so a \
                 stolen one can be replayed (RFC 9700 §4.14.2): keep it at 60s or less",
                human(settings.refresh_reuse_grace)
            ),
        );
    }
    if settings.session_lifetime > 90 * DAY {
        flag(
            "session_lifetime_long",
            "PORTCULLIS_SESSION_LIFETIME",
            Severity::Low,
            format!(
                "a session lasts {} without a new login: NIST SP 800-63B asks reauthentication \
                 at least every 30 days; keep it at 90d or less",
                human(settings.session_lifetime)
            ),
        );
    }

    // Guessing.
    let argon2 = settings.argon2;
    let strong_enough = ARGON2_MINIMUMS.iter().any(|&(memory, iterations)| {
        argon2.memory_kib >= memory && argon2.iterations >= iterations
    });
    if !strong_enough {
        flag(
            "argon2_below_owasp",
            "PORTCULLIS_ARGON2_MEMORY_KIB",
            Severity::Medium,
            format!(
                "Argon2id m={} KiB, t={} is below OWASP's minimum: use m=19456 with t=2 (or \
                 47104/1, 12288/3, 9216/4, 7168/5)",
                argon2.memory_kib, argon2.iterations
            ),
        );
    }
    if settings.password_policy == PasswordPolicy::Composition {
        flag(
            "password_policy_composition",
            "PORTCULLIS_PASSWORD_POLICY",
            Severity::Low,
            "composition rules push users to predictable passwords and NIST SP 800-63B forbids \
             them: set PASSWORD_POLICY=nist (15 characters, blocklist kept)"
                .to_owned(),
        );
    }
    if settings.lockout_threshold > 20 {
        flag(
            "lockout_threshold_high",
            "PORTCULLIS_LOCKOUT_THRESHOLD",
            Severity::Medium,
            format!(
                "{} failures before a lock leaves lockout nearly off: keep it at 20 or less (5 \
                 by default)",
                settings.lockout_threshold
            ),
        );
    }
    if settings.lockout_max_failures > 100 {
        flag(
            "lockout_max_failures_high",
            "PORTCULLIS_LOCKOUT_MAX_FAILURES",
            Severity::Medium,
            format!(
                "{} consecutive failures are allowed in all: NIST SP 800-63B §5.2.2 allows at \
                 most 100",
                settings.lockout_max_failures
            ),
        );
    }
    let budgets = [
        ("rate_limit_ip_high", "PORTCULLIS_RATE_LIMIT_IP", settings.rate_limit_ip, 1_000, "30"),
        (
            "rate_limit_account_high",
            "PORTCULLIS_RATE_LIMIT_ACCOUNT",
            settings.rate_limit_account,
            100,
            "10",
        ),
        (
            "rate_limit_reads_high",
            "PORTCULLIS_RATE_LIMIT_READS",
            settings.rate_limit_reads,
            10_000,
            "600",
        ),
    ];
    for (id, variable, rate, most, default) in budgets {
        if exceeds_per_minute(rate, most) {
            let severity =
                if id == "rate_limit_reads_high" { Severity::Low } else { Severity::Medium };
            flag(
                id,
                variable,
                severity,
                format!(
                    "{} requests per {}s is far above the default ({default}/min): keep it at \
                     {most}/min or less",
                    rate.count,
                    rate.period.as_secs()
                ),
            );
        }
    }

    findings.sort_by_key(|finding| finding.severity);
    Posture { findings }
}

type Flag<'a> = dyn FnMut(&'static str, &'static str, Severity, String) + 'a;

/// Redis and PostgreSQL reached over the network in clear: sessions, refresh-token hashes and
/// password hashes travel unencrypted, and libpq's default `sslmode=prefer` does not stop a
/// machine in the middle (PostgreSQL manual, "SSL Support").
fn transport_to_stores(settings: &Settings, flag: &mut Flag<'_>) {
    if let Some(url) = &settings.redis_url
        && url.starts_with("redis://")
        && !host_of(url).is_none_or(is_loopback_host)
    {
        flag(
            "redis_plaintext",
            "PORTCULLIS_REDIS_URL",
            Severity::Medium,
            "Redis is reached over the network without TLS: use a rediss:// URL".to_owned(),
        );
    }
    if let Some(seeds) =
        settings.redis_url.as_deref().and_then(|u| u.strip_prefix("redis+cluster://"))
        && seeds.split(',').any(|seed| !host_of(seed).is_none_or(is_loopback_host))
    {
        flag(
            "redis_plaintext",
            "PORTCULLIS_REDIS_URL",
            Severity::Medium,
            "the Redis Cluster is reached over the network without TLS: keep its nodes on a \
             private network"
                .to_owned(),
        );
    }
    if let Some(url) = &settings.mail.smtp_url
        && url.starts_with("smtp://")
        && !host_of(url).is_none_or(is_loopback_host)
    {
        flag(
            "smtp_plaintext",
            "PORTCULLIS_SMTP_URL",
            Severity::Medium,
            "mail (reset links among it) leaves in clear over the network: use smtps:// or \
             smtp+starttls://"
                .to_owned(),
        );
    }
    if let DatabaseUrl::Postgres(url) = &settings.database_url
        && !host_of(url).is_none_or(is_loopback_host)
        && !["sslmode=require", "sslmode=verify-ca", "sslmode=verify-full"]
            .iter()
            .any(|mode| url.contains(mode))
    {
        flag(
            "database_tls_optional",
            "PORTCULLIS_DATABASE_URL",
            Severity::Medium,
            "PostgreSQL is reached over the network without required TLS: add \
             sslmode=verify-full to DATABASE_URL"
                .to_owned(),
        );
    }
}

/// The master key: missing on PostgreSQL (secrets in clear), or kept in the data directory.
fn master_key(settings: &Settings, flag: &mut Flag<'_>) {
    let configured = settings.master_key.is_some();
    if !configured && matches!(settings.database_url, DatabaseUrl::Postgres(_)) {
        flag(
            "master_key_missing",
            "PORTCULLIS_MASTER_KEY",
            Severity::High,
            "signing keys and server secrets are stored in clear in PostgreSQL, so a database \
             backup can mint tokens: set MASTER_KEY or MASTER_KEY_FILE"
                .to_owned(),
        );
    }
    // Where the key is read from (see `startup::files::sealer`): the configured file, or the one
    // generated into the data directory for SQLite without a configured key.
    let file = match (&settings.master_key_file, &settings.database_url) {
        (Some(file), _) => Some(file.clone()),
        (None, DatabaseUrl::Embedded(_) | DatabaseUrl::Sqlite(_)) if !configured => {
            Some(settings.data_dir.join("master.key"))
        }
        _ => None,
    };
    let embedded_default = matches!(settings.database_url, DatabaseUrl::Embedded(_));
    // On the embedded default the generated key beside the database is the documented
    // arrangement; with a database of its own the key should live apart from the service's data.
    if let Some(file) = file
        && !embedded_default
        && normalise(&file).starts_with(normalise(&settings.data_dir))
    {
        flag(
            "master_key_in_data_dir",
            "PORTCULLIS_MASTER_KEY_FILE",
            Severity::Medium,
            format!(
                "the master key {} is inside DATA_DIR, so a backup of the directory holds the \
                 key with the data: keep MASTER_KEY_FILE outside it (a secrets mount)",
                file.display()
            ),
        );
    }
    if settings.master_key_previous.is_some() {
        flag(
            "master_key_previous_set",
            "PORTCULLIS_MASTER_KEY_PREVIOUS",
            Severity::Low,
            "the previous master key still opens old copies of the secrets: unset \
             MASTER_KEY_PREVIOUS once every instance has started with the new key"
                .to_owned(),
        );
    }
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
