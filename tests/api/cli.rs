//! The command line: configuration errors, `config check`, `migrate`, `user create`,
//! `keys rotate`, each against the same data directory as a running server.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{TestResult, spawn};
use reqwest::StatusCode;
use serde_json::Value;

fn portcullis(data_dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    run(&[("PORTCULLIS_DATA_DIR".to_owned(), data_dir.display().to_string())], args, env, stdin)
}

/// Runs the binary against a running test app's storage, off the runtime that serves the app,
/// so the server keeps answering while the command runs.
async fn portcullis_on(app: &common::TestApp, args: &[&str], stdin: &str) -> Output {
    let storage = app.storage.env();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&storage, &args, &[], &stdin)
    })
    .await
    .unwrap()
}

fn run(storage: &[(String, String)], args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(args)
        .env_clear()
        .envs(storage.iter().cloned())
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_setting_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "many"),
        ("PORTCULLIS_JWT_SECRET", "too-short"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL", "15 fortnights"),
        ("PORTCULLIS_RATE_LIMIT_IP", "30/fortnight"),
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/40"),
    ] {
        let output = portcullis(dir.path(), &["serve"], &[(variable, value)], "");
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(variable), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = portcullis(dir.path(), &["frobnicate"], &[], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn config_check_prints_the_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-very-secret-value-of-at-least-32-bytes";
    let output =
        portcullis(dir.path(), &["config", "check"], &[("PORTCULLIS_JWT_SECRET", secret)], "");
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("PORTCULLIS_LOCKOUT_THRESHOLD=5"), "{stdout}");
    assert!(stdout.contains("PORTCULLIS_JWT_SECRET=<40 bytes, masked>"), "{stdout}");
    assert!(!stdout.contains(secret));
}

#[test]
fn config_check_flags_weak_settings_and_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let weak = [
        ("PORTCULLIS_BIND", "0.0.0.0:8080"),
        ("PORTCULLIS_JWT_SECRET", "a-very-secret-value-of-at-least-32-bytes"),
        ("PORTCULLIS_CORS_ORIGINS", "http://app.example.com"),
        ("PORTCULLIS_DATABASE_URL", "postgres://portcullis@localhost/portcullis"),
    ];
    let output = portcullis(dir.path(), &["config", "check"], &weak, "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("PORTCULLIS_LOCKOUT_THRESHOLD=5"), "the settings come first");
    let posture: Vec<&str> = stdout.lines().filter(|l| l.starts_with("# posture: ")).collect();
    for (severity, variable, id) in [
        ("high", "PORTCULLIS_TLS_CERT", "plain_http"),
        ("high", "PORTCULLIS_MASTER_KEY", "master_key_missing"),
        ("medium", "PORTCULLIS_METRICS_BIND", "metrics_public"),
        ("medium", "PORTCULLIS_CORS_ORIGINS", "cors_insecure_origin"),
        ("medium", "PORTCULLIS_ARGON2_MEMORY_KIB", "argon2_below_owasp"),
        ("low", "PORTCULLIS_JWT_SECRET", "jwt_hs256"),
        ("low", "PORTCULLIS_JWT_SECRET", "jwt_secret_short"),
        ("low", "PORTCULLIS_PASSWORD_POLICY", "password_policy_composition"),
    ] {
        let prefix = format!("# posture: {severity} {variable}: ");
        let suffix = format!(" [{id}]");
        assert!(
            posture.iter().any(|l| l.starts_with(&prefix) && l.ends_with(&suffix)),
            "{id} missing:\n{stdout}"
        );
    }
    assert_eq!(posture.len(), 8, "{stdout}");
    assert!(!stdout.contains("a-very-secret-value"));
    assert!(stdout.trim_end().ends_with("configuration is valid"), "{stdout}");
}

#[test]
fn a_config_file_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, "lockout_threshold = 9\nissuer = \"file\"\n").unwrap();
    let file = file.to_str().unwrap();
    let output = portcullis(
        dir.path(),
        &["--config", file, "config", "check"],
        &[("PORTCULLIS_ISSUER", "env")],
        "",
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("PORTCULLIS_LOCKOUT_THRESHOLD=9"), "{stdout}");
    assert!(stdout.contains("PORTCULLIS_ISSUER=env"), "{stdout}");
    std::fs::write(dir.path().join("bad.toml"), "lockout_treshold = 9\n").unwrap();
    let bad = dir.path().join("bad.toml");
    let output =
        portcullis(dir.path(), &["--config", bad.to_str().unwrap(), "config", "check"], &[], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn migrate_creates_the_data_directory_and_the_database() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data dir #1?");
    let dir = dir.as_path();
    let output = portcullis(dir, &["migrate"], &[], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(dir.join("portcullis.db").exists());
    let again = portcullis(dir, &["migrate"], &[], "");
    assert_eq!(again.status.code(), Some(0), "migrations are idempotent");
}

/// Whether the storage's database holds the schema: `users` is one of its tables.
async fn has_schema(storage: &common::Storage) -> bool {
    let embedded = storage.data_dir.join("portcullis.db");
    if storage.database_url.is_none() && !embedded.exists() {
        return false;
    }
    let db = storage.db().await;
    let found = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&db).await.is_ok();
    db.close().await;
    found
}

