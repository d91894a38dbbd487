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
    ("LOG_FORMAT", Some("json")),
    ("LOG", Some("info")),
    ("REQUEST_TIMEOUT", Some("30s")),
    ("REDIS_PREFIX", Some("portcullis:")),
];

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

/// Where durable data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so deployments can share a Redis (an addition to the contract).
    pub redis_prefix: String,
    pub data_dir: PathBuf,
    pub jwt_secret: Option<SecretSlice<u8>>,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub lockout_threshold: u32,
    pub lockout_window: Duration,
    pub lockout_duration: Duration,
    pub rate_limit_ip: Rate,
    pub rate_limit_account: Rate,
    pub rate_limit_reads: Rate,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub argon2: Argon2Settings,
    pub jwt_leeway: Duration,
    pub password_policy: PasswordPolicy,
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `warn,portcullis=debug` (an addition to the contract).
    pub log_filter: String,
    /// Longest a request may take, body included (an addition to the contract).
    pub request_timeout: Duration,
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
                return Err(ConfigError::new(name, "is not a known setting"));
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
                let valid =
                    v.len() <= 64 && !v.chars().any(|c| c.is_whitespace() || c.is_control());
                if valid {
                    Ok(v.to_owned())
                } else {
                    Err("must be up to 64 characters, no spaces".to_owned())
                }
            })?,
            data_dir,
            jwt_secret: jwt_secret.transpose()?,
            issuer: raw.parse("ISSUER", parse_non_empty)?,
            audience: raw.parse("AUDIENCE", parse_non_empty)?,
            access_token_ttl,
            refresh_token_ttl,
            refresh_reuse_grace: raw.parse("REFRESH_REUSE_GRACE", parse_duration)?,
            lockout_threshold,
            lockout_window: raw.parse("LOCKOUT_WINDOW", parse_positive_duration)?,
            lockout_duration: raw.parse("LOCKOUT_DURATION", parse_positive_duration)?,
            rate_limit_ip: raw.parse("RATE_LIMIT_IP", parse_rate)?,
            rate_limit_account: raw.parse("RATE_LIMIT_ACCOUNT", parse_rate)?,
            rate_limit_reads: raw.parse("RATE_LIMIT_READS", parse_rate)?,
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
            log_format: raw.parse("LOG_FORMAT", |v| match v {
                "json" => Ok(LogFormat::Json),
                "pretty" => Ok(LogFormat::Pretty),
                _ => Err("must be json or pretty".to_owned()),
            })?,
            request_timeout: raw.parse("REQUEST_TIMEOUT", parse_positive_duration)?,
            log_filter: raw.parse("LOG", |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| format!("is not a log filter: {e}"))
            })?,
        })
    }

    /// The settings as `config check` prints them: every variable, secrets masked.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let rate = |r: Rate| format!("{}/{}s", r.count, r.period.as_secs());
        let secs = |d: Duration| format!("{}s", d.as_secs());
        let join = |items: Vec<String>| items.join(",");
        let entries = [
            ("BIND", self.bind.to_string()),
            (
                "DATABASE_URL",
                match &self.database_url {
                    DatabaseUrl::Embedded(path) => path.display().to_string(),
                    DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => mask_url(url),
                },
            ),
            ("REDIS_URL", self.redis_url.as_deref().map(mask_url).unwrap_or_default()),
            ("DATA_DIR", self.data_dir.display().to_string()),
            (
                "JWT_SECRET",
                self.jwt_secret
                    .as_ref()
                    .map(|s| format!("<{} bytes, masked>", s.expose_secret().len()))
                    .unwrap_or_default(),
            ),
            ("ISSUER", self.issuer.clone()),
            ("AUDIENCE", self.audience.clone()),
            ("ACCESS_TOKEN_TTL", secs(self.access_token_ttl)),
            ("REFRESH_TOKEN_TTL", secs(self.refresh_token_ttl)),
            ("REFRESH_REUSE_GRACE", secs(self.refresh_reuse_grace)),
            ("LOCKOUT_THRESHOLD", self.lockout_threshold.to_string()),
            ("LOCKOUT_WINDOW", secs(self.lockout_window)),
            ("LOCKOUT_DURATION", secs(self.lockout_duration)),
            ("RATE_LIMIT_IP", rate(self.rate_limit_ip)),
            ("RATE_LIMIT_ACCOUNT", rate(self.rate_limit_account)),
            ("RATE_LIMIT_READS", rate(self.rate_limit_reads)),
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
        ];
        entries.into_iter().map(|(k, v)| (format!("{PREFIX}{k}"), v)).collect()
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
            return Err(file_error(format!("{key} is not a known setting")));
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

