//! The command line as a newcomer meets it: `config check` output that reads back as
//! configuration, a "did you mean" for a misspelt setting, the password typed on a terminal, and
//! `user unlock` refusing what it cannot unlock.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{PASSWORD, TestResult};
use reqwest::StatusCode;

/// Runs the binary in `dir` with exactly `env` (and a cheap Argon2), `stdin` piped in.
fn run(dir: &Path, args: &[&str], env: &[(String, String)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pairs(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `config check` in `dir` with `env`; it must succeed.
fn check(dir: &Path, env: &[(String, String)]) -> String {
    let output = run(dir, &["config", "check"], env, "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// The settings of a `config check` output: every line that is not a `# ` comment, as
/// `NAME=value`. Any other kind of line fails the test.
fn settings_of(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter(|line| !line.starts_with("# "))
        .map(|line| {
            let (name, value) =
                line.split_once('=').unwrap_or_else(|| panic!("not a setting: {line}"));
            assert!(name.starts_with("PORTCULLIS_"), "not a setting: {line}");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Runs `config check` on `env`, then again on what it printed, and expects the same output.
fn assert_reads_back(env: &[(String, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let first = check(dir.path(), env);
    let second = check(dir.path(), &settings_of(&first));
    assert_eq!(first, second, "the output read back is not the same configuration");
    first
}

#[test]
fn config_check_with_the_defaults_reads_back_as_the_same_configuration() {
    let output = assert_reads_back(&[]);
    for line in [
        "PORTCULLIS_RATE_LIMIT_IP=30/min",
        "PORTCULLIS_RATE_LIMIT_ACCOUNT=10/min",
        "PORTCULLIS_RATE_LIMIT_READS=600/min",
        "PORTCULLIS_ACCESS_TOKEN_TTL=15m",
        "PORTCULLIS_REFRESH_TOKEN_TTL=14d",
        "PORTCULLIS_REFRESH_REUSE_GRACE=0s",
        "PORTCULLIS_DATABASE_URL=",
        "PORTCULLIS_JWT_SECRET=",
        "# configuration is valid",
    ] {
        assert!(output.lines().any(|l| l == line), "{line} missing:\n{output}");
    }
    let embedded = "# PORTCULLIS_DATABASE_URL: unset, the embedded SQLite file ";
    assert!(output.lines().any(|l| l.starts_with(embedded)), "{output}");
    assert!(output.lines().any(|l| l.starts_with("# posture: ")), "{output}");
}

#[test]
fn config_check_with_other_rates_durations_and_backends_reads_back_the_same() {
    let env = pairs(&[
        ("PORTCULLIS_RATE_LIMIT_IP", "5/s"),
        ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "100/h"),
        ("PORTCULLIS_RATE_LIMIT_READS", "7/min"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL", "90s"),
        ("PORTCULLIS_REFRESH_TOKEN_TTL", "36h"),
        ("PORTCULLIS_LOCKOUT_WINDOW", "3600s"),
        ("PORTCULLIS_LOCKOUT_DURATION", "61m"),
        ("PORTCULLIS_SESSION_LIFETIME", "2d"),
        ("PORTCULLIS_KEY_ROTATE_EVERY", "30d"),
        ("PORTCULLIS_JWT_LEEWAY", "5s"),
        ("PORTCULLIS_DATABASE_URL", "postgres://portcullis@db.example.com:5432/portcullis"),
        ("PORTCULLIS_REDIS_URL", "redis+cluster://10.0.0.1:6379,10.0.0.2:6379"),
        ("PORTCULLIS_REDIS_PREFIX", "staging:"),
        ("PORTCULLIS_SMTP_URL", "smtp://127.0.0.1:2525"),
        ("PORTCULLIS_MAIL_FROM", "Example Auth <auth@example.com>"),
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1"),
        ("PORTCULLIS_CORS_ORIGINS", "https://app.example.com,https://admin.example.com"),
        ("PORTCULLIS_METRICS_BIND", "127.0.0.1:9100"),
        ("PORTCULLIS_LOG", "warn,portcullis=debug"),
        ("PORTCULLIS_LOG_FORMAT", "pretty"),
        ("PORTCULLIS_CLIENT_IP_HEADER", "forwarded"),
    ]);
    let output = assert_reads_back(&env);
    for line in [
        "PORTCULLIS_RATE_LIMIT_IP=5/s",
        "PORTCULLIS_RATE_LIMIT_ACCOUNT=100/h",
        "PORTCULLIS_RATE_LIMIT_READS=7/min",
        "PORTCULLIS_ACCESS_TOKEN_TTL=90s",
        "PORTCULLIS_REFRESH_TOKEN_TTL=36h",
        "PORTCULLIS_LOCKOUT_WINDOW=1h",
        "PORTCULLIS_LOCKOUT_DURATION=61m",
        "PORTCULLIS_KEY_ROTATE_EVERY=30d",
        "PORTCULLIS_DATABASE_URL=postgres://portcullis@db.example.com:5432/portcullis",
        "PORTCULLIS_REDIS_URL=redis+cluster://10.0.0.1:6379,10.0.0.2:6379",
        "PORTCULLIS_TRUSTED_PROXIES=10.0.0.0/8,192.168.1.1/32",
    ] {
        assert!(output.lines().any(|l| l == line), "{line} missing:\n{output}");
    }
}

#[test]
fn an_explicit_sqlite_url_reads_back_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("auth.db").display());
    let output = assert_reads_back(&pairs(&[("PORTCULLIS_DATABASE_URL", &url)]));
    assert!(output.lines().any(|l| l == format!("PORTCULLIS_DATABASE_URL={url}")), "{output}");
}

#[test]
fn masked_secrets_are_comments_and_the_rest_still_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let env = pairs(&[
        ("PORTCULLIS_JWT_SECRET", "a-very-secret-value-of-at-least-32-bytes"),
        ("PORTCULLIS_DATABASE_URL", "postgres://portcullis:hunter2@db/portcullis"),
        ("PORTCULLIS_REDIS_URL", "rediss://:hunter3@cache:6380"),
    ]);
    let output = check(dir.path(), &env);
    for line in [
        "# PORTCULLIS_JWT_SECRET=<40 bytes, masked>",
        "# PORTCULLIS_DATABASE_URL=postgres://portcullis:********@db/portcullis",
        "# PORTCULLIS_REDIS_URL=rediss://:********@cache:6380",
    ] {
        assert!(output.lines().any(|l| l == line), "{line} missing:\n{output}");
    }
    assert!(!output.contains("hunter") && !output.contains("a-very-secret"), "{output}");
    let settings = settings_of(&output);
    assert!(!settings.iter().any(|(name, _)| name == "PORTCULLIS_JWT_SECRET"));
    // Less the secrets, what is printed is still configuration the program takes.
    check(dir.path(), &settings);
}

#[test]
fn a_misspelt_variable_gets_a_did_you_mean_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        run(dir.path(), &["config", "check"], &pairs(&[("PORTCULLIS_LOCKOUT_TRESHOLD", "5")]), "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let expected = "PORTCULLIS_LOCKOUT_TRESHOLD: is not a known setting; did you mean \
                    PORTCULLIS_LOCKOUT_THRESHOLD?";
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let output =
        run(dir.path(), &["config", "check"], &pairs(&[("PORTCULLIS_FROBNICATE", "1")]), "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("PORTCULLIS_FROBNICATE: is not a known setting"), "{stderr}");
    assert!(!stderr.contains("did you mean"), "nothing is near it: {stderr}");
}

#[test]
fn a_misspelt_file_key_gets_a_did_you_mean_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, "rate_limit_ipp = \"5/s\"\n").unwrap();
    let output = run(dir.path(), &["--config", file.to_str().unwrap(), "config", "check"], &[], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("rate_limit_ipp is not a known setting; did you mean rate_limit_ip?"),
        "{stderr}"
    );
}

/// The command line on a test app's storage, run off the runtime that serves the app.
async fn on_app(app: &common::TestApp, args: &[&str], stdin: &str) -> Output {
    let mut env = app.storage.env();
    env.extend(pairs(&[
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "1024"),
        ("PORTCULLIS_ARGON2_ITERATIONS", "1"),
        ("PORTCULLIS_LOG", "warn"),
    ]));
    let dir = app.data_dir.clone();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&dir, &args, &env, &stdin)
    })
    .await
    .unwrap()
}

/// The kinds of the audit events, oldest first, as `audit tail` prints them.
async fn audit_kinds(app: &common::TestApp) -> Vec<String> {
    let output = on_app(app, &["audit", "tail", "--lines", "1000"], "").await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["type"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn unlock_refuses_what_is_not_an_email_or_has_no_account_or_lock() -> TestResult {
    let app = common::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "2")]).await;
    let before = audit_kinds(&app).await;
    for (email, says) in [
        ("not-an-email", "is not an email address"),
        ("nobody@example.com", "no account or lock has the email"),
    ] {
        let output = on_app(&app, &["user", "unlock", "--email", email], "").await;
        assert_eq!(output.status.code(), Some(1), "{email}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(says), "{email}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert_eq!(audit_kinds(&app).await, before, "a refused unlock records nothing");

    // An account without a lock, and a lock without an account, are both unlocked.
    let created = on_app(&app, &["user", "create", "--email", "kim@example.com"], PASSWORD).await;
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let output = on_app(&app, &["user", "unlock", "--email", "kim@example.com"], "").await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for _ in 0..2 {
        let status = app.login("ghost@example.com", "Wrong-Pass-1").await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("ghost@example.com", "Wrong-Pass-1").await.status(), StatusCode::LOCKED);
    let output = on_app(&app, &["user", "unlock", "--email", "Ghost@example.com"], "").await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(audit_kinds(&app).await.iter().filter(|k| *k == "unlock").count(), 2);
    Ok(())
}

/// Runs `user create` on a pseudo-terminal (through `script`), answering each prompt with the
/// next of `answers` only once it is shown. Returns the exit status and what the terminal showed;
/// `None` where `script` is not installed.
fn create_on_a_terminal(dir: &Path, answers: &[&str]) -> Option<(Option<i32>, String)> {
    let binary = env!("CARGO_BIN_EXE_portcullis");
    let command = format!(
        "PORTCULLIS_DATA_DIR={} PORTCULLIS_ARGON2_MEMORY_KIB=1024 PORTCULLIS_ARGON2_ITERATIONS=1 \
         PORTCULLIS_LOG=warn {binary} user create --email tty@example.com",
        dir.join("data").display()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        // Only what the command needs: the test runner's own PORTCULLIS_TEST_* would be
        // refused as unknown settings.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = String::new();
    let mut answered = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Ok(chunk) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        shown.push_str(&text(&chunk));
        // Answer each prompt once it is shown, and once the terminal has had the moment it
        // takes to stop echoing after the prompt.
        while answered < answers.len() && shown.matches("Password").count() > answered {
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(format!("{}\r", answers[answered]).as_bytes()).unwrap();
            stdin.flush().unwrap();
            answered += 1;
        }
    }
    drop(stdin);
    let status = child.wait().unwrap().code();
    Some((status, shown))
}

#[test]
fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let Some((status, shown)) = create_on_a_terminal(dir.path(), &[PASSWORD, PASSWORD]) else {
        eprintln!("skipped: `script` (util-linux) is not installed, so no terminal can be made");
        return;
    };
    assert_eq!(status, Some(0), "{shown}");
    assert!(shown.contains("Password: ") && shown.contains("Password (again): "), "{shown}");
    assert!(!shown.contains(PASSWORD), "the password was echoed: {shown}");
    assert!(shown.contains("\"email\":\"tty@example.com\""), "{shown}");

    let Some((status, shown)) = create_on_a_terminal(dir.path(), &[PASSWORD, "Other-Horse-43"])
    else {
        return;
    };
    assert_eq!(status, Some(1), "{shown}");
    assert!(shown.contains("the passwords do not match"), "{shown}");
}
