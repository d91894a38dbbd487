//! Registration over HTTP: the user object, unique emails, and the password policy.

use crate::common;

use common::{PASSWORD, TestResult, assert_problem, spawn};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn registration_returns_the_normalised_user_object() -> TestResult {
    let app = spawn().await;
    let response = app.register("  Alice@Example.COM ", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await?;
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["roles"], json!(["user"]));
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().unwrap()).is_ok());
    assert!(user.get("password_hash").is_none() && user.get("access_token").is_none());
    Ok(())
}

#[tokio::test]
async fn emails_are_unique_case_insensitively() -> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("bob@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let again = app.register("BOB@example.com", "Another-Pass-77").await;
    assert_problem(again, StatusCode::CONFLICT, "email_taken").await;
    Ok(())
}

#[tokio::test]
async fn every_violated_rule_is_listed() -> TestResult {
    let app = spawn().await;
    let body = assert_problem(
        app.register("carol@example.com", "abc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_policy",
    )
    .await;
    assert_eq!(
        body["violations"],
        json!(["too_short", "missing_uppercase", "missing_digit", "missing_special"])
    );
    Ok(())
}

#[tokio::test]
async fn common_passwords_are_refused() -> TestResult {
    let app = spawn().await;
    for password in ["P@ssw0rd", "Password1!"] {
        let body = assert_problem(
            app.register("dave@example.com", password).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_policy",
        )
        .await;
        assert_eq!(body["violations"], json!(["too_common"]), "{password}");
    }
    Ok(())
}

#[tokio::test]
async fn passwords_containing_the_email_are_refused() -> TestResult {
    let app = spawn().await;
    let body = assert_problem(
        app.register("erin@example.com", "My-ERIN-pass-1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_policy",
    )
    .await;
    assert_eq!(body["violations"], json!(["contains_email"]));
    Ok(())
}

#[tokio::test]
async fn an_overlong_password_is_refused_and_nothing_is_stored() -> TestResult {
    let app = spawn().await;
    let long = format!("Aa1!{}", "x".repeat(125));
    assert_eq!(long.chars().count(), 129);
    let body = assert_problem(
        app.register("frank@example.com", &long).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_policy",
    )
    .await;
    assert_eq!(body["violations"], json!(["too_long"]));
    // Nothing was stored: the address is still free.
    assert_eq!(app.register("frank@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    Ok(())
}

#[tokio::test]
async fn a_128_character_password_is_accepted() -> TestResult {
    let app = spawn().await;
    let long = format!("Aa1!{}", "xy".repeat(62));
    assert_eq!(long.chars().count(), 128);
    assert_eq!(app.register("gina@example.com", &long).await.status(), StatusCode::CREATED);
    assert_eq!(app.login("gina@example.com", &long).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn invalid_emails_fail_validation() -> TestResult {
    let app = spawn().await;
    for email in ["not-an-email", "a@b", "", &format!("{}@example.com", "a".repeat(300))] {
        let response = app.register(email, PASSWORD).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    Ok(())
}

#[tokio::test]
async fn nist_policy_asks_for_length_instead_of_composition() -> TestResult {
    let app = common::spawn_with(&[("PORTCULLIS_PASSWORD_POLICY", "nist")]).await;
    let short = app.register("hal@example.com", "Short-Pass-1").await;
    let body = assert_problem(short, StatusCode::UNPROCESSABLE_ENTITY, "password_policy").await;
    assert_eq!(body["violations"], json!(["too_short"]));
    let phrase = app.register("hal@example.com", "plain lower case phrase").await;
    assert_eq!(phrase.status(), StatusCode::CREATED);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_registrations_all_succeed() -> TestResult {
    let app = spawn().await;
    let attempts = (0..50).map(|i| {
        let app = &app;
        async move { app.register(&format!("user{i}@example.com"), PASSWORD).await.status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    Ok(())
}

#[tokio::test]
async fn emails_that_read_the_same_are_one_account() -> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("straße@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let folded = app.register("STRASSE@example.com", "Another-Pass-77").await;
    assert_problem(folded, StatusCode::CONFLICT, "email_taken").await;

    let idn = app.register("user@bücher.example", PASSWORD).await;
    assert_eq!(idn.status(), StatusCode::CREATED);
    let punycode = app.register("user@xn--bcher-kva.example", "Another-Pass-77").await;
    assert_problem(punycode, StatusCode::CONFLICT, "email_taken").await;
    // Either spelling signs in to the one account.
    assert_eq!(app.login("user@xn--bcher-kva.example", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.login("USER@BÜCHER.example", PASSWORD).await.status(), StatusCode::OK);

    assert_eq!(app.register("σας@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let sigma = app.register("ΣΑΣ@example.com", "Another-Pass-77").await;
    assert_problem(sigma, StatusCode::CONFLICT, "email_taken").await;
    Ok(())
}

#[tokio::test]
async fn invisible_characters_in_an_email_are_refused() -> TestResult {
    let app = spawn().await;
    for email in ["a\u{200d}b@example.com", "ab\u{ad}@example.com", "\u{feff}ab@example.com"] {
        let response = app.register(email, PASSWORD).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert_eq!(app.register("ab@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    Ok(())
}
