//! Settings: loaded once at start from an optional TOML file and then the environment (the
//! environment wins), validated, and passed down. There is no global configuration.
//!
//! Every value is checked here; a bad one is an error that names its variable, and nothing falls
//! back silently to a default. Unknown `PORTCULLIS_*` variables and unknown file keys are errors
//! too, so that a typo cannot leave a protection at its default unnoticed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretSlice};

use crate::domain::PasswordPolicy;
pub use crate::domain::Rate;

mod debug;
mod mail;
mod master_key;
mod parse;
mod posture;
mod webauthn;

pub use mail::{EmailVerification, MailSettings};
use parse::{
    format_duration, format_rate, mask_url, nearest, parse_cidrs, parse_non_empty, parse_origins,
    parse_positive_duration, parse_socket_addr, parse_u32,
};
pub use parse::{parse_duration, parse_rate};
pub use posture::{Finding, Posture, Severity, posture};
pub use webauthn::WebauthnSettings;

const PREFIX: &str = "PORTCULLIS_";

/// Every variable of the contract, without the prefix, with its default.
const VARIABLES: &[(&str, Option<&str>)] = &[
    ("BIND", Some("127.0.0.1:8080")),
    ("DATABASE_URL", None),
    ("REDIS_URL", None),
    ("DATA_DIR", Some("./portcullis-data")),
    ("JWT_SECRET", None),
    ("ISSUER", Some("portcullis")),
    ("AUDIENCE", Some("portcullis")),
    ("ACCESS_TOKEN_TTL", Some("15m")),
    ("REFRESH_TOKEN_TTL", Some("14d")),
    ("REFRESH_REUSE_GRACE", Some("0s")),
    ("LOCKOUT_THRESHOLD", Some("5")),
    ("LOCKOUT_WINDOW", Some("15m")),
    ("LOCKOUT_DURATION", Some("15m")),
    ("MAX_SESSIONS_PER_USER", Some("100")),
    ("SESSION_LIFETIME", Some("30d")),
    ("LOCKOUT_MAX_FAILURES", Some("100")),
    ("DEVICE_TOKEN_TTL", Some("180d")),
    ("RATE_LIMIT_IP", Some("30/min")),
    ("RATE_LIMIT_ACCOUNT", Some("10/min")),
    ("RATE_LIMIT_READS", Some("600/min")),
    ("CORS_ORIGINS", Some("")),
    ("TRUSTED_PROXIES", Some("")),
    ("ARGON2_MEMORY_KIB", Some("19456")),
    ("ARGON2_ITERATIONS", Some("2")),
    ("ARGON2_PARALLELISM", Some("1")),
    ("JWT_LEEWAY", Some("0s")),
    ("PASSWORD_POLICY", Some("composition")),
    ("METRICS_BIND", None),
    // Unset: `pretty` when standard error is a terminal, `json` otherwise (see `from_raw`).
    ("LOG_FORMAT", None),
    ("LOG", Some("info")),
    ("REQUEST_TIMEOUT", Some("30s")),
    ("REDIS_PREFIX", Some("portcullis:")),
    ("MAX_CONNECTIONS", Some("10000")),
    ("MAX_CONNECTIONS_PER_IP", Some("256")),
    ("HEADER_TIMEOUT", Some("10s")),
    ("RATE_LIMIT_MAIL", Some("5/h")),
    ("CLIENT_ID", Some("portcullis")),
    ("KEY_PUBLISH_AHEAD", Some("15m")),
    ("KEY_ROTATE_EVERY", None),
    ("REFRESH_COOKIE", Some("off")),
    ("CLIENT_IP_HEADER", Some("x-forwarded-for")),
    ("TLS_CERT", None),
    ("TLS_KEY", None),
    ("MASTER_KEY", None),
    ("MASTER_KEY_FILE", None),
    ("MASTER_KEY_PREVIOUS", None),
    ("SMTP_URL", None),
    ("MAIL_FROM", Some("portcullis <no-reply@localhost>")),
    ("VERIFY_EMAIL_URL", Some("http://localhost:8080/verify-email?token={token}")),
    ("RESET_PASSWORD_URL", Some("http://localhost:8080/reset-password?token={token}")),
    ("EMAIL_VERIFICATION", Some("optional")),
    ("EMAIL_TOKEN_TTL", Some("24h")),
    ("PASSWORD_RESET_TTL", Some("30m")),
    ("MAIL_RETRY_FOR", Some("24h")),
    ("MAIL_RETRY_MAX_DELAY", Some("5s")),
    ("WEBAUTHN_RP_ID", Some("localhost")),
    ("WEBAUTHN_RP_NAME", Some("portcullis")),
    ("WEBAUTHN_ORIGINS", Some("http://localhost:8080")),
];

