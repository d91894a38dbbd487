//! Native TLS: the server answers HTTPS with the configured certificate, and a reload (called
//! directly, or SIGHUP to the real binary) makes new connections see a new certificate without
//! a restart.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ServerProcess, TestResult};
use portcullis::startup::Application;
use reqwest::{Certificate, Client, StatusCode};

/// A self-signed certificate for `localhost` and 127.0.0.1, as (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names).unwrap();
    (cert.pem(), key_pair.serialize_pem())
}

/// Writes a certificate and its key where the server reads them; returns the certificate.
fn install(dir: &Path) -> String {
    let (cert, key) = certificate();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    cert
}

fn tls_vars(dir: &Path) -> [(String, String); 2] {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        ("PORTCULLIS_TLS_CERT".to_owned(), path("cert.pem")),
        ("PORTCULLIS_TLS_KEY".to_owned(), path("key.pem")),
    ]
}

/// A client that trusts `cert` alone, and a fresh connection for every request.
fn trusting(cert: &str) -> Client {
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(cert.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn healthz(client: &Client, address: SocketAddr) -> reqwest::Result<reqwest::Response> {
    client.get(format!("https://localhost:{}/healthz", address.port())).send().await
}

/// Starts the server in this process with TLS from `dir`.
async fn spawn_tls(dir: &Path) -> (SocketAddr, std::sync::Arc<portcullis::http::Tls>) {
    let (storage, owner) = common::new_storage().await;
    let vars = tls_vars(dir);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let settings = common::settings_for(&storage, &vars);
    let application = Application::build(settings, true).await.unwrap();
    let address = application.local_addr().unwrap();
    let tls = application.tls().unwrap();
    tokio::spawn(async move {
        let _owner = owner;
        application.run(std::future::pending()).await
    });
    (address, tls)
}

#[tokio::test]
async fn the_server_answers_https_with_the_configured_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cert = install(dir.path());
    let (address, _) = spawn_tls(dir.path()).await;

    let response = healthz(&trusting(&cert), address).await?;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("strict-transport-security"));
    let (other, _) = certificate();
    assert!(healthz(&trusting(&other), address).await.is_err(), "an untrusted certificate passed");
    let plain = reqwest::get(format!("http://{address}/healthz")).await;
    assert!(plain.map_or(true, |r| r.status() != StatusCode::OK), "plain HTTP was served");
    Ok(())
}

#[tokio::test]
async fn after_a_reload_new_connections_see_the_new_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let old = install(dir.path());
    let (address, tls) = spawn_tls(dir.path()).await;
    let new = install(dir.path());
    assert!(healthz(&trusting(&new), address).await.is_err(), "new certificate before reload");

    tls.reload()?;

    assert_eq!(healthz(&trusting(&new), address).await?.status(), StatusCode::OK);
    assert!(healthz(&trusting(&old), address).await.is_err(), "old certificate after reload");
    Ok(())
}

#[tokio::test]
async fn a_reload_of_a_broken_file_keeps_the_old_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cert = install(dir.path());
    let (address, tls) = spawn_tls(dir.path()).await;
    std::fs::write(dir.path().join("key.pem"), "not a key")?;

    let reloaded = tls.reload();

    assert_eq!(reloaded.err().map(|e| e.variable), Some("PORTCULLIS_TLS_KEY"));
    assert_eq!(healthz(&trusting(&cert), address).await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_the_listener() -> TestResult {
    let dir = tempfile::tempdir()?;
    install(dir.path());
    let (storage, _owner) = common::new_embedded_storage().await;
    let vars = tls_vars(dir.path());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut server = ServerProcess::start(&storage, &vars);
    let new = install(dir.path());

    server.signal("HUP");

    // The reload is asynchronous: poll, boundedly, until a new connection sees the new
    // certificate, on the same address.
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = trusting(&new);
    while healthz(&client, server.address).await.is_err() {
        assert!(Instant::now() < deadline, "SIGHUP did not load the new certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.signal("TERM");
    let status = server.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    Ok(())
}

#[test]
fn a_certificate_file_that_holds_no_certificate_stops_the_start_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "no certificate here").unwrap();
    std::fs::write(dir.path().join("key.pem"), certificate().1).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", dir.path().join("data"))
        .envs(tls_vars(dir.path()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORTCULLIS_TLS_CERT"), "{stderr}");
}
