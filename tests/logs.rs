//! The real binary's logs never contain a password, a password hash or a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[tokio::test]
async fn password_never_appears_in_logs() {
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

    child.kill().unwrap();
    child.wait().unwrap();
    stderr.read_to_string(&mut logs).unwrap();
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
