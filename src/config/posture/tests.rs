//! Each rule of the posture report, both ways.
use super::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn settings(vars: &[(&str, &str)]) -> Settings {
    let env = vars.iter().map(|(k, v)| (format!("PORTCULLIS_{k}"), (*v).to_owned()));
    Settings::load(None, env).unwrap()
}

fn ids(vars: &[(&str, &str)]) -> Vec<&'static str> {
    posture(&settings(vars)).findings.iter().map(|f| f.id).collect()
}

fn flags(vars: &[(&str, &str)], id: &str) -> bool {
    ids(vars).contains(&id)
}

/// The defaults on loopback deserve one finding: the composition rules NIST forbids.
#[test]
fn the_defaults_on_loopback_flag_only_the_composition_policy() {
    let findings = posture(&settings(&[])).findings;
    assert_eq!(
        findings,
        [Finding {
            id: "password_policy_composition",
            variable: "PORTCULLIS_PASSWORD_POLICY",
            severity: Severity::Low,
            message: findings[0].message.clone(),
        }]
    );
    assert!(ids(&[("PASSWORD_POLICY", "nist")]).is_empty());
}

#[test]
fn a_public_bind_without_tls_or_proxy_is_plain_http_with_public_metrics() {
    let public = [("BIND", "0.0.0.0:8080"), ("PASSWORD_POLICY", "nist")];
    assert_eq!(ids(&public), ["plain_http", "metrics_public"]);
    let finding = &posture(&settings(&public)).findings[0];
    assert_eq!((finding.variable, finding.severity), ("PORTCULLIS_TLS_CERT", Severity::High));
    let proxied = [("BIND", "0.0.0.0:8080"), ("TRUSTED_PROXIES", "10.0.0.0/8")];
    assert!(!flags(&proxied, "plain_http"));
    let separate = [("BIND", "0.0.0.0:8080"), ("METRICS_BIND", "127.0.0.1:9090")];
    assert!(!flags(&separate, "metrics_public"));
    assert!(!flags(&[("BIND", "[::1]:8080")], "plain_http"));
}

#[test]
fn native_tls_on_a_public_bind_is_not_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "").unwrap();
    std::fs::write(&key, "").unwrap();
    let vars = [
        ("BIND", "0.0.0.0:8443"),
        ("TLS_CERT", cert.to_str().unwrap()),
        ("TLS_KEY", key.to_str().unwrap()),
    ];
    assert!(!flags(&vars, "plain_http"));
}

#[test]
fn broad_trusted_proxies_are_flagged() {
    assert!(flags(&[("TRUSTED_PROXIES", "0.0.0.0/0")], "trusted_proxies_broad"));
    assert!(flags(&[("TRUSTED_PROXIES", "::/0")], "trusted_proxies_broad"));
    assert!(!flags(&[("TRUSTED_PROXIES", "10.0.0.0/8,fd00::/16")], "trusted_proxies_broad"));
}

#[test]
fn cors_patterns_and_plain_http_origins_are_flagged() {
    let cors = |origins| ids(&[("CORS_ORIGINS", origins), ("PASSWORD_POLICY", "nist")]);
    assert_eq!(cors("https://*.example.com"), ["cors_wildcard"]);
    assert_eq!(cors("http://null"), ["cors_null_origin"]);
    assert_eq!(cors("http://app.example.com"), ["cors_insecure_origin"]);
    assert!(
        cors("https://app.example.com,http://localhost:3000,http://127.0.0.1,http://[::1]:8")
            .is_empty()
    );
}

