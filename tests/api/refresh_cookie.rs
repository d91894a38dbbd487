//! Cookie mode (`REFRESH_COOKIE=on`) over HTTP: the refresh token also travels in an `HttpOnly;
//! Secure; SameSite=Strict` cookie on the refresh and logout paths; a request that relies on it
//! must come from an origin in `CORS_ORIGINS` and carry `X-Requested-With`; rotation and reuse
//! detection are those of a token in the body. (The real browser's view is in
//! `tests/browser_passkey.rs`.)

use crate::common;

use common::{TestResult, assert_problem, spawn_with, str_of};
use reqwest::StatusCode;
use serde_json::Value;

const ORIGIN: &str = "https://app.example.com";

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    let all = response.headers().get_all("set-cookie");
    all.iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn cookie_token(cookies: &[String]) -> String {
    let first = cookies.first().expect("a Set-Cookie");
    let value = first.split(';').next().unwrap();
    value.strip_prefix("__Secure-portcullis_refresh=").unwrap().to_owned()
}

async fn with_cookie(
    app: &common::TestApp,
    path: &str,
    token: &str,
    origin: Option<&str>,
    requested_with: bool,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("cookie", format!("theme=dark; __Secure-portcullis_refresh={token}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if requested_with {
        request = request.header("x-requested-with", "fetch");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_refresh_cookie_rotates_like_the_token_and_only_for_allowed_callers() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_REFRESH_COOKIE", "on"), ("PORTCULLIS_CORS_ORIGINS", ORIGIN)])
            .await;
    app.register("jar@example.com", common::PASSWORD).await;
    let login = app.login("jar@example.com", common::PASSWORD).await;
    let cookies = set_cookies(&login);
    assert_eq!(cookies.len(), 2, "one for refresh, one for logout: {cookies:?}");
    for (cookie, path) in cookies.iter().zip(["/v1/auth/refresh", "/v1/auth/logout"]) {
        for part in ["HttpOnly", "Secure", "SameSite=Strict", &format!("Path={path}")] {
            assert!(cookie.contains(part), "{part} in {cookie}");
        }
        assert!(cookie.contains("Max-Age=1209600"), "REFRESH_TOKEN_TTL: {cookie}");
    }
    let pair: Value = login.json().await?;
    let first = cookie_token(&cookies);
    assert_eq!(first, str_of(&pair, "refresh_token"));

    // Without the custom header, or from an origin not listed: refused, and nothing spent.
    let bare = with_cookie(&app, "/v1/auth/refresh", &first, Some(ORIGIN), false).await;
    assert_problem(bare, StatusCode::FORBIDDEN, "forbidden").await;
    let stranger =
        with_cookie(&app, "/v1/auth/refresh", &first, Some("https://evil.example"), true).await;
    assert_problem(stranger, StatusCode::FORBIDDEN, "forbidden").await;
    let nowhere = with_cookie(&app, "/v1/auth/refresh", &first, None, true).await;
    assert_problem(nowhere, StatusCode::FORBIDDEN, "forbidden").await;

    let rotated = with_cookie(&app, "/v1/auth/refresh", &first, Some(ORIGIN), true).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let second = cookie_token(&set_cookies(&rotated));
    assert_ne!(second, first);
    let body: Value = rotated.json().await?;
    assert_eq!(str_of(&body, "refresh_token"), second);
    assert_eq!(app.get("/v1/auth/me", str_of(&body, "access_token")).await.status(), 200);

    // The rotated cookie comes back: reuse, and the whole session ends.
    let reused = with_cookie(&app, "/v1/auth/refresh", &first, Some(ORIGIN), true).await;
    assert_problem(reused, StatusCode::UNAUTHORIZED, "token_reused").await;
    let dead = with_cookie(&app, "/v1/auth/refresh", &second, Some(ORIGIN), true).await;
    assert_problem(dead, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}

#[tokio::test]
async fn logout_with_the_cookie_ends_the_session_and_clears_the_cookie() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_REFRESH_COOKIE", "on"), ("PORTCULLIS_CORS_ORIGINS", ORIGIN)])
            .await;
    let pair = app.signed_in("leave@example.com").await;
    let token = str_of(&pair, "refresh_token");
    let refused = with_cookie(&app, "/v1/auth/logout", token, Some(ORIGIN), false).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let out = with_cookie(&app, "/v1/auth/logout", token, Some(ORIGIN), true).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 2);
    assert!(
        cleared
            .iter()
            .all(|c| c.starts_with("__Secure-portcullis_refresh=;") && c.contains("Max-Age=0"))
    );
    let me = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A token in the body still works as ever, and needs no header.
    let other = app.logged_in("leave@example.com", common::PASSWORD).await;
    assert_eq!(app.refresh(str_of(&other, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn without_cookie_mode_no_cookie_is_set_or_read() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_CORS_ORIGINS", ORIGIN)]).await;
    app.register("plain@example.com", common::PASSWORD).await;
    let login = app.login("plain@example.com", common::PASSWORD).await;
    assert!(set_cookies(&login).is_empty());
    let pair: Value = login.json().await?;
    let ignored =
        with_cookie(&app, "/v1/auth/refresh", str_of(&pair, "refresh_token"), Some(ORIGIN), true)
            .await;
    assert_problem(ignored, StatusCode::BAD_REQUEST, "malformed_request").await;
    Ok(())
}

#[tokio::test]
async fn a_request_carrying_the_refresh_cookie_twice_is_refused() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_REFRESH_COOKIE", "on"), ("PORTCULLIS_CORS_ORIGINS", ORIGIN)])
            .await;
    app.register("twice@example.com", common::PASSWORD).await;
    let login = app.login("twice@example.com", common::PASSWORD).await;
    let cookies = set_cookies(&login);
    assert!(cookies[0].starts_with("__Secure-portcullis_refresh="), "{cookies:?}");
    let token = cookie_token(&cookies);
    // One planted beside the real one (another path, or a subdomain's): not guessed at.
    for header in [
        format!("__Secure-portcullis_refresh={token}; __Secure-portcullis_refresh={token}"),
        format!("__Secure-portcullis_refresh=planted; __Secure-portcullis_refresh={token}"),
    ] {
        for path in ["/v1/auth/refresh", "/v1/auth/logout"] {
            let response = app
                .client
                .post(app.url(path))
                .header("cookie", &header)
                .header("origin", ORIGIN)
                .header("x-requested-with", "fetch")
                .send()
                .await?;
            assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
    // The session is untouched: the cookie alone still refreshes it.
    let refreshed = with_cookie(&app, "/v1/auth/refresh", &token, Some(ORIGIN), true).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_json_body_without_a_refresh_token_uses_the_cookie() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_REFRESH_COOKIE", "on"), ("PORTCULLIS_CORS_ORIGINS", ORIGIN)])
            .await;
    app.register("empty@example.com", common::PASSWORD).await;
    let login = app.login("empty@example.com", common::PASSWORD).await;
    let token = cookie_token(&set_cookies(&login));
    let with_body = |path: &'static str, token: String, body: &'static str| {
        app.client
            .post(app.url(path))
            .header("cookie", format!("__Secure-portcullis_refresh={token}"))
            .header("origin", ORIGIN)
            .header("x-requested-with", "fetch")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let refreshed = with_body("/v1/auth/refresh", token, "{}").await?;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let token = cookie_token(&set_cookies(&refreshed));
    let refreshed = with_body("/v1/auth/refresh", token, r#"{"other":1}"#).await?;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let token = cookie_token(&set_cookies(&refreshed));
    let logged_out = with_body("/v1/auth/logout", token.clone(), "{}").await?;
    assert_eq!(logged_out.status(), StatusCode::NO_CONTENT);
    let after = with_cookie(&app, "/v1/auth/refresh", &token, Some(ORIGIN), true).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the session ended");
    Ok(())
}
