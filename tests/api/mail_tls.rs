//! Mail over TLS with credentials: `smtps://` (TLS from the start) and `smtp+starttls://` to a
//! real SMTP peer with a certificate made here, trusted through the system trust store
//! (`SSL_CERT_FILE`), with AUTH; the password never reaches a log line, and STARTTLS that the
//! server does not offer means nothing is sent in clear.

use crate::common;

use std::time::Duration;

use common::smtp::{SinkOptions, SmtpSink};
use common::{PASSWORD, ServerProcess, TestResult};
use reqwest::StatusCode;
use serde_json::json;

const USER: &str = "mailer";
const SECRET: &str = "s3cret-smtp-pass";

struct Certificate {
    dir: tempfile::TempDir,
    cert: String,
    key: String,
}

fn certificate() -> Certificate {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    Certificate { dir, cert: cert.pem(), key: key_pair.serialize_pem() }
}

/// Registers through a `serve` process whose SMTP is `url`, trusting `certificate`; returns
/// the process (to read its log) and its storage.
async fn register_through(
    url: &str,
    certificate: &Certificate,
    email: &str,
) -> (ServerProcess, common::StorageOwner) {
    let (storage, owner) = common::new_embedded_storage().await;
    let trust = certificate.dir.path().join("cert.pem").display().to_string();
    let vars = [("PORTCULLIS_SMTP_URL", url), ("SSL_CERT_FILE", trust.as_str())];
    let server = ServerProcess::start(&storage, &vars);
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/auth/register", server.address))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    (server, owner)
}

/// Neither the SMTP password nor the mailed token is in any log line.
fn assert_no_secret_logged(server: &ServerProcess, mail: &str) {
    let token = common::smtp::link_token(mail, "token=").expect("a link");
    let lines: Vec<String> = server.log.try_iter().collect();
    assert!(!lines.is_empty(), "the server logs");
    assert!(lines.iter().all(|line| !line.contains(SECRET)), "the SMTP password was logged");
    assert!(lines.iter().all(|line| !line.contains(&token)), "the token was logged");
}

#[tokio::test]
async fn smtps_with_auth_delivers_over_tls_and_never_logs_the_password() -> TestResult {
    let certificate = certificate();
    let options = SinkOptions {
        tls: Some((certificate.cert.clone(), certificate.key.clone())),
        implicit_tls: true,
        auth: Some((USER.to_owned(), SECRET.to_owned())),
    };
    let sink = SmtpSink::start(options).await;
    let url = format!("smtps://{USER}:{SECRET}@localhost:{}", sink.address.port());
    let (server, _storage) = register_through(&url, &certificate, "tls@example.com").await;
    let mail = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].tls, "over TLS");
    assert_eq!(mail[0].user.as_deref(), Some(USER), "authenticated");
    assert_no_secret_logged(&server, &mail[0].data);
    Ok(())
}

#[tokio::test]
async fn starttls_with_auth_upgrades_before_the_credentials() -> TestResult {
    let certificate = certificate();
    let options = SinkOptions {
        tls: Some((certificate.cert.clone(), certificate.key.clone())),
        implicit_tls: false,
        auth: Some((USER.to_owned(), SECRET.to_owned())),
    };
    let sink = SmtpSink::start(options).await;
    let url = format!("smtp+starttls://{USER}:{SECRET}@localhost:{}", sink.address.port());
    let (server, _storage) = register_through(&url, &certificate, "starttls@example.com").await;
    let mail = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].tls && mail[0].user.as_deref() == Some(USER));
    assert_no_secret_logged(&server, &mail[0].data);
    Ok(())
}

#[tokio::test]
async fn starttls_that_the_server_does_not_offer_sends_nothing_in_clear() -> TestResult {
    let certificate = certificate();
    let options =
        SinkOptions { auth: Some((USER.to_owned(), SECRET.to_owned())), ..Default::default() };
    let sink = SmtpSink::start(options).await;
    let url = format!("smtp+starttls://{USER}:{SECRET}@localhost:{}", sink.address.port());
    let _running = register_through(&url, &certificate, "clear@example.com").await;
    assert!(sink.wait_for(1, Duration::from_secs(3)).await.is_empty(), "nothing sent in clear");
    Ok(())
}
