//! A newcomer's first hour: the line `serve` prints at start, the log format it picks, the
//! errors that stop a start (naming the variable to fix), instances started at the same moment
//! on one fresh data directory, an empty `cursor`, and a test run without PostgreSQL or Redis.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{PASSWORD, TestResult, create_admin, servers_answer, spawn, str_of};
use reqwest::StatusCode;
use serde_json::Value;

/// How many migrations a fresh database gets: one per file of its folder (`sqlite`, `postgres`).
fn migration_count(dialect: &str) -> usize {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    std::fs::read_dir(folder)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"))
        .count()
}

/// `portcullis serve` on `env` (cheap hashing, a free port, `info` logs, no `LOG_FORMAT`), its
/// standard error read line by line.
fn start(env: &[(String, String)]) -> (Child, Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .env_clear()
        .env("PORTCULLIS_BIND", "127.0.0.1:0")
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "info")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, log)
}

/// The line that says the server listens (a JSON object: standard error is not a terminal), or
/// every line before the process ended or 60 s passed.
fn listening_line(log: &Receiver<String>) -> Result<Value, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = log.recv_timeout(left) else { return Err(seen) };
        match serde_json::from_str::<Value>(&line) {
            Ok(entry) if entry["message"] == "portcullis is listening" => return Ok(entry),
            Ok(_) => seen.push(line),
            Err(_) => panic!("not a JSON log line, with standard error a pipe: {line}"),
        }
    }
}

