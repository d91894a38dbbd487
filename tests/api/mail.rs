//! The mail flows against a real SMTP peer on loopback (`common::smtp`): verification,
//! password reset, email change, deletion and notices; their failure cases and enumeration; and
//! the outbox's durability (a mail server that is away, a restart, two instances).

use crate::common;

use std::time::{Duration, Instant};

use common::smtp::{Received, SinkOptions, SmtpSink, link_token};
use common::{PASSWORD, TestApp, TestResult, assert_problem, ok_json, spawn_in, str_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const VERIFY: &str = "http://localhost:8080/verify-email?token=";
const RESET: &str = "http://localhost:8080/reset-password?token=";
const WAIT: Duration = Duration::from_secs(10);

async fn app_with_sink(vars: &[(&str, &str)]) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let url = format!("smtp://{}", sink.address);
    let mut all = vec![("PORTCULLIS_SMTP_URL", url.as_str())];
    all.extend_from_slice(vars);
    (common::spawn_with(&all).await, sink)
}

/// The messages to `to`, once `count` have arrived (at most `WAIT`).
async fn mail_to(sink: &SmtpSink, to: &str, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<Received> =
            sink.received().into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
        if mine.len() >= count || Instant::now() >= deadline {
            assert!(mine.len() >= count, "{count} messages to {to} expected, got {}", mine.len());
            return mine;
        }
        sink.wait_for(sink.received().len() + 1, Duration::from_millis(500)).await;
    }
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.post(path, body).await
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_address_once() -> TestResult {
    let (app, sink) = app_with_sink(&[]).await;
    let created = app.register("vera@example.com", PASSWORD).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.json::<Value>().await?["email_verified"], false);
    let mail = &mail_to(&sink, "vera@example.com", 1).await[0];
    assert!(mail.data.contains("From: portcullis <no-reply@localhost>"), "{}", mail.data);
    assert!(mail.data.contains("Subject: portcullis: confirm your email address"));
    assert!(mail.data.contains("Content-Type: text/plain; charset=utf-8"), "{}", mail.data);
    let token = link_token(&mail.data, VERIFY).expect("a verification link");
    assert!(token.len() >= 43, "256 bits in base64url");

    let response = post(&app, "/v1/auth/verify-email", json!({"token": token})).await;
    let request_id = response.headers()["x-request-id"].to_str()?.to_owned();
    let verified = ok_json(response).await;
    assert_eq!(verified["email_verified"], true);
    let pair = app.logged_in("vera@example.com", PASSWORD).await;
    let me = ok_json(app.get("/v1/auth/me", str_of(&pair, "access_token")).await).await;
    assert_eq!(me["email_verified"], true);
    let again = post(&app, "/v1/auth/verify-email", json!({"token": token})).await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let events = ok_json(app.get("/v1/auth/events", str_of(&pair, "access_token")).await).await;
    let events = events["events"].as_array().unwrap();
    let event = events.iter().find(|e| e["type"] == "email_verified");
    let event = event.expect("an email_verified event");
    assert_eq!(event["request_id"], request_id.as_str(), "the event names its request");
    Ok(())
}