#[tokio::test]
async fn read_only_commands_leave_a_fresh_database_unmigrated() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let on_storage = |args: &[&str]| run(&storage.env(), args, &[], "");
    let config = on_storage(&["config", "check"]);
    assert_eq!(config.status.code(), Some(0), "{}", text(&config.stderr));
    for args in [&["audit", "verify"][..], &["audit", "tail"]] {
        let output = on_storage(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output.stdout));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("portcullis migrate"), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!has_schema(&storage).await, "{args:?} migrated the database");
    }
    let migrate = on_storage(&["migrate"]);
    assert_eq!(migrate.status.code(), Some(0), "{}", text(&migrate.stderr));
    assert!(has_schema(&storage).await, "migrate creates the schema");
    let verify = on_storage(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).contains("audit trail intact: 0 events"),
        "{}",
        text(&verify.stdout)
    );
    let tail = on_storage(&["audit", "tail"]);
    assert_eq!(tail.status.code(), Some(0), "{}", text(&tail.stderr));
    assert_eq!(text(&tail.stdout), "");
    Ok(())
}

/// Rows of `table` in the storage's database.
async fn rows_of(storage: &common::Storage, table: &str) -> i64 {
    let db = storage.db().await;
    let count = sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    count
}

#[tokio::test]
async fn the_account_commands_read_and_create_no_key() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let on_storage = |args: &[&str], stdin: &str| run(&storage.env(), args, &[], stdin);
    let email = "ops@example.com";
    let create = on_storage(&["user", "create", "--email", email], "Kestrel-Harbour-1234!\n");
    assert_eq!(create.status.code(), Some(0), "{}", text(&create.stderr));
    for args in [
        &["user", "unlock", "--email", email][..],
        &["user", "disable", "--email", email],
        &["user", "enable", "--email", email],
        &["user", "reset-mfa", "--email", email],
        &["user", "list"],
        &["user", "delete", "--email", email],
    ] {
        let output = on_storage(args, "");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output.stderr));
    }
    // No signing key, refresh-successor key or second-factor key: a server's first start
    // makes them, not an account command.
    assert_eq!(rows_of(&storage, "signing_keys").await, 0, "a signing key was created");
    assert_eq!(rows_of(&storage, "secrets").await, 0, "a service key was created");
    assert!(rows_of(&storage, "audit_events").await >= 6, "every command is in the trail");
    Ok(())
}