/// How `config check` shows one setting. Every `Value` reads back as the same setting, so the
/// output, less its comments, is configuration the program accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The value as the parser reads it; empty for unset.
    Value(String),
    /// What cannot be shown as it is (a secret, a URL with its password hidden): printed as a
    /// comment, to be set again by hand.
    Masked(String),
    /// Unset, with what is used instead: an empty value after a comment that says it.
    Default(String),
}

/// A secret as `config check` shows it: its length only.
fn masked(secret: &Option<SecretSlice<u8>>) -> Shown {
    match secret {
        Some(s) => Shown::Masked(format!("<{} bytes, masked>", s.expose_secret().len())),
        None => Shown::Value(String::new()),
    }
}

/// A URL as `config check` shows it: as it is, unless it holds a password.
fn shown_url(url: Option<&str>) -> Shown {
    match url {
        Some(url) if mask_url(url) != url => Shown::Masked(mask_url(url)),
        Some(url) => Shown::Value(url.to_owned()),
        None => Shown::Value(String::new()),
    }
}

/// "is not a known setting", with the nearest known name when there is one within a typo.
fn unknown_setting(name: &str, spelled: impl Fn(&str) -> String) -> String {
    match nearest(name, VARIABLES.iter().map(|(known, _)| *known)) {
        Some(known) => format!("is not a known setting; did you mean {}?", spelled(known)),
        None => "is not a known setting".to_owned(),
    }
}

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    fn new(name: &str, message: impl Into<String>) -> Self {
        Self { variable: format!("{PREFIX}{name}"), message: message.into() }
    }
}

/// Where durable data lives. Its `Debug` masks the password of a URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// The default: `portcullis.db` in the data directory, created with it.
    Embedded(PathBuf),
    /// A `sqlite:` URL given explicitly.
    Sqlite(String),
    Postgres(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The header a trusted proxy names the client in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: the right-most address that is not a trusted proxy.
    XForwardedFor,
    /// `Forwarded` (RFC 7239): its `for=` parameters, read the same way.
    Forwarded,
    /// `X-Real-IP`: one address, set by the proxy.
    XRealIp,
}

