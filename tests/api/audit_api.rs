//! The audit API and the trail's tamper evidence: own events, the admin trail with filters and
//! pages, and `audit verify` / `audit tail` on the same storage.

use crate::common;

use std::sync::Arc;

use common::{PASSWORD, TestApp, TestResult, assert_problem, spawn, str_of};
use portcullis::metrics::Metrics;
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_sees_their_own_events_newest_first() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let other = app.signed_in("bob@example.com").await;
    app.login("alice@example.com", "Wrong-Pass-1").await;
    let token = str_of(&pair, "access_token");
    let page = get_json(&app, "/v1/auth/events", token).await;
    assert_eq!(kinds(&page), ["login_failed", "login", "registration"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let event = &page["events"][1];
    for key in [
        "id",
        "type",
        "at",
        "user_id",
        "email",
        "ip",
        "user_agent",
        "request_id",
        "outcome",
        "detail",
    ] {
        assert!(event.get(key).is_some(), "missing {key}: {event}");
    }
    assert_eq!(event["email"], "alice@example.com");
    assert_eq!(event["outcome"], "success");
    // Another user's id in the query changes nothing: own events only.
    let bob_id = get_json(&app, "/v1/auth/me", str_of(&other, "access_token")).await["id"].clone();
    let path = format!("/v1/auth/events?user_id={}", bob_id.as_str().unwrap());
    assert_eq!(
        kinds(&get_json(&app, &path, token).await),
        ["login_failed", "login", "registration"]
    );
    Ok(())
}

#[tokio::test]
async fn an_events_request_id_is_the_responses() -> TestResult {
    let app = spawn().await;
    app.register("carol@example.com", PASSWORD).await;
    let login = app.login("carol@example.com", PASSWORD).await;
    let request_id = login.headers()["x-request-id"].to_str()?.to_owned();
    let pair: Value = login.json().await?;
    let page = get_json(&app, "/v1/auth/events?type=login", str_of(&pair, "access_token")).await;
    assert_eq!(page["events"][0]["request_id"], request_id.as_str());
    Ok(())
}

#[tokio::test]
async fn a_client_chosen_request_id_never_reaches_the_trail() -> TestResult {
    let app = spawn().await;
    app.register("cora@example.com", PASSWORD).await;
    let mut response_ids = Vec::new();
    let mut token = String::new();
    for _ in 0..2 {
        let login = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("x-request-id", "fixed")
            .json(&serde_json::json!({ "email": "cora@example.com", "password": PASSWORD }))
            .send()
            .await?;
        assert_eq!(login.status(), StatusCode::OK);
        response_ids.push(login.headers()["x-request-id"].to_str()?.to_owned());
        token = str_of(&login.json::<Value>().await?, "access_token").to_owned();
    }
    assert_ne!(response_ids[0], response_ids[1]);
    assert!(response_ids.iter().all(|id| id != "fixed"), "{response_ids:?}");
    let page = get_json(&app, "/v1/auth/events?type=login", &token).await;
    let recorded: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, [response_ids[1].as_str(), response_ids[0].as_str()], "newest first");
    Ok(())
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("dave@example.com").await;
    for _ in 0..3 {
        app.login("dave@example.com", "Wrong-Pass-1").await;
    }
    let token = str_of(&pair, "access_token");
    let mut seen = Vec::new();
    let mut path = "/v1/auth/events?limit=2".to_owned();
    loop {
        let page = get_json(&app, &path, token).await;
        assert!(page["events"].as_array().unwrap().len() <= 2);
        seen.extend(page["events"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/auth/events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "registration, login and three failed logins");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
    Ok(())
}

#[tokio::test]
async fn filters_by_type_and_time() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("erin@example.com").await;
    let token = str_of(&pair, "access_token");
    assert_eq!(
        kinds(&get_json(&app, "/v1/auth/events?type=registration", token).await),
        ["registration"]
    );
    let future = "2999-01-01T00:00:00Z";
    let path = format!("/v1/auth/events?since={future}");
    assert!(kinds(&get_json(&app, &path, token).await).is_empty());
    let path = format!("/v1/auth/events?until={future}&since=2000-01-01T00:00:00%2B02:00");
    assert_eq!(kinds(&get_json(&app, &path, token).await).len(), 2);
    Ok(())
}

#[tokio::test]
async fn bad_parameters_are_validation_errors() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("fred@example.com").await;
    let token = str_of(&pair, "access_token");
    for query in
        ["limit=0", "limit=201", "limit=ten", "since=yesterday", "type=coffee", "cursor=abc"]
    {
        let response = app.get(&format!("/v1/auth/events?{query}"), token).await;
        let body =
            assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        let name = query.split('=').next().unwrap();
        assert!(body["detail"].as_str().unwrap().contains(name), "{query}: {body}");
    }
    let anonymous = app.request(Method::GET, "/v1/auth/events", None, None).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}

