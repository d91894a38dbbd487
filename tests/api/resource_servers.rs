//! What resource servers see: the discovery document, the JWKS and its cache lifetime, the
//! claims of RFC 9068, and a key rotation as a verifier that caches the JWKS lives through it.
//!
//! The verifier is a real one (`tests/resource_server/verifier.py`: authlib checks the
//! discovery document, PyJWT verifies), and it keeps the JWKS for the `max-age` the server
//! gives without refetching on an unknown key. It is read synchronously, so those tests run the
//! server on a second worker thread. Its JWKS cache and PyJWT's `exp` run on the wall clock, so
//! the rotation it lives through takes real seconds, bounded; every other rotation test moves the
//! server's injected clock instead, and its reloads follow at once. Without Python's `jwt`,
//! `authlib` and `requests` the verifier tests are skipped, except under CI, where they fail.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestResult, spawn_with, str_of};
use reqwest::StatusCode;
use serde_json::Value;

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The verifier process, if Python has what it needs.
struct Verifier {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Verifier {
    fn start(issuer: &str, audience: &str) -> Option<Verifier> {
        let ready = Command::new("python3")
            .args(["-c", "import jwt, authlib, requests, cryptography"])
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            assert!(
                std::env::var_os("CI").is_none(),
                "the verifier needs Python's pyjwt[crypto], authlib and requests"
            );
            eprintln!(
                "SKIPPED the resource-server verifier: install pyjwt[crypto], authlib and \
                 requests with pip to run it"
            );
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resource_server/verifier.py");
        let mut child = Command::new("python3")
            .args([script, issuer, audience])
            // authlib refuses a plain-http issuer unless told this is a test.
            .env("AUTHLIB_INSECURE_TRANSPORT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut verifier = Verifier { child, input, output };
        assert_eq!(verifier.line()["ready"], true);
        Some(verifier)
    }

    fn line(&mut self) -> Value {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("verifier said {line:?}"))
    }

