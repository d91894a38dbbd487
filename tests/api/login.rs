//! Login over HTTP: the token pair, no user enumeration, and concurrency.

use crate::common;

use common::{PASSWORD, TestResult, assert_problem, spawn, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn login_returns_a_token_pair_with_a_device_token() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    assert_eq!(pair["refresh_expires_in"], 14 * 86_400);
    // The refresh token names its owner (22 characters, which route it on a Redis Cluster)
    // before its 256 random bits (43 characters).
    let (owner, random) = str_of(&pair, "refresh_token").split_once('.').unwrap();
    assert_eq!((owner.len(), random.len()), (22, 43));
    assert_eq!(str_of(&pair, "device_token").len(), 43);
    assert_eq!(str_of(&pair, "access_token").split('.').count(), 3);
    Ok(())
}

#[tokio::test]
async fn the_access_token_carries_the_contract_claims() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let header = jsonwebtoken::decode_header(str_of(&pair, "access_token"))?;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await?.json().await?;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref());
    assert_eq!(key.map(|k| &k["alg"]), Some(&json!("EdDSA")), "{jwks}");
    let payload = str_of(&pair, "access_token").split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    for claim in ["iss", "aud", "sub", "sid", "iat", "exp", "jti", "roles"] {
        assert!(claims.get(claim).is_some(), "missing {claim}: {claims}");
    }
    assert_eq!(claims["iss"], "http://localhost:8080", "ISSUER's default");
    assert_eq!(claims["aud"], "portcullis");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    Ok(())
}

#[tokio::test]
async fn me_answers_the_signed_in_user() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("Alice@Example.com").await;
    let response = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await?;
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["roles"], json!(["user"]));
    Ok(())
}

#[tokio::test]
async fn login_is_case_insensitive_on_the_email() -> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("bob@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    assert_eq!(app.login(" BOB@Example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_identically() -> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("carol@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let mut bodies = Vec::new();
    for (email, password) in [
        ("carol@example.com", "Wrong-Password-1"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.headers().get("www-authenticate"), None);
        let mut body =
            assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        body.as_object_mut().unwrap().remove("request_id");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
    Ok(())
}

#[tokio::test]
async fn an_overlong_password_at_login_is_invalid_credentials() -> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("dave@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let long = "A1!a".repeat(33);
    let response = app.login("dave@example.com", &long).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    Ok(())
}

#[tokio::test]
async fn a_known_device_token_is_returned_unchanged() -> TestResult {
    let app = spawn().await;
    let first = app.signed_in("erin@example.com").await;
    let device = str_of(&first, "device_token");
    let body = json!({ "email": "erin@example.com", "password": PASSWORD, "device_token": device });
    let second = common::ok_json(app.post("/v1/auth/login", body).await).await;
    assert_eq!(str_of(&second, "device_token"), device);
    // Another user's device token is not adopted.
    let other = app.signed_in("fred@example.com").await;
    let body = json!({ "email": "fred@example.com", "password": PASSWORD, "device_token": device });
    let third = common::ok_json(app.post("/v1/auth/login", body).await).await;
    assert_ne!(str_of(&third, "device_token"), device);
    assert_ne!(str_of(&third, "device_token"), str_of(&other, "device_token"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_logins_all_succeed() -> TestResult {
    // Ten accounts, five logins each at once: as many per account as the lockout threshold, the
    // most that may run their password checks at the same time.
    let app = spawn().await;
    for i in 0..10 {
        assert_eq!(
            app.register(&format!("user{i}@example.com"), PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
    let emails: Vec<String> = (0..50).map(|i| format!("user{}@example.com", i % 10)).collect();
    let responses = futures::future::join_all(emails.iter().map(|e| app.login(e, PASSWORD))).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_served_during_a_login_flood() -> TestResult {
    // Hashing is bounded and off the async threads: while a credential-stuffing flood with
    // real-cost hashes holds every hashing slot and has checks queued behind them, a refresh,
    // which never hashes, is still answered.
    let app = common::spawn_with(&[
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "19456"),
        ("PORTCULLIS_ARGON2_ITERATIONS", "2"),
    ])
    .await;
    let pair = app.signed_in("hal@example.com").await;
    let waiting = "portcullis_password_hashes_waiting";
    let flood = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/v1/auth/login");
        async move {
            let attempts = (0..40).map(|i| {
                let body =
                    json!({"email": format!("victim{i}@example.com"), "password": "Guess-Pass-99"});
                client.post(&url).json(&body).send()
            });
            let responses = futures::future::join_all(attempts).await;
            responses.into_iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == 401)).count()
        }
    });
    // The flood is under way once checks queue for a hashing slot.
    while app.metric(waiting).await == 0.0 {
        assert!(!flood.is_finished(), "no check ever queued: the test proves nothing");
        tokio::task::yield_now().await;
    }
    let refreshed = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // Checks are still queued after the refresh was answered: it did not wait for the flood.
    let still_waiting = app.metric(waiting).await;
    assert!(still_waiting > 0.0, "the flood had drained before the refresh was answered");
    assert_eq!(flood.await?, 40);
    assert_eq!(app.metric(waiting).await, 0.0, "every queued check left the queue");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hashing_queue_a_flood_is_refused_at_once_with_retry_after() -> TestResult {
    // More logins at once than the hashing slots and their queue hold: the excess is refused
    // with 503 and `Retry-After` before any lookup, and every other attempt is checked as usual.
    let app = common::spawn_with(&[
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "19456"),
        ("PORTCULLIS_ARGON2_ITERATIONS", "2"),
        // The 400 connections all come from 127.0.0.1.
        ("PORTCULLIS_MAX_CONNECTIONS_PER_IP", "1000"),
    ])
    .await;
    let attempts = (0..400).map(|i| {
        let body = json!({"email": format!("victim{i}@example.com"), "password": "Guess-Pass-99"});
        app.client.post(app.url("/v1/auth/login")).json(&body).send()
    });
    let responses = futures::future::join_all(attempts).await;
    let (mut refused, mut checked) = (0, 0);
    for response in responses {
        let response = response?;
        match response.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "the queue never filled: the test proves nothing");
    assert!(checked > 0, "nothing was checked");
    assert!(app.metric("portcullis_refusals_total{reason=\"hashing_queue_full\"}").await > 0.0);
    Ok(())
}