/// Runs `serve` to its exit (at most 60 s): the exit code and standard error.
fn failed_start(env: &[(String, String)]) -> (Option<i32>, String) {
    let (mut child, log) = start(env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server started anyway");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<String> = log.try_iter().collect();
    (status.code(), lines.join("\n"))
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn data_dir_env(dir: &Path) -> Vec<(String, String)> {
    vec![("PORTCULLIS_DATA_DIR".to_owned(), dir.display().to_string())]
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_start_line_says_the_version_backends_data_dir_migrations_and_a_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    // An existing directory, readable by others: the service makes it its own.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = std::fs::canonicalize(dir.path()).unwrap();

    let (first, log) = start(&data_dir_env(&data_dir));
    let line = listening_line(&log).unwrap_or_else(|seen| panic!("no start line: {seen:?}"));
    stop(first);

    assert!(str_of(&line, "address").starts_with("127.0.0.1:"), "{line}");
    assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
    let database = format!("sqlite {}", data_dir.join("portcullis.db").display());
    assert_eq!(line["database"], database.as_str());
    assert_eq!(line["session_store"], "embedded");
    assert_eq!(line["data_dir"], data_dir.display().to_string().as_str());
    assert_eq!(line["migrations_applied"], migration_count("sqlite"));
    assert_eq!(line["signing_key_generated"], true);

    assert_eq!(mode(&data_dir), 0o700, "the data directory");
    for file in ["portcullis.db", "portcullis.db-wal", "portcullis.db-shm", "master.key"] {
        let path = data_dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }

    // A second start changes nothing, and says so.
    let (second, log) = start(&data_dir_env(&data_dir));
    let line = listening_line(&log).unwrap_or_else(|seen| panic!("no start line: {seen:?}"));
    stop(second);
    assert_eq!(line["migrations_applied"], 0);
    assert_eq!(line["signing_key_generated"], false);
}

#[tokio::test]
async fn the_start_line_names_postgres_and_redis_without_credentials() {
    let test = "the_start_line_names_postgres_and_redis_without_credentials";
    if !servers_answer(test, true, true).await {
        return;
    }
    let (storage, _owner) = common::new_postgres_storage().await;
    let url = storage.database_url.clone().unwrap();
    let name = url.rsplit('/').next().unwrap().to_owned();

    let (server, log) = start(&storage.env());
    let line = listening_line(&log).unwrap_or_else(|seen| panic!("no start line: {seen:?}"));
    stop(server);

    let database = str_of(&line, "database");
    assert!(database.starts_with("postgres ") && database.ends_with(&format!("/{name}")), "{line}");
    assert!(!database.contains('@'), "{line}");
    let sessions = str_of(&line, "session_store");
    assert!(sessions.starts_with("redis ") || sessions.starts_with("redis-cluster "), "{line}");
    assert!(!sessions.contains('@') && !sessions.contains("redis://"), "{line}");
    assert_eq!(line["migrations_applied"], migration_count("postgres"));
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_named_with_the_variable_and_no_password() {
    let test = "a_database_that_does_not_exist_is_named_with_the_variable_and_no_password";
    if !servers_answer(test, true, false).await {
        return;
    }
    let admin = std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut url = url::Url::parse(&admin).unwrap();
    // The harness connects without a password, so the server trusts this one: a made-up one
    // must not leak into the message.
    if url.password().is_none() {
        url.set_password(Some("not-shown-anywhere")).unwrap();
    }
    let password = url.password().unwrap().to_owned();
    let missing = format!("portcullis_missing_{}", uuid::Uuid::new_v4().simple());
    url.set_path(&missing);
    let dir = tempfile::tempdir().unwrap();
    let mut env = data_dir_env(dir.path());
    env.push(("PORTCULLIS_DATABASE_URL".to_owned(), url.to_string()));

    let (code, stderr) = failed_start(&env);

    assert_eq!(code, Some(1), "{stderr}");
    let expected =
        format!("portcullis: PORTCULLIS_DATABASE_URL: database \"{missing}\" does not exist");
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
}

#[test]
fn an_address_in_use_names_the_address_and_the_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    for variable in ["PORTCULLIS_BIND", "PORTCULLIS_METRICS_BIND"] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = data_dir_env(dir.path());
        env.push((variable.to_owned(), address.clone()));

        let (code, stderr) = failed_start(&env);

        assert_eq!(code, Some(1), "{stderr}");
        let expected = format!("portcullis: {variable}: {address} is already in use");
        assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    }
}

#[test]
fn instances_started_at_the_same_moment_on_a_fresh_data_directory_all_start() {
    let (rounds, instances) = (3, 4);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let env = data_dir_env(dir.path());
        let started: Vec<_> = (0..instances).map(|_| start(&env)).collect();
        let mut applied = 0;
        for (child, log) in started {
            let line = listening_line(&log);
            stop(child);
            let line = line.unwrap_or_else(|seen| {
                panic!("round {round}: an instance did not start: {}", seen.join("\n"))
            });
            applied += line["migrations_applied"].as_u64().unwrap();
        }
        // One of them migrated; the others found the schema in place.
        assert_eq!(applied, migration_count("sqlite") as u64, "round {round}");
    }
}