#[tokio::test]
async fn with_verification_required_only_the_right_password_learns_the_address_is_unverified()
-> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "required")]).await;
    app.register("wren@example.com", PASSWORD).await;
    let wrong = app.login("wren@example.com", "Wrong-Horse-42").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let right = app.login("wren@example.com", PASSWORD).await;
    assert_problem(right, StatusCode::FORBIDDEN, "email_not_verified").await;
    let mail = &mail_to(&sink, "wren@example.com", 1).await[0];
    let token = link_token(&mail.data, VERIFY).unwrap();
    ok_json(post(&app, "/v1/auth/verify-email", json!({"token": token})).await).await;
    assert_eq!(app.login("wren@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn with_verification_off_nothing_is_sent() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    app.register("otto@example.com", PASSWORD).await;
    let resend = post(&app, "/v1/auth/verify-email/resend", json!({"email": "otto@example.com"}));
    assert_eq!(resend.await.status(), StatusCode::ACCEPTED);
    assert!(sink.wait_for(1, Duration::from_secs(2)).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_reset_ends_every_session_lifts_the_lock_verifies_and_sends_a_notice() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("rosa@example.com").await;
    for _ in 0..5 {
        app.login("rosa@example.com", "Wrong-Horse-42").await;
    }
    assert_eq!(app.login("rosa@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    let forgot = post(&app, "/v1/auth/password/forgot", json!({"email": "rosa@example.com"})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let mail = &mail_to(&sink, "rosa@example.com", 1).await[0];
    assert!(mail.data.contains("Subject: portcullis: reset your password"));
    let token = link_token(&mail.data, RESET).expect("a reset link");

    // A password the policy refuses leaves the link usable.
    let weak = post(&app, "/v1/auth/password/reset", json!({"token": token, "new_password": "x"}));
    assert_problem(weak.await, StatusCode::UNPROCESSABLE_ENTITY, "password_policy").await;
    let new = "Brand-New-Horse-77";
    let reset = post(&app, "/v1/auth/password/reset", json!({"token": token, "new_password": new}));
    assert_eq!(reset.await.status(), StatusCode::NO_CONTENT);
    let again = post(&app, "/v1/auth/password/reset", json!({"token": token, "new_password": new}));
    assert_problem(again.await, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let me = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "every session ended");
    assert_eq!(
        app.refresh(str_of(&pair, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("rosa@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.logged_in("rosa@example.com", new).await;
    let me = ok_json(app.get("/v1/auth/me", str_of(&fresh, "access_token")).await).await;
    assert_eq!(me["email_verified"], true, "a reset proves the address");
    let notices = mail_to(&sink, "rosa@example.com", 2).await;
    let notice = &notices[1];
    assert!(notice.data.contains("your password was reset"), "{}", notice.data);
    assert!(!notice.data.contains("token="), "a notice carries no token");
    Ok(())
}

#[tokio::test]
async fn a_new_reset_link_voids_the_older_and_a_link_works_only_where_it_belongs() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    app.register("ivo@example.com", PASSWORD).await;
    for _ in 0..2 {
        post(&app, "/v1/auth/password/forgot", json!({"email": "ivo@example.com"})).await;
    }
    let mails = mail_to(&sink, "ivo@example.com", 2).await;
    let tokens: Vec<String> = mails.iter().map(|m| link_token(&m.data, RESET).unwrap()).collect();
    for token in &tokens {
        let elsewhere = post(&app, "/v1/auth/verify-email", json!({"token": token})).await;
        assert_problem(elsewhere, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // Messages may arrive in any order: of the two links exactly one (the newer) still works,
    // although each was just presented at the wrong endpoint.
    let mut statuses = Vec::new();
    for token in &tokens {
        let body = json!({"token": token, "new_password": "Brand-New-Horse-77"});
        statuses.push(post(&app, "/v1/auth/password/reset", body).await.status());
    }
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::NO_CONTENT, StatusCode::UNAUTHORIZED]);
    Ok(())
}

#[tokio::test]
async fn a_reset_link_expires() -> TestResult {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let url = format!("smtp://{}", sink.address);
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str()), ("PORTCULLIS_EMAIL_VERIFICATION", "off")];
    let app = common::spawn_with_clock(&vars, clock.clone()).await;
    app.register("tess@example.com", PASSWORD).await;
    post(&app, "/v1/auth/password/forgot", json!({"email": "tess@example.com"})).await;
    let token = link_token(&mail_to(&sink, "tess@example.com", 1).await[0].data, RESET).unwrap();
    clock.advance(Duration::from_secs(30 * 60));
    let late = json!({"token": token, "new_password": "Brand-New-Horse-77"});
    let late = post(&app, "/v1/auth/password/reset", late).await;
    assert_problem(late, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}

/// What a client can see of an answer: status, body and headers but the per-request ones.
async fn visible(response: reqwest::Response) -> (StatusCode, Vec<String>, String) {
    let status = response.status();
    let mut headers: Vec<String> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or_default()))
        .collect();
    headers.sort();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn forgot_and_resend_answer_alike_for_known_and_unknown_emails() -> TestResult {
    let (app, sink) = app_with_sink(&[]).await;
    app.register("kim@example.com", PASSWORD).await;
    mail_to(&sink, "kim@example.com", 1).await;
    for path in ["/v1/auth/password/forgot", "/v1/auth/verify-email/resend"] {
        let known = visible(post(&app, path, json!({"email": "kim@example.com"})).await).await;
        let unknown = visible(post(&app, path, json!({"email": "nobody@example.com"})).await).await;
        assert_eq!(known, unknown, "{path}");
        assert_eq!(known.0, StatusCode::ACCEPTED);
    }
    // Timing: the medians of five of each are within 50 ms of one another.
    let mut medians = Vec::new();
    for email in ["kim@example.com", "nobody@example.com"] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            post(&app, "/v1/auth/password/forgot", json!({"email": email})).await;
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[2]);
    }
    let gap = medians[0].abs_diff(medians[1]);
    assert!(gap < Duration::from_millis(50), "{medians:?}");
    assert!(sink.received().iter().all(|m| m.to != ["nobody@example.com"]), "nothing to nobody");
    Ok(())
}

#[tokio::test]
async fn asking_for_someones_mail_never_spends_their_login_budget() -> TestResult {
    let vars = [
        ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "2/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let (app, _sink) = app_with_sink(&vars).await;
    app.register("b@example.com", PASSWORD).await;
    // Many requests for the owner's mail, from many addresses, each within its IP budget.
    for n in 0..8 {
        for path in ["/v1/auth/password/forgot", "/v1/auth/verify-email/resend"] {
            let request = app
                .client
                .post(app.url(path))
                .header("x-forwarded-for", format!("198.51.100.{n}"))
                .json(&json!({"email": "b@example.com"}));
            assert_eq!(request.send().await?.status(), StatusCode::ACCEPTED);
        }
    }
    assert_eq!(app.login("b@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn past_the_mail_budget_forgot_answers_the_same_and_sends_nothing() -> TestResult {
    let vars = [("PORTCULLIS_RATE_LIMIT_MAIL", "2/h"), ("PORTCULLIS_EMAIL_VERIFICATION", "off")];
    let (app, sink) = app_with_sink(&vars).await;
    app.register("b@example.com", PASSWORD).await;
    for _ in 0..4 {
        let accepted = post(&app, "/v1/auth/password/forgot", json!({"email": "b@example.com"}));
        assert_eq!(accepted.await.status(), StatusCode::ACCEPTED);
    }
    mail_to(&sink, "b@example.com", 2).await;
    // The outbox is empty once the two are delivered: the other two queued nothing.
    let db = app.storage.db().await;
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox").fetch_one(&db).await?;
    let tokens: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM email_tokens").fetch_one(&db).await?;
    assert_eq!((queued, tokens), (0, 2));
    Ok(())
}

#[tokio::test]
async fn an_email_change_is_confirmed_at_the_new_address_and_told_to_the_old() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("old@example.com").await;
    app.register("taken@example.com", PASSWORD).await;
    let access = str_of(&pair, "access_token");
    let change = |email: &str, password: &str| {
        let body = json!({"new_email": email, "password": password});
        app.request(Method::POST, "/v1/auth/email", Some(access), Some(body))
    };
    let wrong = change("new@example.com", "Wrong-Horse-42").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_problem(
        change("taken@example.com", PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_eq!(change("new@example.com", PASSWORD).await.status(), StatusCode::ACCEPTED);

    let confirmation = &mail_to(&sink, "new@example.com", 1).await[0];
    let token = link_token(&confirmation.data, VERIFY).expect("a confirmation link");
    let notice = &mail_to(&sink, "old@example.com", 1).await[0];
    assert!(notice.data.contains("being changed") && !notice.data.contains("token="));
    // Until the link is used the old address stays in force.
    assert_eq!(app.login("old@example.com", PASSWORD).await.status(), StatusCode::OK);
    let moved = ok_json(post(&app, "/v1/auth/verify-email", json!({"token": token})).await).await;
    assert_eq!(
        (moved["email"].as_str(), moved["email_verified"].as_bool()),
        (Some("new@example.com"), Some(true))
    );
    assert_eq!(app.login("new@example.com", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("old@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn deleting_the_account_needs_its_password_ends_its_sessions_and_frees_the_email()
-> TestResult {
    let (app, _sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("dana@example.com").await;
    let access = str_of(&pair, "access_token");
    let delete = |password: &str| {
        let body = json!({"password": password});
        app.request(Method::DELETE, "/v1/auth/me", Some(access), Some(body))
    };
    assert_problem(delete("Wrong-Horse-42").await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
    assert_eq!(delete(PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/auth/me", access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(str_of(&pair, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.register("dana@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let db = app.storage.db().await;
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE type = 'account_deleted'")
            .fetch_one(&db)
            .await?;
    assert_eq!(kept, 1, "the trail keeps the deletion");
    Ok(())
}

#[tokio::test]
async fn a_password_change_sends_a_notice() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("nell@example.com").await;
    let body = json!({"current_password": PASSWORD, "new_password": "Brand-New-Horse-77"});
    let changed = app
        .request(Method::POST, "/v1/auth/password", Some(str_of(&pair, "access_token")), Some(body))
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let notice = &mail_to(&sink, "nell@example.com", 1).await[0];
    assert!(notice.data.contains("your password was changed"), "{}", notice.data);
    Ok(())
}

#[tokio::test]
async fn a_message_waits_for_a_mail_server_that_is_down_and_survives_a_restart() -> TestResult {
    let address = common::free_port();
    let url = format!("smtp://{address}");
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str())];
    let mut first = common::spawn_with(&vars).await;
    first.register("late@example.com", PASSWORD).await;
    // The first tries fail (nothing listens); the service restarts before the server is there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.stop().await;
    let second = spawn_in(&first.storage, &vars).await;
    let sink = SmtpSink::start_on(address, SinkOptions::default()).await;
    let mail = &mail_to(&sink, "late@example.com", 1).await[0];
    assert!(link_token(&mail.data, VERIFY).is_some());
    drop(second);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_deliver_each_message_once() -> TestResult {
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let url = format!("smtp://{}", sink.address);
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str())];
    let a = common::spawn_with(&vars).await;
    let b = spawn_in(&a.storage, &vars).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.register(&format!("twin{i}@example.com"), PASSWORD).await;
    }
    assert_eq!(sink.wait_for(10, WAIT).await.len(), 10);
    // Give a second delivery every chance to show.
    assert_eq!(sink.wait_for(11, Duration::from_secs(3)).await.len(), 10, "each message once");
    Ok(())
}

#[tokio::test]
async fn without_smtp_the_message_is_a_file_in_the_data_directory() -> TestResult {
    let app = common::spawn().await;
    app.register("file@example.com", PASSWORD).await;
    let dir = app.data_dir.join("mail");
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries.flatten().find(|e| e.path().extension().is_some_and(|x| x == "eml"))
        });
        if let Some(entry) = found {
            break std::fs::read_to_string(entry.path())?;
        }
        assert!(Instant::now() < deadline, "no .eml under {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("To: file@example.com"), "{text}");
    assert!(text.contains("Content-Transfer-Encoding: 7bit"), "links stay whole: {text}");
    assert!(link_token(&text.replace("\r\n", "\n"), VERIFY).is_some(), "{text}");
    Ok(())
}

#[tokio::test]
async fn no_token_is_stored_in_clear() -> TestResult {
    let key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let sink = SmtpSink::start(SinkOptions::default()).await;
    // The server is reached only after the messages are queued, so they sit in the outbox.
    let parked = common::free_port();
    let url = format!("smtp://{parked}");
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str()), ("PORTCULLIS_MASTER_KEY", key)];
    let mut app = common::spawn_with(&vars).await;
    app.register("safe@example.com", PASSWORD).await;
    post(&app, "/v1/auth/password/forgot", json!({"email": "safe@example.com"})).await;
    let db = app.storage.db().await;
    let queued: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT message FROM mail_outbox").fetch_all(&db).await?;
    assert_eq!(queued.len(), 2);
    app.stop().await;
    let vars = [
        ("PORTCULLIS_SMTP_URL", format!("smtp://{}", sink.address)),
        ("PORTCULLIS_MASTER_KEY", key.to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _again = spawn_in(&app.storage, &vars).await;
    let mails = mail_to(&sink, "safe@example.com", 2).await;
    for mail in mails {
        let token =
            link_token(&mail.data, VERIFY).or_else(|| link_token(&mail.data, RESET)).unwrap();
        for stored in &queued {
            let text = String::from_utf8_lossy(stored);
            assert!(!text.contains(&token) && !text.contains("safe@example.com"), "sealed");
        }
        let hashes: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT token_hash FROM email_tokens").fetch_all(&db).await?;
        assert!(hashes.iter().all(|h| h != token.as_bytes()), "only hashes");
    }
    // A message leaves the outbox right after the server accepts it.
    let deadline = Instant::now() + WAIT;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox").fetch_one(&db).await?;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "delivered messages leave the outbox: {left} left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn links_come_from_the_templates_never_from_the_request_headers() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    app.register("host@example.com", PASSWORD).await;
    let forgot = app
        .client
        .post(app.url("/v1/auth/password/forgot"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example;proto=https")
        .json(&json!({"email": "host@example.com"}))
        .send()
        .await?;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let mail = &mail_to(&sink, "host@example.com", 1).await[0];
    assert!(link_token(&mail.data, RESET).is_some(), "{}", mail.data);
    assert!(!mail.data.contains("evil.example"), "{}", mail.data);
    Ok(())
}

#[tokio::test]
async fn a_message_is_given_up_after_mail_retry_for_with_a_metric() -> TestResult {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let nobody = format!("smtp://{}", common::free_port());
    let vars = [("PORTCULLIS_SMTP_URL", nobody.as_str()), ("PORTCULLIS_MAIL_RETRY_FOR", "1h")];
    let app = common::spawn_with_clock(&vars, clock.clone()).await;
    app.register("gone@example.com", PASSWORD).await;
    assert_eq!(app.metric("portcullis_mail_queued_total").await, 1.0);
    // The tries fail while the clock stands; past MAIL_RETRY_FOR the next one gives up.
    clock.advance(Duration::from_secs(3_601));
    let deadline = Instant::now() + WAIT;
    while app.metric("portcullis_mail_failed_total").await < 1.0 {
        assert!(Instant::now() < deadline, "the message was not given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.metric("portcullis_mail_sent_total").await, 0.0);
    let db = app.storage.db().await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox").fetch_one(&db).await?;
    assert_eq!(left, 0, "a message given up leaves the outbox");
    Ok(())
}

/// Asks for an email change of the signed-in user to `new`; returns the confirmation token.
async fn pending_email_change(app: &TestApp, sink: &SmtpSink, access: &str, new: &str) -> String {
    let body = json!({"new_email": new, "password": PASSWORD});
    let asked = app.request(Method::POST, "/v1/auth/email", Some(access), Some(body)).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let mails = mail_to(sink, new, 1).await;
    link_token(&mails.last().unwrap().data, VERIFY).expect("a confirmation link")
}

#[tokio::test]
async fn a_pending_email_change_dies_when_the_owner_takes_the_account_back() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    // Each way the owner can take the account back, against a link an attacker who knew the
    // password asked for first.
    for (n, action) in ["password change", "logout-all", "reset", "totp"].iter().enumerate() {
        let owner = format!("owner{n}@example.com");
        let attacker = format!("attacker{n}@example.net");
        let pair = app.signed_in(&owner).await;
        let access = str_of(&pair, "access_token").to_owned();
        let token = pending_email_change(&app, &sink, &access, &attacker).await;
        match *action {
            "password change" => {
                let body = json!({"current_password": PASSWORD, "new_password": "Taken-Back-99"});
                let changed =
                    app.request(Method::POST, "/v1/auth/password", Some(&access), Some(body)).await;
                assert_eq!(changed.status(), StatusCode::NO_CONTENT);
            }
            "logout-all" => {
                let done =
                    app.request(Method::POST, "/v1/auth/logout-all", Some(&access), None).await;
                assert_eq!(done.status(), StatusCode::NO_CONTENT);
            }
            "reset" => {
                post(&app, "/v1/auth/password/forgot", json!({"email": owner})).await;
                let mails = mail_to(&sink, &owner, 2).await;
                let reset = mails.iter().find_map(|m| link_token(&m.data, RESET)).unwrap();
                let body = json!({"token": reset, "new_password": "Taken-Back-99"});
                let done = post(&app, "/v1/auth/password/reset", body).await;
                assert_eq!(done.status(), StatusCode::NO_CONTENT);
            }
            _ => {
                turn_totp_on(&app, &access, PASSWORD, 0).await;
            }
        }
        let used = post(&app, "/v1/auth/verify-email", json!({"token": token})).await;
        assert_problem(used, StatusCode::UNAUTHORIZED, "invalid_token").await;
        // The account stays at the owner's address.
        let login = app.login(&attacker, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "{action}");
    }
    Ok(())
}

#[tokio::test]
async fn a_pending_reset_link_dies_with_a_password_change() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("rita@example.com").await;
    post(&app, "/v1/auth/password/forgot", json!({"email": "rita@example.com"})).await;
    let mails = mail_to(&sink, "rita@example.com", 1).await;
    let reset = link_token(&mails[0].data, RESET).expect("a reset link");
    let body = json!({"current_password": PASSWORD, "new_password": "Taken-Back-99"});
    let access = str_of(&pair, "access_token");
    let changed = app.request(Method::POST, "/v1/auth/password", Some(access), Some(body)).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let body = json!({"token": reset, "new_password": "Attacker-Chose-1"});
    let used = post(&app, "/v1/auth/password/reset", body).await;
    assert_problem(used, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.login("rita@example.com", "Taken-Back-99").await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_reset_that_first_proves_the_address_removes_the_factors_added_before_it() -> TestResult {
    let (app, sink) = app_with_sink(&[]).await;
    // The attacker registers the victim's address and adds TOTP; it stays unverified.
    let pair = app.signed_in("victim@example.com").await;
    turn_totp_on(&app, str_of(&pair, "access_token"), PASSWORD, 0).await;
    let attackers_device = str_of(&pair, "device_token").to_owned();

    // The victim resets the password through the mail and signs in with the password alone.
    post(&app, "/v1/auth/password/forgot", json!({"email": "victim@example.com"})).await;
    // The verification link, the TOTP notice, the reset link.
    let mails = mail_to(&sink, "victim@example.com", 3).await;
    let reset = mails.iter().find_map(|m| link_token(&m.data, RESET)).expect("a reset link");
    let first_reset = reset.clone();
    let body = json!({"token": reset, "new_password": "Owners-Own-Horse-77"});
    assert_eq!(post(&app, "/v1/auth/password/reset", body).await.status(), StatusCode::NO_CONTENT);
    let signed_in = app.logged_in("victim@example.com", "Owners-Own-Horse-77").await;
    let me = ok_json(app.get("/v1/auth/me", str_of(&signed_in, "access_token")).await).await;
    assert_eq!(me["mfa"], json!([]), "{me}");
    assert_eq!(me["email_verified"], true);
    // The attacker's device token no longer spares a lockout: it is forgotten.
    let db = app.storage.db().await;
    let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE token_hash = $1")
        .bind(portcullis_token_hash(&attackers_device))
        .fetch_one(&db)
        .await?;
    assert_eq!(devices, 0);
    let notices = mail_to(&sink, "victim@example.com", 4).await;
    let notice = notices.iter().find(|m| m.data.contains("your password was reset")).unwrap();
    assert!(notice.data.contains("first proof"), "{}", notice.data);

    // A reset of a verified account keeps its factors.
    let access = str_of(&signed_in, "access_token");
    turn_totp_on(&app, access, "Owners-Own-Horse-77", 1).await;
    post(&app, "/v1/auth/password/forgot", json!({"email": "victim@example.com"})).await;
    let mails = mail_to(&sink, "victim@example.com", 6).await;
    let reset = mails
        .iter()
        .filter_map(|m| link_token(&m.data, RESET))
        .find(|token| *token != first_reset)
        .expect("a second reset link");
    let body = json!({"token": reset, "new_password": "Owners-Next-Horse-78"});
    assert_eq!(post(&app, "/v1/auth/password/reset", body).await.status(), StatusCode::NO_CONTENT);
    let login = app.login("victim@example.com", "Owners-Next-Horse-78").await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "mfa_required").await;
    Ok(())
}

/// Turns TOTP on for the session of `access` with a code `steps` after the current 30 s step of
/// the wall clock (the server's); returns the secret.
async fn turn_totp_on(app: &TestApp, access: &str, password: &str, steps: i64) -> Vec<u8> {
    let body = json!({"password": password});
    let started = app.request(Method::POST, "/v1/auth/mfa/totp", Some(access), Some(body)).await;
    let started = ok_json(started).await;
    let secret = common::totp::base32_decode(str_of(&started, "secret")).expect("base32");
    let code = common::totp::code_at(&secret, unix_now() + 30 * steps);
    let body = json!({"code": code});
    let confirmed =
        app.request(Method::POST, "/v1/auth/mfa/totp/confirm", Some(access), Some(body)).await;
    ok_json(confirmed).await;
    secret
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// The hash under which the store keeps a token: SHA-256 of its text.
fn portcullis_token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

#[tokio::test]
async fn new_recovery_codes_send_a_notice() -> TestResult {
    let (app, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let pair = app.signed_in("nora@example.com").await;
    let access = str_of(&pair, "access_token").to_owned();
    let secret = turn_totp_on(&app, &access, PASSWORD, 0).await;
    let now = unix_now();
    let body = json!({"password": PASSWORD, "code": common::totp::code_at(&secret, now + 30)});
    let codes =
        app.request(Method::POST, "/v1/auth/mfa/recovery-codes", Some(&access), Some(body)).await;
    ok_json(codes).await;
    let mails = mail_to(&sink, "nora@example.com", 2).await;
    assert!(
        mails.iter().any(|m| m.data.contains("recovery codes were replaced")),
        "{:?}",
        mails.iter().map(|m| &m.data).collect::<Vec<_>>()
    );
    Ok(())
}
