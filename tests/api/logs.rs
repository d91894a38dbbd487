//! The real binary's logs never contain a password, a password hash or a token, nor a raw control
//! or bidirectional character from a request.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, Stdio};

use serde_json::{Value, json};

/// The real binary with trace logs on standard error, and the address it listens on.
struct Server {
    child: Child,
    stderr: BufReader<ChildStderr>,
    logs: String,
    address: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .env_clear()
            .env("PORTCULLIS_BIND", "127.0.0.1:0")
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
            .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
            .env("PORTCULLIS_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut logs = String::new();
        let address = loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "the server exited: {logs}");
            logs.push_str(&line);
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && entry["message"] == "portcullis is listening"
            {
                break entry["address"].as_str().unwrap().to_owned();
            }
        };
        Self { child, stderr, logs, address, _dir: dir }
    }

    /// Stops the server and returns everything it logged.
    fn logs(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.stderr.read_to_string(&mut self.logs).unwrap();
        self.logs
    }
}

#[tokio::test]
async fn password_never_appears_in_logs() {
    let server = Server::start();
    let address = server.address.clone();
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let password = "Sekr1t-Passw0rd-XYZ";
    let credentials = json!({ "email": "alice@example.com", "password": password });
    let created =
        client.post(format!("{base}/v1/auth/register")).json(&credentials).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let pair: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong = json!({ "email": "alice@example.com", "password": "Wrong-Passw0rd-QQQ" });
    let refused = client.post(format!("{base}/v1/auth/login")).json(&wrong).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let refresh = pair["refresh_token"].as_str().unwrap();
    let refreshed = client
        .post(format!("{base}/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let rotated: Value = refreshed.json().await.unwrap();

    let logs = server.logs();
    assert!(logs.contains("security event"), "the logs were captured: {logs}");
    for secret in [
        password,
        "Wrong-Passw0rd-QQQ",
        "$argon2id$",
        refresh,
        pair["access_token"].as_str().unwrap(),
        pair["device_token"].as_str().unwrap(),
        rotated["refresh_token"].as_str().unwrap(),
        rotated["access_token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "the logs contain {secret}");
    }
}

/// Whether `c` must never appear raw in a log line: C0, DEL, C1 and the bidirectional controls.
#[tokio::test]
async fn control_and_bidi_characters_never_appear_raw_in_logs() {
    use std::io::Write;
    let server = Server::start();
    let base = format!("http://{}", server.address);
    // Raw UTF-8 in the request line and in a header: hyper lets both through, reqwest would not.
    let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
    let request = "GET /x\u{9b}31m\u{202e}y HTTP/1.1\r\nHost: a\r\nUser-Agent: ua\u{9b}\u{202e}\u{2066}\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    let client = reqwest::Client::new();
    let agent = reqwest::header::HeaderValue::from_bytes("agent\u{9b}\u{202e}".as_bytes()).unwrap();
    for email in ["evil\u{9b}\u{202e}\u{7f}@example.com", "alice@example.com"] {
        let credentials = json!({ "email": email, "password": "Sekr1t-Passw0rd-XYZ" });
        client
            .post(format!("{base}/v1/auth/login"))
            .header("user-agent", agent.clone())
            .json(&credentials)
            .send()
            .await
            .unwrap();
    }

    let logs = server.logs();
    assert!(logs.contains("request completed"), "the logs were captured: {logs}");
    let raw: Vec<char> = logs.chars().filter(|c| common::is_raw_control(*c)).collect();
    assert!(raw.is_empty(), "raw {raw:?} in the logs: {logs}");
    // JSON writes the escape's backslash doubled.
    assert!(logs.contains(r"/x\\u{9b}31m\\u{202e}y"), "the path is logged, escaped: {logs}");
}