#[test]
fn stores_reached_in_clear_are_flagged() {
    let remote = [("REDIS_URL", "redis://cache.internal:6379")];
    assert!(flags(&remote, "redis_plaintext"));
    assert!(!flags(&[("REDIS_URL", "rediss://cache.internal:6379")], "redis_plaintext"));
    assert!(!flags(&[("REDIS_URL", "redis://127.0.0.1:6379")], "redis_plaintext"));
    let smtp = |url| flags(&[("SMTP_URL", url)], "smtp_plaintext");
    assert!(smtp("smtp://relay.internal:25"));
    assert!(!smtp("smtp://127.0.0.1:25") && !smtp("smtps://u:p@relay.internal:465"));
    assert!(!smtp("smtp+starttls://u:p@relay.internal:587"));
    let cluster = |url| flags(&[("REDIS_URL", url)], "redis_plaintext");
    assert!(cluster("redis+cluster://127.0.0.1:7000,cache-2.internal:7001"));
    assert!(cluster("redis+cluster://user:pw@cache-1.internal:7000"));
    assert!(!cluster("redis+cluster://127.0.0.1:7000,[::1]:7001,localhost:7002"));
    let db =
        |url| ids(&[("DATABASE_URL", url), ("MASTER_KEY", KEY)]).contains(&"database_tls_optional");
    assert!(db("postgres://u:p@db.internal/portcullis"));
    assert!(db("postgres://u:p@db.internal/portcullis?sslmode=prefer"));
    assert!(!db("postgres://u:p@db.internal/portcullis?sslmode=verify-full"));
    assert!(!db("postgres://u:p@localhost:5432/portcullis"));
}

#[test]
fn postgres_without_a_master_key_stores_secrets_in_clear() {
    let url = "postgres://u@localhost/portcullis";
    let findings = posture(&settings(&[("DATABASE_URL", url)])).findings;
    assert_eq!((findings[0].id, findings[0].severity), ("master_key_missing", Severity::High));
    assert!(!flags(&[("DATABASE_URL", url), ("MASTER_KEY", KEY)], "master_key_missing"));
    assert!(!flags(&[], "master_key_missing"), "the embedded default generates one");
}

#[test]
fn a_master_key_file_inside_the_data_directory_is_flagged_off_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (inside, outside) = (data.join("key"), dir.path().join("key"));
    std::fs::write(&inside, KEY).unwrap();
    std::fs::write(&outside, KEY).unwrap();
    let check = |database: Option<&str>, file: Option<&PathBuf>| {
        let mut vars = vec![("DATA_DIR", data.to_str().unwrap())];
        vars.extend(database.map(|url| ("DATABASE_URL", url)));
        vars.extend(file.map(|f| ("MASTER_KEY_FILE", f.to_str().unwrap())));
        ids(&vars).contains(&"master_key_in_data_dir")
    };
    let postgres = Some("postgres://u@localhost/portcullis");
    assert!(check(postgres, Some(&inside)));
    assert!(!check(postgres, Some(&outside)));
    // An explicit SQLite URL without a key uses the one generated into the data directory.
    assert!(check(Some("sqlite:/var/lib/portcullis.db"), None));
    assert!(!check(None, None), "the embedded default keeps it beside the database");
    assert!(!check(None, Some(&inside)));
    let relative = [
        ("DATA_DIR", "./portcullis-data"),
        ("DATABASE_URL", "sqlite:other.db"),
        ("MASTER_KEY", KEY),
    ];
    assert!(!flags(&relative, "master_key_in_data_dir"), "a key from the environment");
    assert!(
        normalise(Path::new("portcullis-data/../portcullis-data/./master.key"))
            .starts_with(normalise(Path::new("./portcullis-data")))
    );
}

#[test]
fn a_configured_previous_master_key_is_flagged() {
    let vars = [("MASTER_KEY", KEY), ("MASTER_KEY_PREVIOUS", KEY)];
    assert!(flags(&vars, "master_key_previous_set"));
}

#[test]
fn hs256_is_flagged_and_a_secret_under_64_bytes_too() {
    let short = "s".repeat(32);
    assert_eq!(
        ids(&[("JWT_SECRET", &short), ("PASSWORD_POLICY", "nist")]),
        ["jwt_hs256", "jwt_secret_short"]
    );
    let long = "s".repeat(64);
    assert_eq!(ids(&[("JWT_SECRET", &long), ("PASSWORD_POLICY", "nist")]), ["jwt_hs256"]);
}