impl ClientIpHeader {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The PEM files of native TLS: the certificate chain (leaf first) and its private key. Both are
/// re-read on SIGHUP, so a renewed certificate needs no restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The highest `MAX_SESSIONS_PER_USER`: every walk over a user's sessions is bounded by it.
pub const MAX_SESSIONS_CAP: u32 = 10_000;

/// The highest `MAX_CONNECTIONS`: past a million the kernel's descriptor limit is the real cap.
pub const MAX_CONNECTIONS_CAP: usize = 1_000_000;

/// The whole validated configuration. Its `Debug` masks every secret (see `debug`).
#[derive(Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so deployments can share a Redis (an addition to the contract).
    pub redis_prefix: String,
    pub data_dir: PathBuf,
    pub jwt_secret: Option<SecretSlice<u8>>,
    /// The 32-byte key that seals secrets at rest, from `MASTER_KEY` or `MASTER_KEY_FILE`.
    pub master_key: Option<SecretSlice<u8>>,
    /// Where `master_key` was read from, when it came from a file.
    pub master_key_file: Option<PathBuf>,
    /// The key before a rotation: values sealed under it are read and sealed again.
    pub master_key_previous: Option<SecretSlice<u8>>,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub lockout_threshold: u32,
    pub lockout_window: Duration,
    pub lockout_duration: Duration,
    /// Failures without a success after which the key stays locked until an unlock or a reset.
    pub lockout_max_failures: u32,
    /// A new login past this many live sessions ends the user's oldest one.
    pub max_sessions_per_user: u32,
    /// A session ends this long after its login, however often it is refreshed.
    pub session_lifetime: Duration,
    /// A device token unused this long is forgotten.
    pub device_token_ttl: Duration,
    pub rate_limit_ip: Rate,
    pub rate_limit_account: Rate,
    pub rate_limit_reads: Rate,
    /// Per account: the mail that forgot-password and resend-verification may cause.
    pub rate_limit_mail: Rate,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub argon2: Argon2Settings,
    pub jwt_leeway: Duration,
    pub password_policy: PasswordPolicy,
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `warn,portcullis=debug` (an addition to the contract).
    pub log_filter: String,
    /// Longest a request may take, headers and body included: a connection whose headers are
    /// not complete by then is closed.
    pub request_timeout: Duration,
    /// Connections served at once; past it the listener stops accepting, so more wait in the
    /// kernel's listen queue instead of taking file descriptors.
    pub max_connections: usize,
    /// Connections from one client IP served at once; one more is closed at once.
    pub max_connections_per_ip: usize,
    /// A request's head must arrive within this (and a TLS handshake too).
    pub header_timeout: Duration,
    /// Native TLS; `None` serves plain HTTP (behind a TLS-terminating proxy).
    pub tls: Option<TlsFiles>,
    pub mail: MailSettings,
    pub webauthn: WebauthnSettings,
    /// The `client_id` claim of access tokens (RFC 9068).
    pub client_id: String,
    /// How long a new signing key is published before it signs.
    pub key_publish_ahead: Duration,
    /// Scheduled key rotation; `None`: only `keys rotate` rotates.
    pub key_rotate_every: Option<Duration>,
    /// The refresh token also travels in an `HttpOnly` cookie.
    pub refresh_cookie: bool,
    /// The header read from a trusted proxy.
    pub client_ip_header: ClientIpHeader,
}