/// Durations like `90s`, `15m`, `2h`, `14d`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let error = || "must be a whole number followed by s, m, h or d, like 15m".to_owned();
    let unit_at = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (number, unit) = value.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| error())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(error()),
    };
    // Ten years is far beyond any sensible setting and keeps time arithmetic from overflowing.
    let seconds =
        number.checked_mul(scale).filter(|s| *s <= 10 * 365 * 86_400).ok_or_else(error)?;
    Ok(Duration::from_secs(seconds))
}

fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    match parse_duration(value)? {
        d if d.is_zero() => Err("must be longer than 0s".to_owned()),
        d => Ok(d),
    }
}

/// Rates like `30/min`, `5/s`, `1000/h`.
pub fn parse_rate(value: &str) -> Result<Rate, String> {
    let error = || "must be N/s, N/min or N/h with N at least 1, like 30/min".to_owned();
    let (count, period) = value.split_once('/').ok_or_else(error)?;
    let count: u32 = count.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(error)?;
    let period = match period.trim() {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3_600),
        _ => return Err(error()),
    };
    Ok(Rate { count, period })
}

fn parse_u32(value: &str) -> Result<u32, String> {
    value.parse().map_err(|_| "must be a whole number".to_owned())
}

fn parse_non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() { Err("must not be empty".to_owned()) } else { Ok(value.to_owned()) }
}

fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| "must be an address and port, like 127.0.0.1:8080".to_owned())
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    list(value)
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && origin.is_ascii()
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(format!("{origin:?} is not an origin like https://app.example.com"))
            }
        })
        .collect()
}

fn parse_cidrs(value: &str) -> Result<Vec<IpNet>, String> {
    list(value)
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR like 10.0.0.0/8"))
        })
        .collect()
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

/// Hides the password of a URL like `postgres://user:secret@host/db`.
fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(None, pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_match_the_contract() -> Result<(), ConfigError> {
        let s = load(&[])?;
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.access_token_ttl, Duration::from_secs(900));
        assert_eq!(s.refresh_token_ttl, Duration::from_secs(14 * 86_400));
        assert_eq!(s.rate_limit_ip, Rate { count: 30, period: Duration::from_secs(60) });
        assert_eq!(s.lockout_threshold, 5);
        assert_eq!(s.argon2, Argon2Settings { memory_kib: 19_456, iterations: 2, parallelism: 1 });
        assert!(matches!(s.database_url, DatabaseUrl::Embedded(_)));
        Ok(())
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            ("PORTCULLIS_LOCKOUT_THRESHOLD", "zero"),
            ("PORTCULLIS_LOCKOUT_THRESHOLD", "0"),
            ("PORTCULLIS_ACCESS_TOKEN_TTL", "15 minutes"),
            ("PORTCULLIS_RATE_LIMIT_IP", "30/fortnight"),
            ("PORTCULLIS_JWT_SECRET", "short"),
            ("PORTCULLIS_BIND", "localhost"),
            ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("PORTCULLIS_CORS_ORIGINS", "app.example.com"),
            ("PORTCULLIS_ARGON2_MEMORY_KIB", "4"),
            ("PORTCULLIS_PASSWORD_POLICY", "lax"),
            ("PORTCULLIS_LOCKOUT_TRESHOLD", "5"),
        ];
        for (variable, value) in cases {
            let error = load(&[(variable, value)]).err().map(|e| e.variable);
            assert_eq!(error.as_deref(), Some(variable), "{variable}={value}");
        }
    }

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999d").is_err());
        assert_eq!(parse_rate("5/s"), Ok(Rate { count: 5, period: Duration::from_secs(1) }));
        assert!(parse_rate("0/min").is_err());
    }

    #[test]
    fn the_environment_wins_over_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, "lockout_threshold = 7\nissuer = \"from-file\"\n")?;
        let env = [("PORTCULLIS_ISSUER".to_owned(), "from-env".to_owned())];
        let s = Settings::load(Some(&path), env)?;
        assert_eq!(s.lockout_threshold, 7);
        assert_eq!(s.issuer, "from-env");
        Ok(())
    }

    #[test]
    fn secrets_are_masked_in_the_description() -> Result<(), ConfigError> {
        let s = load(&[
            ("PORTCULLIS_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
            ("PORTCULLIS_REDIS_URL", "redis://default:hunter2@cache:6379"),
        ])?;
        let text = format!("{:?}", s.describe());
        assert!(!text.contains("secret\""));
        assert!(!text.contains("hunter2"));
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        Ok(())
    }
}
