//! Loading and validating settings.
use std::time::Duration;

use super::parse::{format_duration, mask_url};
use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(None, pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn defaults_match_the_contract() -> Result<(), ConfigError> {
    let s = load(&[])?;
    assert_eq!(s.http.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(s.tokens.access_ttl, Duration::from_secs(900));
    assert_eq!(s.tokens.refresh_ttl, Duration::from_secs(14 * 86_400));
    assert_eq!(s.limits.ip, Rate { count: 30, period: Duration::from_secs(60) });
    assert_eq!(s.lockout.threshold, 5);
    assert_eq!(s.argon2, Argon2Settings { memory_kib: 19_456, iterations: 2, parallelism: 1 });
    assert!(matches!(s.storage.database_url, DatabaseUrl::Embedded(_)));
    Ok(())
}

#[test]
fn errors_name_the_variable() {
    let cases = [
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "zero"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "0"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL", "15 fortnights"),
        ("PORTCULLIS_RATE_LIMIT_IP", "30/fortnight"),
        ("PORTCULLIS_JWT_SECRET", "short"),
        ("PORTCULLIS_BIND", "localhost"),
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("PORTCULLIS_CORS_ORIGINS", "app.example.com"),
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "4"),
        ("PORTCULLIS_PASSWORD_POLICY", "lax"),
        ("PORTCULLIS_LOCKOUT_TRESHOLD", "5"),
        ("PORTCULLIS_MAX_CONNECTIONS", "0"),
        ("PORTCULLIS_MAX_CONNECTIONS", "many"),
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
    assert!(parse_duration("3651d").is_err());
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(2 * 86_400)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1_500)));
    for written in ["0s", "90s", "1h 30m", "14d", "1500ms", "250us"] {
        let duration = parse_duration(written).unwrap_or_default();
        let shown = format_duration(duration);
        assert_eq!(parse_duration(&shown), Ok(duration), "{written} is shown as {shown}");
    }
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
    assert_eq!(s.lockout.threshold, 7);
    assert_eq!(s.tokens.issuer, "from-env");
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

#[test]
fn debug_reveals_no_secret() -> Result<(), ConfigError> {
    let s = load(&[
        ("PORTCULLIS_DATABASE_URL", "postgres://portcullis:db-pass-1234@db.internal:5432/auth"),
        ("PORTCULLIS_REDIS_URL", "rediss://default:hunter2@cache.internal:6380/0"),
        ("PORTCULLIS_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
    ])?;
    let text = format!("{s:?}");
    for secret in ["db-pass-1234", "hunter2", "0123456789abcdef"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // What an operator needs to read stays readable.
    assert!(text.contains("postgres://portcullis:********@db.internal:5432/auth"), "{text}");
    assert!(text.contains("rediss://default:********@cache.internal:6380/0"), "{text}");
    assert!(text.contains("threshold: 5"), "{text}");
    Ok(())
}

#[test]
fn urls_are_masked_whatever_the_password_holds() {
    let cases = [
        ("postgres://u:p@ss/w@rd@db:5432/auth", "postgres://u:********@db:5432/auth"),
        ("redis://:only-a-password@cache:6379", "redis://:********@cache:6379"),
        (
            "postgres://db/auth?user=u&password=in-query",
            "postgres://db/auth?user=u&password=********",
        ),
        ("postgres://u@db/auth", "postgres://u@db/auth"),
        ("sqlite:///var/lib/portcullis.db", "sqlite:///var/lib/portcullis.db"),
    ];
    for (url, masked) in cases {
        assert_eq!(mask_url(url), masked, "{url}");
    }
}

#[test]
fn max_connections_defaults_to_ten_thousand_and_tls_to_off() -> Result<(), ConfigError> {
    let s = load(&[])?;
    assert_eq!(s.http.max_connections, 10_000);
    assert_eq!(s.http.tls(), None);
    Ok(())
}

#[test]
fn tls_needs_both_files_and_they_must_be_readable() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "cert")?;
    std::fs::write(&key, "key")?;
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let only_cert = load(&[("PORTCULLIS_TLS_CERT", &cert)]).err().map(|e| e.variable);
    assert_eq!(only_cert.as_deref(), Some("PORTCULLIS_TLS_KEY"));
    let only_key = load(&[("PORTCULLIS_TLS_KEY", &key)]).err().map(|e| e.variable);
    assert_eq!(only_key.as_deref(), Some("PORTCULLIS_TLS_CERT"));
    let missing = load(&[("PORTCULLIS_TLS_CERT", &cert), ("PORTCULLIS_TLS_KEY", "/nonexistent")])
        .err()
        .map(|e| e.variable);
    assert_eq!(missing.as_deref(), Some("PORTCULLIS_TLS_KEY"));
    let both = load(&[("PORTCULLIS_TLS_CERT", &cert), ("PORTCULLIS_TLS_KEY", &key)])?;
    assert_eq!(both.http.tls().map(|t| t.key.display().to_string()), Some(key));
    Ok(())
}