#[tokio::test]
async fn the_admin_trail_is_for_admins_and_filters_by_user() -> TestResult {
    let app = spawn().await;
    common::create_admin(&app, "root@example.com").await;
    let admin: Value = app.login("root@example.com", PASSWORD).await.json().await?;
    let user = app.signed_in("gina@example.com").await;
    let forbidden = app.get("/v1/admin/audit", str_of(&user, "access_token")).await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;

    let admin_token = str_of(&admin, "access_token");
    let all = get_json(&app, "/v1/admin/audit", admin_token).await;
    assert_eq!(kinds(&all), ["login", "registration", "login", "registration"]);
    let gina = get_json(&app, "/v1/auth/me", str_of(&user, "access_token")).await;
    let path = format!("/v1/admin/audit?user_id={}", gina["id"].as_str().unwrap());
    let page = get_json(&app, &path, admin_token).await;
    assert_eq!(kinds(&page), ["login", "registration"]);
    assert!(page["events"].as_array().unwrap().iter().all(|e| e["user_id"] == gina["id"]));
    Ok(())
}

#[tokio::test]
async fn an_unlock_appears_in_the_users_own_events() -> TestResult {
    let app = common::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "2")]).await;
    let pair = app.signed_in("hal@example.com").await;
    for _ in 0..2 {
        app.login("hal@example.com", "Wrong-Pass-1").await;
    }
    assert_eq!(
        common::run_cli(&app, &["user", "unlock", "--email", "hal@example.com"]).await,
        Some(0)
    );
    let page = get_json(&app, "/v1/auth/events?limit=1", str_of(&pair, "access_token")).await;
    assert_eq!(kinds(&page), ["unlock"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_verifies_after_concurrent_writes_and_tampering_is_found() -> TestResult {
    let app = spawn().await;
    let emails: Vec<String> = (0..10).map(|i| format!("ivy{i}@example.com")).collect();
    futures::future::join_all(emails.iter().map(|e| app.register(e, PASSWORD))).await;
    futures::future::join_all(emails.iter().map(|e| app.login(e, "Wrong-Pass-1"))).await;
    futures::future::join_all(emails.iter().map(|e| app.login(e, PASSWORD))).await;
    let intact = cli(&app, &["audit", "verify"]).await;
    let stdout = String::from_utf8_lossy(&intact.stdout).into_owned();
    assert_eq!(intact.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("30 events"), "{stdout}");

    let pool = app.storage.db().await;
    sqlx::query("UPDATE audit_events SET detail = 'nothing to see' WHERE chain_seq = 5")
        .execute(&pool)
        .await?;
    let edited = cli(&app, &["audit", "verify"]).await;
    assert_eq!(edited.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&edited.stdout).contains("position 5: the event was changed"));
    Ok(())
}

#[tokio::test]
async fn removed_events_are_found_in_the_middle_and_at_the_end() -> TestResult {
    let app = spawn().await;
    app.signed_in("jay@example.com").await;
    app.signed_in("kim@example.com").await;
    let pool = app.storage.db().await;
    sqlx::query("DELETE FROM audit_events WHERE chain_seq = 4").execute(&pool).await?;
    let end = cli(&app, &["audit", "verify"]).await;
    assert_eq!(end.status.code(), Some(1), "the last event was removed");
    sqlx::query("DELETE FROM audit_events WHERE chain_seq = 2").execute(&pool).await?;
    let middle = cli(&app, &["audit", "verify"]).await;
    assert!(String::from_utf8_lossy(&middle.stdout).contains("position 3: expected position 2"));
    Ok(())
}

#[tokio::test]
async fn tail_prints_the_latest_events_as_json_lines() -> TestResult {
    let app = spawn().await;
    app.signed_in("lee@example.com").await;
    let output = cli(&app, &["audit", "tail", "--lines", "1"]).await;
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "login");
    Ok(())
}

/// C0, DEL, C1 and the bidirectional controls: never raw in audit output.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|c| common::is_raw_control(*c)).collect()
}