#[tokio::test]
async fn the_client_commands_register_show_rotate_list_and_delete() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let on_storage = |args: &[&str]| run(&storage.env(), args, &[], "");
    let created = on_storage(&[
        "client",
        "create",
        "--name",
        "Grafana",
        "--redirect-uri",
        "https://grafana.example.com/login/generic_oauth",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--skip-consent",
    ]);
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let client: Value = serde_json::from_slice(&created.stdout)?;
    let id = client["client_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(client["scopes"], serde_json::json!(["openid", "email"]));
    assert_eq!(client["consent"], "skip");
    let first_secret = client["client_secret"].as_str().unwrap_or_default().to_owned();
    assert!(first_secret.len() >= 43, "{client}");
    let shown = on_storage(&["client", "show", "--id", &id]);
    let shown: Value = serde_json::from_slice(&shown.stdout)?;
    assert_eq!(shown["name"], "Grafana");
    assert!(shown.get("client_secret").is_none(), "{shown}");
    let rotated = on_storage(&["client", "rotate-secret", "--id", &id]);
    assert_eq!(rotated.status.code(), Some(0), "{}", text(&rotated.stderr));
    let rotated: Value = serde_json::from_slice(&rotated.stdout)?;
    assert_ne!(rotated["client_secret"].as_str(), Some(first_secret.as_str()));
    let bad =
        on_storage(&["client", "create", "--name", "x", "--redirect-uri", "javascript:alert(1)"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("redirect_uris"), "{}", text(&bad.stderr));
    let list = on_storage(&["client", "list"]);
    assert_eq!(text(&list.stdout).lines().count(), 1, "{}", text(&list.stdout));
    let deleted = on_storage(&["client", "delete", "--id", &id]);
    assert_eq!(deleted.status.code(), Some(0), "{}", text(&deleted.stderr));
    let gone = on_storage(&["client", "show", "--id", &id]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(rows_of(&storage, "signing_keys").await, 0, "no key was created");
    let verify = on_storage(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    Ok(())
}

#[tokio::test]
async fn a_user_created_on_the_command_line_can_log_in_to_a_running_server() -> TestResult {
    let app = spawn().await;
    let output = portcullis_on(
        &app,
        &["user", "create", "--email", "Root@Example.com", "--admin"],
        "Admin-Pass-1234!\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let user: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(user["email"], "root@example.com");
    assert_eq!(user["roles"], serde_json::json!(["user", "admin"]));
    let login = app.login("root@example.com", "Admin-Pass-1234!").await;
    assert_eq!(login.status(), StatusCode::OK, "the trailing newline was stripped");
    let weak =
        portcullis_on(&app, &["user", "create", "--email", "weak@example.com"], "password\n").await;
    assert_eq!(weak.status.code(), Some(1));
    assert!(text(&weak.stderr).contains("too_common"));
    let taken = portcullis_on(
        &app,
        &["user", "create", "--email", "root@example.com"],
        "Admin-Pass-1234!\n",
    )
    .await;
    assert_eq!(taken.status.code(), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_key_rotation_reaches_a_running_server_and_old_tokens_keep_working() -> TestResult {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let app = common::spawn_with_clock(&[], clock.clone()).await;
    let pair = app.signed_in("alice@example.com").await;
    let before: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await?.json().await?;
    let output = portcullis_on(&app, &["keys", "rotate"], "").await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // The server re-reads its keys each reload interval of its clock.
    clock.advance(portcullis::crypto::keys::RELOAD_INTERVAL);
    let of_alg = |jwks: &Value, alg: &str| -> Vec<String> {
        let keys = jwks["keys"].as_array().into_iter().flatten();
        keys.filter(|k| k["alg"] == alg).map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };
    let mut jwks = before.clone();
    for _ in 0..40 {
        jwks = app.client.get(app.url("/.well-known/jwks.json")).send().await?.json().await?;
        if jwks["keys"].as_array().map_or(0, Vec::len) == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    for alg in ["EdDSA", "RS256"] {
        let (old, now) = (of_alg(&before, alg), of_alg(&jwks, alg));
        assert_eq!((old.len(), now.len()), (1, 2), "a new {alg} key beside the old one: {jwks}");
        assert!(now.contains(&old[0]), "{jwks}");
    }
    let old_token = pair["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/auth/me", old_token).await.status(), StatusCode::OK);
    let fresh: Value = app.login("alice@example.com", common::PASSWORD).await.json().await?;
    let kid = jsonwebtoken::decode_header(fresh["access_token"].as_str().unwrap())?.kid;
    // Published ahead: the old key signs until KEY_PUBLISH_AHEAD (15 min) has passed
    // (tests/resource_servers.rs follows a rotation to its end).
    assert_eq!(kid, Some(of_alg(&before, "EdDSA").remove(0)), "the old key still signs");
    Ok(())
}

#[tokio::test]
async fn without_a_master_key_on_postgres_config_check_and_audit_verify_say_the_head_is_unsigned()
-> TestResult {
    let test =
        "without_a_master_key_on_postgres_config_check_and_audit_verify_say_the_head_is_unsigned";
    if !common::servers_answer(test, true, false).await {
        return Ok(());
    }
    let (storage, _owner) = common::new_postgres_storage().await;
    let on_storage = |args: &[&str]| run(&storage.env(), args, &[], "");
    let config = on_storage(&["config", "check"]);
    assert!(text(&config.stdout).contains("head is not signed"), "{}", text(&config.stdout));
    assert_eq!(on_storage(&["migrate"]).status.code(), Some(0));
    let created = run(
        &storage.env(),
        &["user", "create", "--email", "nk@example.com"],
        &[],
        &format!("{}\n", common::PASSWORD),
    );
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let verify = on_storage(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains("the head is not signed"), "{}", text(&verify.stdout));
    let heads = on_storage(&["audit", "heads"]);
    assert_eq!(text(&heads.stdout), "", "nothing is signed");
    Ok(())
}

#[tokio::test]
async fn a_command_that_writes_signs_the_head_and_audit_heads_prints_the_signatures() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let created = portcullis(
        dir.path(),
        &["user", "create", "--email", "hd@example.com"],
        &[],
        &format!("{}\n", common::PASSWORD),
    );
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let verify = portcullis(dir.path(), &["audit", "verify"], &[], "");
    let stdout = text(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("signed through position 1"), "{stdout}");
    let heads = portcullis(dir.path(), &["audit", "heads"], &[], "");
    let lines: Vec<Value> =
        text(&heads.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["previous"], "0".repeat(64), "the first signature starts the chain");
    assert_eq!(lines[0]["signature"].as_str().map(str::len), Some(64));
    Ok(())
}