impl Settings {
    /// Loads the file (if any), overlays the `PORTCULLIS_*` variables of `env`, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = file {
            raw.extend(read_file(path)?);
        }
        for (key, value) in env {
            let Some(name) = key.strip_prefix(PREFIX) else {
                continue;
            };
            if !VARIABLES.iter().any(|(known, _)| *known == name) {
                let message = unknown_setting(name, |known| format!("{PREFIX}{known}"));
                return Err(ConfigError::new(name, message));
            }
            raw.insert(name.to_owned(), value);
        }
        Self::from_raw(&Raw(raw))
    }

    fn from_raw(raw: &Raw) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(raw.required("DATA_DIR")?);
        let database_url = match raw.optional("DATABASE_URL") {
            None => DatabaseUrl::Embedded(data_dir.join("portcullis.db")),
            Some(url) => parse_database_url(url)?,
        };
        let redis_url = raw.optional("REDIS_URL").map(|url| {
            let valid = ["redis://", "rediss://", "redis+cluster://"];
            if valid.iter().any(|scheme| url.starts_with(scheme)) {
                Ok(url.to_owned())
            } else {
                Err(ConfigError::new(
                    "REDIS_URL",
                    "must start with redis://, rediss:// or redis+cluster://",
                ))
            }
        });
        let jwt_secret = raw.optional("JWT_SECRET").map(|secret| {
            if secret.len() < 32 {
                Err(ConfigError::new("JWT_SECRET", "must be at least 32 bytes"))
            } else {
                Ok(SecretSlice::from(secret.as_bytes().to_vec()))
            }
        });
        let access_token_ttl = raw.parse("ACCESS_TOKEN_TTL", parse_duration)?;
        let refresh_token_ttl = raw.parse("REFRESH_TOKEN_TTL", parse_duration)?;
        if access_token_ttl.is_zero() {
            return Err(ConfigError::new("ACCESS_TOKEN_TTL", "must be longer than 0s"));
        }
        if refresh_token_ttl < access_token_ttl {
            return Err(ConfigError::new(
                "REFRESH_TOKEN_TTL",
                "must be at least as long as PORTCULLIS_ACCESS_TOKEN_TTL",
            ));
        }
        let lockout_threshold = raw.parse("LOCKOUT_THRESHOLD", |v| match v.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("must be a whole number of at least 1".to_owned()),
        })?;
        let argon2 = Argon2Settings {
            memory_kib: raw.parse("ARGON2_MEMORY_KIB", parse_u32)?,
            iterations: raw.parse("ARGON2_ITERATIONS", parse_u32)?,
            parallelism: raw.parse("ARGON2_PARALLELISM", parse_u32)?,
        };
        validate_argon2(argon2)?;
        Ok(Self {
            bind: raw.parse("BIND", parse_socket_addr)?,
            database_url,
            redis_url: redis_url.transpose()?,
            redis_prefix: raw.parse("REDIS_PREFIX", |v| {
                // A brace would make the prefix the hash tag of every key, and put every key
                // of a Redis Cluster in one slot.
                let valid = v.len() <= 64
                    && !v
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}');
                if valid {
                    Ok(v.to_owned())
                } else {
                    Err("must be up to 64 characters, no spaces or braces".to_owned())
                }
            })?,
            data_dir,
            jwt_secret: jwt_secret.transpose()?,
            master_key: master_key::configured(raw)?,
            master_key_file: raw.optional("MASTER_KEY_FILE").map(PathBuf::from),
            master_key_previous: raw
                .optional("MASTER_KEY_PREVIOUS")
                .map(|v| master_key::decode("MASTER_KEY_PREVIOUS", v))
                .transpose()?,
            issuer: raw.parse("ISSUER", parse_non_empty)?,
            audience: raw.parse("AUDIENCE", parse_non_empty)?,
            access_token_ttl,
            refresh_token_ttl,
            refresh_reuse_grace: raw.parse("REFRESH_REUSE_GRACE", parse_duration)?,
            lockout_threshold,
            lockout_window: raw.parse("LOCKOUT_WINDOW", parse_positive_duration)?,
            lockout_duration: raw.parse("LOCKOUT_DURATION", parse_positive_duration)?,
            max_sessions_per_user: raw.parse("MAX_SESSIONS_PER_USER", |v| {
                match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_SESSIONS_CAP).contains(&n) => Ok(n),
                    _ => Err(format!("must be a whole number from 1 to {MAX_SESSIONS_CAP}")),
                }
            })?,
            device_token_ttl: raw.parse("DEVICE_TOKEN_TTL", parse_positive_duration)?,
            session_lifetime: raw.parse("SESSION_LIFETIME", parse_positive_duration)?,
            lockout_max_failures: raw.parse("LOCKOUT_MAX_FAILURES", |v| {
                match v.parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err("must be a whole number of at least 1".to_owned()),
                }
            })?,
            rate_limit_ip: raw.parse("RATE_LIMIT_IP", parse_rate)?,
            rate_limit_account: raw.parse("RATE_LIMIT_ACCOUNT", parse_rate)?,
            rate_limit_reads: raw.parse("RATE_LIMIT_READS", parse_rate)?,
            rate_limit_mail: raw.parse("RATE_LIMIT_MAIL", parse_rate)?,
            cors_origins: raw.parse("CORS_ORIGINS", parse_origins)?,
            trusted_proxies: raw.parse("TRUSTED_PROXIES", parse_cidrs)?,
            argon2,
            jwt_leeway: raw.parse("JWT_LEEWAY", parse_duration)?,
            password_policy: raw.parse("PASSWORD_POLICY", |v| match v {
                "composition" => Ok(PasswordPolicy::Composition),
                "nist" => Ok(PasswordPolicy::Nist),
                _ => Err("must be composition or nist".to_owned()),
            })?,
            metrics_bind: raw
                .optional("METRICS_BIND")
                .map(parse_socket_addr)
                .transpose()
                .map_err(|message| ConfigError::new("METRICS_BIND", message))?,
            // Unset, the format suits where the log goes: a person at a terminal, or a collector.
            log_format: match raw.optional("LOG_FORMAT") {
                None if std::io::IsTerminal::is_terminal(&std::io::stderr()) => LogFormat::Pretty,
                None => LogFormat::Json,
                Some(_) => raw.parse("LOG_FORMAT", |v| match v {
                    "json" => Ok(LogFormat::Json),
                    "pretty" => Ok(LogFormat::Pretty),
                    _ => Err("must be json or pretty".to_owned()),
                })?,
            },
            request_timeout: raw.parse("REQUEST_TIMEOUT", parse_positive_duration)?,
            client_id: raw.parse("CLIENT_ID", parse_non_empty)?,
            key_publish_ahead: raw.parse("KEY_PUBLISH_AHEAD", parse_duration)?,
            key_rotate_every: raw
                .optional("KEY_ROTATE_EVERY")
                .map(|v| {
                    parse_positive_duration(v).map_err(|m| ConfigError::new("KEY_ROTATE_EVERY", m))
                })
                .transpose()?,
            refresh_cookie: raw.parse("REFRESH_COOKIE", |v| match v {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err("must be on or off".to_owned()),
            })?,
            client_ip_header: raw.parse("CLIENT_IP_HEADER", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "x-forwarded-for" => Ok(ClientIpHeader::XForwardedFor),
                    "forwarded" => Ok(ClientIpHeader::Forwarded),
                    "x-real-ip" => Ok(ClientIpHeader::XRealIp),
                    _ => Err("must be x-forwarded-for, forwarded or x-real-ip".to_owned()),
                }
            })?,
            max_connections: raw.parse("MAX_CONNECTIONS", |v| match v.parse::<usize>() {
                Ok(n) if (1..=MAX_CONNECTIONS_CAP).contains(&n) => Ok(n),
                _ => Err(format!("must be a whole number from 1 to {MAX_CONNECTIONS_CAP}")),
            })?,
            max_connections_per_ip: raw.parse("MAX_CONNECTIONS_PER_IP", |v| {
                match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_CONNECTIONS_CAP).contains(&n) => Ok(n),
                    _ => Err(format!("must be a whole number from 1 to {MAX_CONNECTIONS_CAP}")),
                }
            })?,
            header_timeout: raw.parse("HEADER_TIMEOUT", parse_positive_duration)?,
            tls: tls_files(raw)?,
            mail: mail::from_raw(raw)?,
            webauthn: webauthn::from_raw(raw)?,
            log_filter: raw.parse("LOG", |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| format!("is not a log filter: {e}"))
            })?,
        })
    }

    /// The settings as `config check` prints them: every variable, in the forms the parsers
    /// read back (`30/min`, `15m`), secrets masked.
    pub fn describe(&self) -> BTreeMap<String, Shown> {
        let rate = format_rate;
        let secs = format_duration;
        let join = |items: Vec<String>| items.join(",");
        let shown = [
            (
                "DATABASE_URL",
                match &self.database_url {
                    DatabaseUrl::Embedded(path) => {
                        Shown::Default(format!("the embedded SQLite file {}", path.display()))
                    }
                    DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => shown_url(Some(url)),
                },
            ),
            ("REDIS_URL", shown_url(self.redis_url.as_deref())),
            ("JWT_SECRET", masked(&self.jwt_secret)),
            // A key read from `MASTER_KEY_FILE` is set by that variable, not this one.
            (
                "MASTER_KEY",
                if self.master_key_file.is_some() {
                    Shown::Value(String::new())
                } else {
                    masked(&self.master_key)
                },
            ),
            ("MASTER_KEY_PREVIOUS", masked(&self.master_key_previous)),
        ];
        let entries = [
            ("BIND", self.bind.to_string()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            (
                "MASTER_KEY_FILE",
                self.master_key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            ),
            ("ISSUER", self.issuer.clone()),
            ("AUDIENCE", self.audience.clone()),
            ("ACCESS_TOKEN_TTL", secs(self.access_token_ttl)),
            ("REFRESH_TOKEN_TTL", secs(self.refresh_token_ttl)),
            ("REFRESH_REUSE_GRACE", secs(self.refresh_reuse_grace)),
            ("LOCKOUT_THRESHOLD", self.lockout_threshold.to_string()),
            ("LOCKOUT_WINDOW", secs(self.lockout_window)),
            ("LOCKOUT_DURATION", secs(self.lockout_duration)),
            ("MAX_SESSIONS_PER_USER", self.max_sessions_per_user.to_string()),
            ("DEVICE_TOKEN_TTL", secs(self.device_token_ttl)),
            ("SESSION_LIFETIME", secs(self.session_lifetime)),
            ("LOCKOUT_MAX_FAILURES", self.lockout_max_failures.to_string()),
            ("RATE_LIMIT_IP", rate(self.rate_limit_ip)),
            ("RATE_LIMIT_ACCOUNT", rate(self.rate_limit_account)),
            ("RATE_LIMIT_READS", rate(self.rate_limit_reads)),
            ("RATE_LIMIT_MAIL", rate(self.rate_limit_mail)),
            ("CORS_ORIGINS", self.cors_origins.join(",")),
            ("TRUSTED_PROXIES", join(self.trusted_proxies.iter().map(|n| n.to_string()).collect())),
            ("ARGON2_MEMORY_KIB", self.argon2.memory_kib.to_string()),
            ("ARGON2_ITERATIONS", self.argon2.iterations.to_string()),
            ("ARGON2_PARALLELISM", self.argon2.parallelism.to_string()),
            ("JWT_LEEWAY", secs(self.jwt_leeway)),
            (
                "PASSWORD_POLICY",
                match self.password_policy {
                    PasswordPolicy::Composition => "composition".to_owned(),
                    PasswordPolicy::Nist => "nist".to_owned(),
                },
            ),
            ("METRICS_BIND", self.metrics_bind.map(|a| a.to_string()).unwrap_or_default()),
            (
                "LOG_FORMAT",
                match self.log_format {
                    LogFormat::Json => "json".to_owned(),
                    LogFormat::Pretty => "pretty".to_owned(),
                },
            ),
            ("LOG", self.log_filter.clone()),
            ("REQUEST_TIMEOUT", secs(self.request_timeout)),
            ("REDIS_PREFIX", self.redis_prefix.clone()),
            ("MAX_CONNECTIONS", self.max_connections.to_string()),
            ("MAX_CONNECTIONS_PER_IP", self.max_connections_per_ip.to_string()),
            ("HEADER_TIMEOUT", secs(self.header_timeout)),
            ("CLIENT_ID", self.client_id.clone()),
            ("KEY_PUBLISH_AHEAD", secs(self.key_publish_ahead)),
            ("KEY_ROTATE_EVERY", self.key_rotate_every.map(secs).unwrap_or_default()),
            ("REFRESH_COOKIE", if self.refresh_cookie { "on" } else { "off" }.to_owned()),
            ("CLIENT_IP_HEADER", self.client_ip_header.as_str().to_owned()),
            (
                "TLS_CERT",
                self.tls.as_ref().map(|t| t.cert.display().to_string()).unwrap_or_default(),
            ),
            ("TLS_KEY", self.tls.as_ref().map(|t| t.key.display().to_string()).unwrap_or_default()),
        ];
        entries
            .into_iter()
            .map(|(k, v)| (k, Shown::Value(v)))
            .chain(shown)
            .chain(self.mail.describe())
            .chain(self.webauthn.describe().into_iter().map(|(k, v)| (k, Shown::Value(v))))
            .map(|(k, v)| (format!("{PREFIX}{k}"), v))
            .collect()
    }
}