    fn verify(&mut self, token: &str) -> Value {
        writeln!(self.input, "{token}").unwrap();
        self.line()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keys rotate` against the app's storage, with the lead given; the server it rotates for
/// keeps running meanwhile.
async fn rotate(app: &common::TestApp, publish_ahead: &str) {
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["keys", "rotate"])
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_KEY_PUBLISH_AHEAD", publish_ahead)
        .env("PORTCULLIS_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// One reload interval of the injected clock: every instance on it re-reads its keys.
const RELOAD: Duration = portcullis::crypto::keys::RELOAD_INTERVAL;

/// The JWKS's caching header, and the kids of the keys that sign access tokens (EdDSA; the
/// RS256 keys sign only ID tokens and rotate the same way).
async fn jwks(app: &common::TestApp) -> (String, Vec<String>) {
    let response = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    let control = response.headers()["cache-control"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap().iter().filter(|k| k["alg"] == "EdDSA");
    (control, keys.map(|k| k["kid"].as_str().unwrap().to_owned()).collect())
}

/// The stored keys that sign access tokens.
async fn stored_keys(app: &common::TestApp) -> i64 {
    let db = app.storage.db().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE alg = 'EdDSA'")
        .fetch_one(&db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_document_and_the_jwks_say_where_the_keys_are_and_how_long_to_keep_them()
-> TestResult {
    let address = common::free_port();
    let issuer = format!("http://{address}");
    let app = spawn_with(&[
        ("PORTCULLIS_BIND", &address.to_string()),
        ("PORTCULLIS_ISSUER", &issuer),
        ("PORTCULLIS_KEY_PUBLISH_AHEAD", "15m"),
    ])
    .await;
    let response = app.client.get(app.url("/.well-known/openid-configuration")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let document: Value = response.json().await?;
    assert_eq!(document["issuer"], issuer.as_str());
    assert_eq!(document["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "EdDSA"])
    );
    assert_eq!(document["portcullis_endpoints"]["login"], format!("{issuer}/v1/auth/login"));
    let (control, kids) = jwks(&app).await;
    assert_eq!(control, "public, max-age=300", "a third of KEY_PUBLISH_AHEAD");
    assert_eq!(kids.len(), 1);
    // Everything else stays uncacheable.
    let me = app.get("/v1/auth/me", "junk").await;
    assert_eq!(me.headers()["cache-control"], "no-store");

    // RFC 9068: client_id, and the time of the login, kept across refresh.
    let pair = app.signed_in("claims@example.com").await;
    let first = claims(str_of(&pair, "access_token"));
    assert_eq!(first["client_id"], "portcullis");
    let auth_time = first["auth_time"].as_i64().unwrap();
    assert!((auth_time - first["iat"].as_i64().unwrap()).abs() <= 1, "{first}");
    let refreshed = app.refreshed(str_of(&pair, "refresh_token")).await;
    assert_eq!(claims(str_of(&refreshed, "access_token"))["auth_time"], auth_time);

    // A real consumer of the document: authlib checks it, PyJWT verifies with its keys.
    let Some(mut verifier) = Verifier::start(&issuer, "portcullis") else { return Ok(()) };
    let verdict = verifier.verify(str_of(&refreshed, "access_token"));
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["claims"]["client_id"], "portcullis");
    Ok(())
}

#[tokio::test]
async fn a_client_id_of_its_own_is_in_every_token() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_CLIENT_ID", "billing-app")]).await;
    let pair = app.signed_in("client@example.com").await;
    assert_eq!(claims(str_of(&pair, "access_token"))["client_id"], "billing-app");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_caches_the_jwks_accepts_every_token_across_a_rotation() -> TestResult {
    // A 12 s lead: the JWKS may be cached 4 s; the instance picks the new key up within 5 s.
    let address = common::free_port();
    let issuer = format!("http://{address}");
    let app = spawn_with(&[
        ("PORTCULLIS_BIND", &address.to_string()),
        ("PORTCULLIS_ISSUER", &issuer),
        ("PORTCULLIS_KEY_PUBLISH_AHEAD", "12s"),
    ])
    .await;
    let Some(mut verifier) = Verifier::start(&issuer, "portcullis") else { return Ok(()) };
    app.register("rotation@example.com", common::PASSWORD).await;
    let login = || async {
        let pair = common::ok_json(app.login("rotation@example.com", common::PASSWORD).await).await;
        str_of(&pair, "access_token").to_owned()
    };
    let before = login().await;
    assert_eq!(verifier.verify(&before)["ok"], true);
    let old = kid(&before);

    rotate(&app, "12s").await;
    let rotated_at = Instant::now();
    let mut published_early = false;
    let mut signed_by_new = None;
    while rotated_at.elapsed() < Duration::from_secs(30) {
        let token = login().await;
        let verdict = verifier.verify(&token);
        assert_eq!(verdict["ok"], true, "{:?} after the rotation: {verdict}", rotated_at.elapsed());
        let (_, kids) = jwks(&app).await;
        if kid(&token) == old && kids.len() == 2 {
            published_early = true;
        }
        if kid(&token) != old {
            signed_by_new.get_or_insert(rotated_at.elapsed());
            if rotated_at.elapsed() > signed_by_new.unwrap() + Duration::from_secs(2) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(published_early, "the new key was in the JWKS while the old one still signed");
    let signed_after = signed_by_new.expect("the new key signs within the lead and a reload");
    assert!(signed_after >= Duration::from_secs(11), "signed after {signed_after:?}");
    // The old key stays published: tokens it signed are live for ACCESS_TOKEN_TTL.
    assert_eq!(verifier.verify(&before)["ok"], true);
    assert!(jwks(&app).await.1.contains(&old));
    Ok(())
}

#[tokio::test]
async fn an_old_key_is_deleted_once_no_token_it_signed_can_be_live() -> TestResult {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let vars = [("PORTCULLIS_ACCESS_TOKEN_TTL", "1s"), ("PORTCULLIS_KEY_PUBLISH_AHEAD", "0s")];
    let app = common::spawn_with_clock(&vars, clock.clone()).await;
    let pair = app.signed_in("expiry@example.com").await;
    let old = kid(str_of(&pair, "access_token"));
    rotate(&app, "0s").await;
    // A token lifetime and a reload interval after the new key took over, past the lead.
    assert!(jwks(&app).await.1.contains(&old));
    clock.advance(2 * RELOAD);
    let started = Instant::now();
    loop {
        let (_, kids) = jwks(&app).await;
        if !kids.contains(&old) && stored_keys(&app).await == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still published: {kids:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fresh = app.logged_in("expiry@example.com", common::PASSWORD).await;
    assert_ne!(kid(str_of(&fresh, "access_token")), old);
    Ok(())
}

#[tokio::test]
async fn instances_rotating_on_a_schedule_store_one_key_per_rotation() -> TestResult {
    let (storage, _owner) = common::new_storage().await;
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let vars = [("PORTCULLIS_KEY_ROTATE_EVERY", "10s"), ("PORTCULLIS_KEY_PUBLISH_AHEAD", "1s")];
    let first = common::spawn_in_with_clock(&storage, &vars, clock.clone()).await;
    let _second = common::spawn_in_with_clock(&storage, &vars, clock.clone()).await;
    // Each step of the clock is a rotation period: both instances reload, one key is stored.
    for rotations in 1..=2 {
        clock.advance(2 * RELOAD);
        let started = Instant::now();
        while stored_keys(&first).await < rotations + 1 {
            assert!(started.elapsed() < Duration::from_secs(10), "no scheduled rotation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let db = first.storage.db().await;
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&db).await?;
    let slots: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM secrets WHERE name LIKE 'scheduled key after %'")
            .fetch_one(&db)
            .await?;
    // Every key but the first of each algorithm came from one rotation slot; two instances made
    // no extra key.
    assert!((slots..=slots + 2).contains(&keys), "{keys} keys for {slots} rotations");
    let pair = first.signed_in("scheduled@example.com").await;
    assert_eq!(first.get("/v1/auth/me", str_of(&pair, "access_token")).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_new_key_signs_only_after_this_instance_has_published_it_for_the_lead() -> TestResult {
    // A lead shorter than the reload interval: the key's own `signs_at` has passed by the time
    // the instance first publishes it.
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let vars = [("PORTCULLIS_KEY_PUBLISH_AHEAD", "2s")];
    let app = common::spawn_with_clock(&vars, clock.clone()).await;
    let pair = app.signed_in("lead@example.com").await;
    let old = kid(str_of(&pair, "access_token"));
    rotate(&app, "2s").await;
    clock.advance(2 * RELOAD);
    // The reload that the clock's move wakes picks the key up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let (_, kids) = jwks(&app).await;
        if let Some(new) = kids.into_iter().find(|k| *k != old) {
            break new;
        }
        assert!(Instant::now() < deadline, "the new key never reached the JWKS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pair = app.logged_in("lead@example.com", common::PASSWORD).await;
    assert_eq!(kid(str_of(&pair, "access_token")), old, "signed with a key published just now");

    // The next reload, past the lead since this instance first published the key.
    clock.advance(RELOAD);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pair = app.logged_in("lead@example.com", common::PASSWORD).await;
        if kid(str_of(&pair, "access_token")) == new {
            break;
        }
        assert!(Instant::now() < deadline, "the new key never signed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