/// `config check` in a pseudo-terminal made by `script` (util-linux), with `vars`: its output.
fn config_check_on_a_terminal(dir: &Path, vars: &[(&str, &str)]) -> Option<String> {
    let command = format!("{} config check", env!("CARGO_BIN_EXE_portcullis"));
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATA_DIR", dir)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn config_check(dir: &Path, vars: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["config", "check"])
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", dir)
        .envs(vars.iter().copied())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether the output sets `LOG_FORMAT` (with or without the prefix) to `value`.
fn says_log_format(output: &str, value: &str) -> bool {
    output.lines().any(|l| l.trim_end().ends_with(&format!("LOG_FORMAT={value}")))
}

#[test]
fn the_log_format_is_pretty_on_a_terminal_and_json_otherwise_unless_set() {
    let dir = tempfile::tempdir().unwrap();
    let output = config_check(dir.path(), &[]);
    assert!(says_log_format(&output, "json"), "{output}");
    let output = config_check(dir.path(), &[("PORTCULLIS_LOG_FORMAT", "pretty")]);
    assert!(says_log_format(&output, "pretty"), "{output}");

    let Some(output) = config_check_on_a_terminal(dir.path(), &[]) else {
        eprintln!(
            "SKIPPED the terminal half: `script` (util-linux) cannot run here; install \
             util-linux to run it"
        );
        return;
    };
    assert!(says_log_format(&output, "pretty"), "{output}");
    let output = config_check_on_a_terminal(dir.path(), &[("PORTCULLIS_LOG_FORMAT", "json")])
        .expect("script ran once already");
    assert!(says_log_format(&output, "json"), "{output}");
}

#[tokio::test]
async fn an_empty_cursor_is_the_first_page() -> TestResult {
    let app = spawn().await;
    let user = app.signed_in("ada@example.com").await;
    let token = str_of(&user, "access_token");
    create_admin(&app, "root@example.com").await;
    let admin = app.logged_in("root@example.com", PASSWORD).await;
    let admin = str_of(&admin, "access_token");

    for (path, bearer) in [
        ("/v1/auth/sessions?cursor=", token),
        ("/v1/auth/events?cursor=", token),
        ("/v1/admin/users?cursor=", admin),
        ("/v1/admin/audit?cursor=", admin),
    ] {
        let response = app.get(path, bearer).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}: {}", response.text().await?);
    }
    // A cursor this server did not give is still refused.
    let junk = app.get("/v1/auth/events?cursor=junk", token).await;
    assert_eq!(junk.status(), StatusCode::UNPROCESSABLE_ENTITY);
    Ok(())
}

/// `cargo test` on a machine with only Rust: a test that needs Redis, run with no backend
/// variables (no `CI`, no `PORTCULLIS_TEST_POSTGRES`) and Redis pointing where nothing
/// listens, passes and says why it skipped and how to enable it. (PostgreSQL's default address
/// cannot be pointed elsewhere without setting the variable that requires it; with Redis
/// missing the test skips whether or not PostgreSQL answers.)
#[test]
fn without_the_real_backends_their_tests_skip_and_say_how_to_enable_them() {
    let test = "the_start_line_names_postgres_and_redis_without_credentials";
    let output = Command::new(std::env::current_exe().unwrap())
        .args([&format!("startup::{test}"), "--exact", "--nocapture", "--test-threads=1"])
        .env_remove("CI")
        .env_remove("PORTCULLIS_TEST_POSTGRES")
        .env_remove("PORTCULLIS_TEST_BACKEND")
        .env_remove("PORTCULLIS_TEST_REDIS_CLUSTER")
        .env("PORTCULLIS_TEST_REDIS", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    let skipped = stderr
        .lines()
        .find(|l| l.starts_with(&format!("SKIPPED {test}: ")))
        .unwrap_or_else(|| panic!("no SKIPPED line: {stderr}"));
    assert!(skipped.contains("Redis does not answer") || skipped.contains("do not answer"));
    for how in ["127.0.0.1:6379", "PORTCULLIS_TEST_REDIS", "scripts/test"] {
        assert!(skipped.contains(how), "{skipped}");
    }
}

/// Every file under `dir`, and every directory, with its mode.
fn modes_under(dir: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    let mut found = vec![(dir.to_path_buf(), true, mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(modes_under(&path));
        } else {
            found.push((path.clone(), false, mode(&path)));
        }
    }
    found
}

#[tokio::test]
async fn every_file_under_the_data_directory_is_0600_and_every_directory_0700_mail_included()
-> TestResult {
    let app = spawn().await;
    app.register("modes@example.com", PASSWORD).await;
    let mail = app.data_dir.join("mail");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&mail).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml")))
    }) {
        assert!(Instant::now() < deadline, "no message written under {}", mail.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let found = modes_under(&app.data_dir);
    assert!(found.iter().any(|(path, _, _)| path.extension().is_some_and(|x| x == "eml")));
    let open: Vec<_> = found
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(path, _, mode)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(open.is_empty(), "readable by others: {open:?}");
    Ok(())
}
