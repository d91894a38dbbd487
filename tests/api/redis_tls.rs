//! Redis over TLS (`rediss://`): the service reaches a TLS-only Redis whose certificate the
//! system trust store vouches for (`SSL_CERT_FILE` here), and will not talk to one it cannot
//! verify.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, ServerProcess, TestResult};
use reqwest::StatusCode;
use serde_json::json;

/// A Redis server that speaks only TLS, on a free loopback port, with a certificate of its own.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(test: &str) -> Option<TlsRedis> {
        if !common::redis_server_installed(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(names).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key_pair.serialize_pem()).unwrap();
        let port = common::free_port().port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&cert_path)
            .arg("--tls-key-file")
            .arg(&key_path)
            .arg("--tls-ca-cert-file")
            .arg(&cert_path)
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{test}: the TLS Redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(TlsRedis { child, port, dir })
    }

    fn url(&self) -> String {
        format!("rediss://localhost:{}", self.port)
    }

    fn certificate(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sign_up_and_in(base: &str) -> (StatusCode, StatusCode) {
    let client = reqwest::Client::new();
    let body = json!({"email": "tls@example.com", "password": PASSWORD});
    client.post(format!("{base}/v1/auth/register")).json(&body).send().await.unwrap();
    let login = client.post(format!("{base}/v1/auth/login")).json(&body).send().await.unwrap();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    (login.status(), ready.status())
}

#[tokio::test]
async fn a_redis_that_speaks_only_tls_and_is_trusted_serves_sessions() -> TestResult {
    let Some(redis) = TlsRedis::start("a trusted TLS Redis") else { return Ok(()) };
    let (storage, _owner) = common::new_embedded_storage().await;
    let (url, certificate) = (redis.url(), redis.certificate());
    let vars = [("PORTCULLIS_REDIS_URL", url.as_str()), ("SSL_CERT_FILE", certificate.as_str())];
    let server = ServerProcess::start(&storage, &vars);
    let base = format!("http://{}", server.address);
    assert_eq!(sign_up_and_in(&base).await, (StatusCode::OK, StatusCode::OK));
    Ok(())
}

#[tokio::test]
async fn a_redis_whose_certificate_cannot_be_verified_is_not_used() -> TestResult {
    let Some(redis) = TlsRedis::start("an untrusted TLS Redis") else { return Ok(()) };
    let (storage, _owner) = common::new_embedded_storage().await;
    let url = redis.url();
    let server = ServerProcess::start(&storage, &[("PORTCULLIS_REDIS_URL", url.as_str())]);
    let base = format!("http://{}", server.address);
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(sign_up_and_in(&base).await, (unavailable, unavailable));
    Ok(())
}
