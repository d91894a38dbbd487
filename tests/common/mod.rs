//! Test harness: starts the real server on a random port with its own fresh data directory, and
//! talks HTTP to it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use portcullis::config::Settings;
use portcullis::startup::Application;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A password that meets the default policy.
pub const PASSWORD: &str = "Correct-Horse-42";

pub struct TestApp {
    pub address: SocketAddr,
    pub client: Client,
    pub data_dir: PathBuf,
    /// Keeps the data directory alive; `None` when the directory belongs to another test app.
    _dir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Cheap hashing parameters (tests check behaviour, not cost) and budgets large enough that only
/// the tests about limits meet them; a test's own variables override these.
const TEST_DEFAULTS: [(&str, &str); 5] = [
    ("PORTCULLIS_ARGON2_MEMORY_KIB", "1024"),
    ("PORTCULLIS_ARGON2_ITERATIONS", "1"),
    ("PORTCULLIS_RATE_LIMIT_IP", "100000/min"),
    ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "100000/min"),
    ("PORTCULLIS_RATE_LIMIT_READS", "100000/min"),
];

pub async fn spawn() -> TestApp {
    spawn_with(&[]).await
}

pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let mut app = spawn_in(&data_dir, vars).await;
    app._dir = Some(dir);
    app
}

/// Starts a server on an existing data directory (a second instance, or a restart).
pub async fn spawn_in(data_dir: &std::path::Path, vars: &[(&str, &str)]) -> TestApp {
    let settings = settings_for(data_dir, vars);
    let application = Application::build(settings, true).await.unwrap();
    let address = application.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        data_dir: data_dir.to_path_buf(),
        _dir: None,
        stop: Some(stop),
        server: Some(server),
    }
}

pub fn settings_for(data_dir: &std::path::Path, vars: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("PORTCULLIS_BIND".into(), "127.0.0.1:0".into()),
        ("PORTCULLIS_DATA_DIR".into(), data_dir.display().to_string()),
    ];
    env.extend(TEST_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(None, env).unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Response {
        self.request(Method::GET, path, Some(bearer), None).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post("/v1/auth/register", json!({ "email": email, "password": password })).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/v1/auth/login", json!({ "email": email, "password": password })).await
    }

    /// Registers and logs in; returns the token pair.
    pub async fn signed_in(&self, email: &str) -> Value {
        assert_eq!(self.register(email, PASSWORD).await.status(), StatusCode::CREATED);
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/v1/auth/refresh", json!({ "refresh_token": refresh_token })).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// Asserts a problem-details error with the given status and code; returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("/errors/{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert_eq!(body["request_id"], request_id.as_str());
    body
}

/// Creates a user with the admin role through the command line, on the app's database.
pub fn create_admin(app: &TestApp, email: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["user", "create", "--email", email, "--admin"])
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", &app.data_dir)
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Runs the binary on the app's database and returns its exit status.
pub fn run_cli(app: &TestApp, args: &[&str]) -> Option<i32> {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", &app.data_dir)
        .env("PORTCULLIS_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .code()
}
