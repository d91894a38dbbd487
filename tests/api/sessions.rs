//! Logout, logout-all, session listing and deletion, password change: all take effect at once.

use crate::common;

use common::{PASSWORD, TestApp, TestResult, assert_problem, spawn, str_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn post_bearer(
    app: &TestApp,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> reqwest::Response {
    app.request(Method::POST, path, Some(bearer), body).await
}

#[tokio::test]
async fn logout_with_the_bearer_is_immediate() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let access = str_of(&pair, "access_token");
    let response = post_bearer(&app, "/v1/auth/logout", access, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let me = app.get("/v1/auth/me", access).await;
    assert_eq!(me.headers()["www-authenticate"], "Bearer");
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refresh = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}

#[tokio::test]
async fn logout_with_the_refresh_token_is_immediate() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("bob@example.com").await;
    let body = json!({ "refresh_token": str_of(&pair, "refresh_token") });
    assert_eq!(app.post("/v1/auth/logout", body.clone()).await.status(), StatusCode::NO_CONTENT);
    let me = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let again = app.post("/v1/auth/logout", body).await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}

#[tokio::test]
async fn logout_without_credentials_is_unauthorized() -> TestResult {
    let app = spawn().await;
    let response = app.request(Method::POST, "/v1/auth/logout", None, None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let bad_bearer = post_bearer(&app, "/v1/auth/logout", "not-a-jwt", None).await;
    assert_problem(bad_bearer, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}

#[tokio::test]
async fn logout_all_ends_every_session() -> TestResult {
    let app = spawn().await;
    let one = app.signed_in("carol@example.com").await;
    let two = app.logged_in("carol@example.com", PASSWORD).await;
    let other_user = app.signed_in("dave@example.com").await;
    let response =
        post_bearer(&app, "/v1/auth/logout-all", str_of(&one, "access_token"), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for pair in [&one, &two] {
        let me = app.get("/v1/auth/me", str_of(pair, "access_token")).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        let refresh = app.refresh(str_of(pair, "refresh_token")).await;
        assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    }
    let me = app.get("/v1/auth/me", str_of(&other_user, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn sessions_are_listed_newest_first_with_the_current_one_marked() -> TestResult {
    let app = spawn().await;
    let first = app.signed_in("erin@example.com").await;
    let second = common::ok_json(
        app.client
            .post(app.url("/v1/auth/login"))
            .header("user-agent", "phone/1.0")
            .json(&json!({ "email": "erin@example.com", "password": PASSWORD }))
            .send()
            .await?,
    )
    .await;
    let response = app.get("/v1/auth/sessions", str_of(&second, "access_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["user_agent"], "phone/1.0");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[1]["current"], false);
    for key in ["id", "created_at", "last_used_at"] {
        assert!(sessions[0][key].is_string(), "{key}");
    }
    drop(first);
    Ok(())
}

#[tokio::test]
async fn deleting_an_own_session_is_immediate() -> TestResult {
    let app = spawn().await;
    let laptop = app.signed_in("fred@example.com").await;
    let phone = app.logged_in("fred@example.com", PASSWORD).await;
    let list: Value =
        app.get("/v1/auth/sessions", str_of(&laptop, "access_token")).await.json().await?;
    let phone_id = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    let path = format!("/v1/auth/sessions/{phone_id}");
    let response =
        app.request(Method::DELETE, &path, Some(str_of(&laptop, "access_token")), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/auth/me", str_of(&phone, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/v1/auth/me", str_of(&laptop, "access_token")).await.status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn another_users_session_is_not_found() -> TestResult {
    let app = spawn().await;
    let victim = app.signed_in("gina@example.com").await;
    let attacker = app.signed_in("hal@example.com").await;
    let list: Value =
        app.get("/v1/auth/sessions", str_of(&victim, "access_token")).await.json().await?;
    let victim_session = list["sessions"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/auth/sessions/{victim_session}");
    let response =
        app.request(Method::DELETE, &path, Some(str_of(&attacker, "access_token")), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let garbage = app
        .request(
            Method::DELETE,
            "/v1/auth/sessions/zzz",
            Some(str_of(&attacker, "access_token")),
            None,
        )
        .await;
    assert_problem(garbage, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.get("/v1/auth/me", str_of(&victim, "access_token")).await.status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn password_change_revokes_every_other_session() -> TestResult {
    let app = spawn().await;
    let current = app.signed_in("ivy@example.com").await;
    let other = app.logged_in("ivy@example.com", PASSWORD).await;
    let body = json!({ "current_password": PASSWORD, "new_password": "Brand-New-Pass-9" });
    let response =
        post_bearer(&app, "/v1/auth/password", str_of(&current, "access_token"), Some(body)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/auth/me", str_of(&other, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(str_of(&other, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/v1/auth/me", str_of(&current, "access_token")).await.status(),
        StatusCode::OK
    );
    let old = app.login("ivy@example.com", PASSWORD).await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.login("ivy@example.com", "Brand-New-Pass-9").await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_the_policy() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("jay@example.com").await;
    let access = str_of(&pair, "access_token");
    let wrong = json!({ "current_password": "Not-The-Pass-1", "new_password": "Brand-New-Pass-9" });
    let response = post_bearer(&app, "/v1/auth/password", access, Some(wrong)).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let weak = json!({ "current_password": PASSWORD, "new_password": "weak" });
    let response = post_bearer(&app, "/v1/auth/password", access, Some(weak)).await;
    let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "password_policy").await;
    assert!(body["violations"].as_array().unwrap().contains(&json!("too_short")));
    // Neither attempt changed anything.
    assert_eq!(app.login("jay@example.com", PASSWORD).await.status(), StatusCode::OK);
    let anonymous = app
        .post(
            "/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": "Brand-New-Pass-9" }),
        )
        .await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}

#[tokio::test]
async fn a_session_ends_at_its_lifetime_however_often_it_is_refreshed() -> TestResult {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let vars = [("PORTCULLIS_SESSION_LIFETIME", "1h"), ("PORTCULLIS_REFRESH_TOKEN_TTL", "14d")];
    let app = common::spawn_with_clock(&vars, clock.clone()).await;
    let mut pair = app.signed_in("finite@example.com").await;
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_secs(15 * 60));
        pair = common::ok_json(app.refresh(str_of(&pair, "refresh_token")).await).await;
    }
    clock.advance(std::time::Duration::from_secs(15 * 60));
    let late = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(late, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}