/// Raw values by variable name (without the prefix).
struct Raw(BTreeMap<String, String>);

impl Raw {
    fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.0
            .get(name)
            .map(String::as_str)
            .or_else(|| VARIABLES.iter().find(|(n, _)| *n == name).and_then(|(_, d)| *d))
            .ok_or_else(|| ConfigError::new(name, "is required"))
    }

    fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.required(name)?;
        parse(value.trim())
            .map_err(|message| ConfigError::new(name, format!("{message} (got {value:?})")))
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_error =
        |message: String| ConfigError { variable: format!("--config {}", path.display()), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        let name = key.to_uppercase();
        if !VARIABLES.iter().any(|(known, _)| *known == name) {
            let message = unknown_setting(&name, str::to_lowercase);
            return Err(file_error(format!("{key} {message}")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or(()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|()| file_error(format!("{key} must be a list of strings")))?
                .join(","),
            _ => return Err(file_error(format!("{key} must be a string or a number"))),
        };
        raw.insert(name, text);
    }
    Ok(raw)
}

fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseUrl::Sqlite(url.to_owned()))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseUrl::Postgres(url.to_owned()))
    } else {
        Err(ConfigError::new("DATABASE_URL", "must start with sqlite: or postgres://"))
    }
}

/// `TLS_CERT` and `TLS_KEY` come together, and both files must be readable now, so that a typo
/// stops the start instead of the first handshake. Their contents are checked when the server
/// loads them.
fn tls_files(raw: &Raw) -> Result<Option<TlsFiles>, ConfigError> {
    let readable = |name: &str, path: &str| match std::fs::File::open(path) {
        Ok(_) => Ok(PathBuf::from(path)),
        Err(error) => Err(ConfigError::new(name, format!("cannot read {path:?}: {error}"))),
    };
    match (raw.optional("TLS_CERT"), raw.optional("TLS_KEY")) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            Ok(Some(TlsFiles { cert: readable("TLS_CERT", cert)?, key: readable("TLS_KEY", key)? }))
        }
        (Some(_), None) => Err(ConfigError::new("TLS_KEY", "must be set with PORTCULLIS_TLS_CERT")),
        (None, Some(_)) => Err(ConfigError::new("TLS_CERT", "must be set with PORTCULLIS_TLS_KEY")),
    }
}

fn validate_argon2(a: Argon2Settings) -> Result<(), ConfigError> {
    if !(1..=16).contains(&a.parallelism) {
        return Err(ConfigError::new("ARGON2_PARALLELISM", "must be between 1 and 16"));
    }
    if !(1..=100).contains(&a.iterations) {
        return Err(ConfigError::new("ARGON2_ITERATIONS", "must be between 1 and 100"));
    }
    // Argon2 needs 8 KiB per lane; 4 GiB per hash is past any sane setting.
    if a.memory_kib < 8 * a.parallelism || a.memory_kib > 4 * 1024 * 1024 {
        return Err(ConfigError::new(
            "ARGON2_MEMORY_KIB",
            "must be between 8 x PORTCULLIS_ARGON2_PARALLELISM and 4194304",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