#[test]
fn long_token_and_session_lifetimes_are_flagged() {
    assert!(flags(&[("ACCESS_TOKEN_TTL", "61m")], "access_token_ttl_long"));
    assert!(!flags(&[("ACCESS_TOKEN_TTL", "1h")], "access_token_ttl_long"));
    assert!(flags(&[("JWT_LEEWAY", "61s")], "jwt_leeway_long"));
    assert!(!flags(&[("JWT_LEEWAY", "60s")], "jwt_leeway_long"));
    assert!(flags(&[("REFRESH_REUSE_GRACE", "2m")], "refresh_reuse_grace_long"));
    assert!(!flags(&[("REFRESH_REUSE_GRACE", "60s")], "refresh_reuse_grace_long"));
    assert!(flags(&[("SESSION_LIFETIME", "91d")], "session_lifetime_long"));
    assert!(!flags(&[("SESSION_LIFETIME", "90d")], "session_lifetime_long"));
}

#[test]
fn argon2_is_checked_against_the_owasp_table() {
    let argon2 = |m: &str, t: &str| {
        ids(&[("ARGON2_MEMORY_KIB", m), ("ARGON2_ITERATIONS", t)]).contains(&"argon2_below_owasp")
    };
    for (m, t) in [("47104", "1"), ("19456", "2"), ("12288", "3"), ("9216", "4"), ("7168", "5")] {
        assert!(!argon2(m, t), "m={m} t={t}");
    }
    for (m, t) in [("47103", "1"), ("19455", "2"), ("19456", "1"), ("7167", "100"), ("1024", "1")] {
        assert!(argon2(m, t), "m={m} t={t}");
    }
}

#[test]
fn lockout_and_budgets_left_nearly_off_are_flagged() {
    assert!(flags(&[("LOCKOUT_THRESHOLD", "21")], "lockout_threshold_high"));
    assert!(!flags(&[("LOCKOUT_THRESHOLD", "20")], "lockout_threshold_high"));
    assert!(flags(&[("LOCKOUT_MAX_FAILURES", "101")], "lockout_max_failures_high"));
    assert!(!flags(&[("LOCKOUT_MAX_FAILURES", "100")], "lockout_max_failures_high"));
    assert!(flags(&[("RATE_LIMIT_IP", "1001/min")], "rate_limit_ip_high"));
    assert!(flags(&[("RATE_LIMIT_IP", "17/s")], "rate_limit_ip_high"));
    assert!(!flags(&[("RATE_LIMIT_IP", "60000/h")], "rate_limit_ip_high"));
    assert!(flags(&[("RATE_LIMIT_ACCOUNT", "101/min")], "rate_limit_account_high"));
    assert!(!flags(&[("RATE_LIMIT_ACCOUNT", "100/min")], "rate_limit_account_high"));
    assert!(flags(&[("RATE_LIMIT_READS", "10001/min")], "rate_limit_reads_high"));
    assert!(!flags(&[("RATE_LIMIT_READS", "10000/min")], "rate_limit_reads_high"));
}

#[test]
fn findings_come_most_severe_first_and_serialise_as_the_endpoint_answers() {
    let posture = posture(&settings(&[
        ("BIND", "0.0.0.0:8080"),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("JWT_SECRET", &"s".repeat(32)),
    ]));
    let severities: Vec<Severity> = posture.findings.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    let json = serde_json::to_value(&posture).unwrap();
    let first = &json["findings"][0];
    assert_eq!(first["id"], "plain_http");
    assert_eq!(first["variable"], "PORTCULLIS_TLS_CERT");
    assert_eq!(first["severity"], "high");
    assert!(first["message"].as_str().unwrap().contains("TLS_CERT"));
}