#[tokio::test]
async fn control_and_bidi_characters_are_escaped_in_the_trail() -> TestResult {
    let app = spawn().await;
    common::create_admin(&app, "root@example.com").await;
    let admin: Value = app.login("root@example.com", PASSWORD).await.json().await?;
    let agent = reqwest::header::HeaderValue::from_bytes("agent\u{9b}31m\u{202e}x".as_bytes())?;
    for email in ["mia@example.com", "evil\u{9b}\u{202e}\u{7f}@example.com"] {
        let body = serde_json::json!({ "email": email, "password": PASSWORD });
        for path in ["/v1/auth/register", "/v1/auth/login"] {
            app.client
                .post(app.url(path))
                .header("user-agent", agent.clone())
                .json(&body)
                .send()
                .await?;
        }
    }
    let response = app.get("/v1/admin/audit", str_of(&admin, "access_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await?;
    assert!(raw_controls(&text).is_empty(), "raw controls in {text}");
    let page: Value = serde_json::from_str(&text)?;
    let events = page["events"].as_array().unwrap();
    let registered = events.iter().find(|e| e["email"] == "mia@example.com").unwrap();
    assert_eq!(registered["user_agent"], "agent\\u{9b}31m\\u{202e}x");
    let failed = events.iter().find(|e| e["type"] == "login_failed").unwrap();
    assert_eq!(failed["email"], "evil\\u{9b}\\u{202e}\\u{7f}@example.com");
    assert_eq!(failed["user_agent"], "agent\\u{9b}31m\\u{202e}x");

    let tail = cli(&app, &["audit", "tail", "--lines", "20"]).await;
    assert_eq!(tail.status.code(), Some(0));
    let stdout = String::from_utf8(tail.stdout)?;
    assert!(raw_controls(&stdout).is_empty(), "raw controls in {stdout}");
    assert!(stdout.contains(r"evil\\u{9b}\\u{202e}\\u{7f}@example.com"), "{stdout}");
    Ok(())
}

const MASTER_KEY: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

/// `audit verify` with the master key, whatever the backend.
async fn verify_with_key(app: &TestApp) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_MASTER_KEY", MASTER_KEY)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .await
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn a_trail_rewritten_whole_with_its_head_fails_the_signed_head() -> TestResult {
    use portcullis::domain::Clock;
    use portcullis::domain::audit::chain;

    let app = common::spawn_with(&[("PORTCULLIS_MASTER_KEY", MASTER_KEY)]).await;
    app.signed_in("mallory@example.com").await;
    let settings = common::settings_for(&app.storage, &[("PORTCULLIS_MASTER_KEY", MASTER_KEY)]);
    let backends = portcullis::startup::open_backends(&settings, false).await?;
    let audit = portcullis::audit::Audit::new(backends.audit.clone(), Arc::new(Metrics::new()?))
        .with_head_keys(backends.audit_head_keys.clone());
    let signed = audit.sign_head(portcullis::domain::SystemClock.now()).await?;
    assert_eq!(signed, Some(2), "registration and login");
    let (status, stdout) = verify_with_key(&app).await;
    assert_eq!(status, Some(0), "{stdout}");
    assert!(stdout.contains("signed through position 2"), "{stdout}");

    // Rewrite the whole chain consistently, head included: every hash checks, only the
    // signature, made with a key the database never held, can tell.
    let links = backends.audit.links(0, 100).await?;
    let pool = app.storage.db().await;
    let mut previous = chain::GENESIS;
    for link in links {
        let mut event = link.event.clone();
        event.detail = Some("nothing happened".into());
        let seq = link.seq.unwrap();
        let hash = chain::link(&previous, seq, &event);
        sqlx::query(
            "UPDATE audit_events SET detail = $1, prev_hash = $2, hash = $3 WHERE chain_seq = $4",
        )
        .bind("nothing happened")
        .bind(previous.to_vec())
        .bind(hash.to_vec())
        .bind(seq)
        .execute(&pool)
        .await?;
        previous = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(previous.to_vec())
        .execute(&pool)
        .await?;
    let (status, stdout) = verify_with_key(&app).await;
    assert_eq!(status, Some(1), "{stdout}");
    assert!(stdout.contains("position 2: the trail differs from what was signed"), "{stdout}");
    Ok(())
}

/// The trail's head, signed in process with the master key, on the app's storage.
async fn head_signer(app: &TestApp) -> portcullis::audit::Audit {
    let settings = common::settings_for(&app.storage, &[("PORTCULLIS_MASTER_KEY", MASTER_KEY)]);
    let backends = portcullis::startup::open_backends(&settings, false).await.unwrap();
    portcullis::audit::Audit::new(backends.audit.clone(), Arc::new(Metrics::new().unwrap()))
        .with_head_keys(backends.audit_head_keys.clone())
}

/// A server whose clock stands `minutes` in the past, with the master key.
async fn spawn_in_the_past(minutes: i64) -> (TestApp, Arc<portcullis::domain::ManualClock>) {
    use portcullis::domain::Clock;
    let start = portcullis::domain::SystemClock.now() - chrono::Duration::minutes(minutes);
    let clock = Arc::new(portcullis::domain::ManualClock::starting_at(start));
    let app =
        common::spawn_with_clock(&[("PORTCULLIS_MASTER_KEY", MASTER_KEY)], clock.clone()).await;
    (app, clock)
}

#[tokio::test]
async fn a_trail_cut_at_its_end_with_its_signatures_fails_verify_once_two_heartbeats_have_passed()
-> TestResult {
    use portcullis::domain::Clock;
    let (app, clock) = spawn_in_the_past(10).await;
    let audit = head_signer(&app).await;
    app.signed_in("ann@example.com").await;
    assert_eq!(audit.sign_head(clock.now()).await?, Some(2));
    clock.advance(std::time::Duration::from_secs(60));
    app.signed_in("bob@example.com").await;
    assert_eq!(audit.sign_head(clock.now()).await?, Some(4));
    assert!(audit.verify(clock.now()).await?.problems.is_empty());

    // Someone with the database deletes the newest events and their signatures, and rewinds
    // the head: every hash and every signature left still checks.
    let pool = app.storage.db().await;
    sqlx::query("DELETE FROM audit_events WHERE chain_seq > 2").execute(&pool).await?;
    sqlx::query("DELETE FROM audit_head_signatures WHERE seq > 2").execute(&pool).await?;
    sqlx::query(
        "UPDATE audit_head SET seq = 2,
             hash = (SELECT hash FROM audit_events WHERE chain_seq = 2) WHERE id = 1",
    )
    .execute(&pool)
    .await?;
    let report = audit.verify(clock.now()).await?;
    assert!(report.problems.is_empty(), "within a heartbeat nothing shows: {report:?}");

    // Two heartbeats later (the command reads the system clock, 9 minutes on), it shows.
    let (status, stdout) = verify_with_key(&app).await;
    assert_eq!(status, Some(1), "{stdout}");
    assert!(stdout.contains("more than two heartbeats"), "{stdout}");
    // And no signer of this process signs over the cut.
    assert!(audit.sign_head(clock.now()).await.is_err(), "signed over a cut");
    Ok(())
}

#[tokio::test]
async fn an_idle_trail_verifies_while_its_heartbeats_go_on_and_keeps_one_signature_per_position()
-> TestResult {
    use portcullis::domain::Clock;
    let (app, clock) = spawn_in_the_past(10).await;
    let audit = head_signer(&app).await;
    app.signed_in("cid@example.com").await;
    assert_eq!(audit.sign_head(clock.now()).await?, Some(2));
    for _ in 0..10 {
        clock.advance(std::time::Duration::from_secs(60));
        assert_eq!(audit.sign_head(clock.now()).await?, Some(2), "a heartbeat");
    }
    let (status, stdout) = verify_with_key(&app).await;
    assert_eq!(status, Some(0), "{stdout}");
    assert!(stdout.contains("signed through position 2"), "{stdout}");
    let pool = app.storage.db().await;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_head_signatures").fetch_one(&pool).await?;
    assert!(rows <= 2, "the empty trail's and position 2's, not one a minute: {rows}");
    Ok(())
}

#[tokio::test]
async fn signatures_from_before_chaining_start_the_chain_and_still_verify() -> TestResult {
    use portcullis::domain::Clock;
    use portcullis::domain::audit::chain;
    let (app, clock) = spawn_in_the_past(5).await;
    let audit = head_signer(&app).await;
    app.signed_in("dee@example.com").await;
    // As a trail signed before chaining holds them: position and hash only, no link.
    let settings = common::settings_for(&app.storage, &[("PORTCULLIS_MASTER_KEY", MASTER_KEY)]);
    let key = portcullis::startup::open_backends(&settings, false)
        .await?
        .audit_head_keys
        .signing
        .unwrap();
    let pool = app.storage.db().await;
    sqlx::query("DELETE FROM audit_head_signatures").execute(&pool).await?;
    let hash: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE chain_seq = 2")
        .fetch_one(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO audit_head_signatures (seq, hash, signature, signed_at) VALUES (2, $1, $2, $3)",
    )
    .bind(hash.clone())
    .bind(chain::sign_head_unlinked(&key, 2, &hash))
    .bind(clock.now().timestamp_millis())
    .execute(&pool)
    .await?;
    assert!(audit.verify(clock.now()).await?.problems.is_empty());

    app.signed_in("eve@example.com").await;
    assert_eq!(audit.sign_head(clock.now()).await?, Some(4), "follows the old signature");
    clock.advance(std::time::Duration::from_secs(300));
    assert_eq!(audit.sign_head(clock.now()).await?, Some(4), "a heartbeat");
    let (status, stdout) = verify_with_key(&app).await;
    assert_eq!(status, Some(0), "{stdout}");
    assert!(stdout.contains("signed through position 4"), "{stdout}");
    Ok(())
}
