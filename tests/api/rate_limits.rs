//! Rate limits: per client IP, per account, per user for reads; the 429 and its headers; the
//! client IP behind trusted and untrusted proxies.

use crate::common;

use common::{PASSWORD, TestApp, TestResult, assert_problem, spawn_with, str_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn login_from(
    app: &TestApp,
    forwarded_for: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/auth/login"));
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.json(&json!({ "email": email, "password": password })).send().await.unwrap()
}

#[tokio::test]
async fn the_sixth_request_from_one_ip_is_refused_with_the_headers() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_IP", "5/min")]).await;
    for i in 0..5 {
        let response = app.login(&format!("user{i}@example.com"), PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let refused = app.login("user9@example.com", PASSWORD).await;
    let header = |name: &str| refused.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("retry-after"), "12", "one unit of 5/min comes back every 12 s");
    assert_eq!(header("ratelimit-limit"), "5");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert_eq!(header("ratelimit-reset"), "12");
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    Ok(())
}

#[tokio::test]
async fn credential_endpoints_share_the_ip_budget() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_IP", "3/min")]).await;
    assert_eq!(app.register("alice@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let pair: Value = app.login("alice@example.com", PASSWORD).await.json().await?;
    assert_eq!(app.refresh(str_of(&pair, "refresh_token")).await.status(), StatusCode::OK);
    let refused = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let refused = app.register("bob@example.com", PASSWORD).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    Ok(())
}

#[tokio::test]
async fn an_account_budget_holds_across_client_ips() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "3/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "100"),
    ])
    .await;
    for i in 0..3 {
        let ip = format!("198.51.100.{i}");
        let response = login_from(&app, Some(&ip), "carol@example.com", "Wrong-Pass-1").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = login_from(&app, Some("203.0.113.50"), "Carol@Example.com", "Wrong-Pass-1").await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let other = login_from(&app, Some("203.0.113.50"), "dave@example.com", "Wrong-Pass-1").await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED, "other accounts keep their budget");
    Ok(())
}

#[tokio::test]
async fn reads_have_a_per_user_budget_of_their_own() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_READS", "3/min"),
        ("PORTCULLIS_RATE_LIMIT_IP", "10/min"),
    ])
    .await;
    let alice = app.signed_in("alice@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let alice_token = str_of(&alice, "access_token");
    for _ in 0..3 {
        assert_eq!(app.get("/v1/auth/me", alice_token).await.status(), StatusCode::OK);
    }
    let refused = app.get("/v1/auth/sessions", alice_token).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // A busy office behind one address: another user's reads are not starved, and reads do not
    // spend the address's credential budget.
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/auth/me", str_of(&bob, "access_token")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.refresh(str_of(&bob, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_IP", "2/min")]).await;
    for i in 0..2 {
        let ip = format!("198.51.100.{i}");
        let response = login_from(&app, Some(&ip), &format!("u{i}@example.com"), PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = login_from(&app, Some("203.0.113.9"), "u9@example.com", PASSWORD).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_IP", "2/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    for ip in ["198.51.100.1", "198.51.100.1"] {
        let response =
            login_from(&app, Some(&format!("6.6.6.6, {ip}")), "x@example.com", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The left-most entry is the client's to forge; the right-most untrusted hop is what counts.
    let refused = login_from(&app, Some("7.7.7.7, 198.51.100.1"), "x@example.com", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = login_from(&app, Some("198.51.100.2"), "x@example.com", PASSWORD).await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    // The proxy itself, sending no header, is a client of its own.
    assert_eq!(
        login_from(&app, None, "x@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_sessions_show_the_client_address() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.register("erin@example.com", PASSWORD).await;
    let pair: Value =
        login_from(&app, Some("2001:db8::7"), "erin@example.com", PASSWORD).await.json().await?;
    let list: Value =
        app.get("/v1/auth/sessions", str_of(&pair, "access_token")).await.json().await?;
    assert_eq!(list["sessions"][0]["ip"], "2001:db8::7");
    Ok(())
}

#[tokio::test]
async fn a_limited_login_with_the_right_password_does_nothing() -> TestResult {
    // Registration and the first login spend the email's budget of two.
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_ACCOUNT", "2/min")]).await;
    let pair = app.signed_in("fred@example.com").await;
    let hashes_before = app.metric("portcullis_password_hashes_total").await;
    let refused = app.login("fred@example.com", PASSWORD).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // No session was opened, and no login was attempted: nothing was checked, so nothing was
    // hashed (a verification always ends in a login or login_failed event).
    let list: Value =
        app.get("/v1/auth/sessions", str_of(&pair, "access_token")).await.json().await?;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    let pool = app.storage.db().await;
    let logins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE type LIKE 'login%'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(logins, 1, "only the first login was checked");
    let hashes_after = app.metric("portcullis_password_hashes_total").await;
    assert_eq!(hashes_after, hashes_before, "the refused login hashed nothing");
    assert!(hashes_before >= 2.0, "registration and login hashed: the counter works");
    Ok(())
}

#[tokio::test]
async fn rate_limited_attempts_do_not_count_towards_lockout() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_IP", "2/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "3"),
    ])
    .await;
    let register = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({ "email": "gina@example.com", "password": PASSWORD }))
        .send()
        .await?;
    assert_eq!(register.status(), StatusCode::CREATED);
    // Two failures from one address spend its budget; ten more are refused there.
    for _ in 0..2 {
        let response =
            login_from(&app, Some("203.0.113.1"), "gina@example.com", "Wrong-Pass-1").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..10 {
        let response =
            login_from(&app, Some("203.0.113.1"), "gina@example.com", "Wrong-Pass-1").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // Had the refusals counted, the threshold of three would have locked the email.
    let elsewhere = login_from(&app, Some("203.0.113.2"), "gina@example.com", PASSWORD).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
    drop(app.request(Method::GET, "/healthz", None, None).await);
    Ok(())
}

#[tokio::test]
async fn ipv6_clients_share_the_budget_of_their_slash_64() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_IP", "1/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let first = login_from(&app, Some("2001:db8:1:2::1"), "a@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let same_block =
        login_from(&app, Some("2001:db8:1:2:ffff::9"), "b@example.com", PASSWORD).await;
    assert_eq!(same_block.status(), StatusCode::TOO_MANY_REQUESTS);
    let next_block = login_from(&app, Some("2001:db8:1:3::1"), "c@example.com", PASSWORD).await;
    assert_eq!(next_block.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_known_device_has_a_login_budget_strangers_cannot_spend() -> TestResult {
    let app = spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "3/min"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let owner = app.signed_in("owner@example.com").await;
    let device = str_of(&owner, "device_token").to_owned();
    // Strangers from many addresses spend the account's budget (registration and the owner's
    // first login took from it too).
    let mut spent = false;
    for n in 0..5 {
        let from = format!("198.51.100.{n}");
        let response = login_from(&app, Some(&from), "owner@example.com", "Wrong-Pass-1").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            spent = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(spent, "the account budget of 3/min ran out");
    let refused = login_from(&app, Some("198.51.100.9"), "owner@example.com", PASSWORD).await;
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The owner's device has a budget of its own.
    let body =
        json!({ "email": "owner@example.com", "password": PASSWORD, "device_token": device });
    let response = app.post("/v1/auth/login", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}
