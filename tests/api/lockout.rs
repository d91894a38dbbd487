//! Lockout: after the threshold an email answers 423, for accounts and strangers alike; a
//! success resets the count; locks expire and can be lifted; known devices are spared; parallel
//! guesses never get more checks than the threshold.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{PASSWORD, TestApp, TestResult, assert_problem, spawn_with, spawn_with_clock, str_of};
use portcullis::domain::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WRONG: &str = "Wrong-Pass-123";

async fn fail_times(app: &TestApp, email: &str, times: usize) {
    for i in 0..times {
        assert_eq!(app.login(email, WRONG).await.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
}

async fn login_with_device(
    app: &TestApp,
    email: &str,
    password: &str,
    device: &str,
) -> reqwest::Response {
    app.post(
        "/v1/auth/login",
        json!({ "email": email, "password": password, "device_token": device }),
    )
    .await
}

#[tokio::test]
async fn after_the_threshold_even_the_right_password_is_locked_out() -> TestResult {
    let app = spawn_with(&[]).await;
    app.register("alice@example.com", PASSWORD).await;
    fail_times(&app, "alice@example.com", 5).await;
    let locked = app.login("alice@example.com", PASSWORD).await;
    let retry_after: u64 = locked.headers()["retry-after"].to_str()?.parse()?;
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    Ok(())
}

#[tokio::test]
async fn an_email_without_an_account_locks_the_same_way() -> TestResult {
    let app = spawn_with(&[]).await;
    fail_times(&app, "ghost@example.com", 5).await;
    let locked = app.login("Ghost@Example.com", WRONG).await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    Ok(())
}

#[tokio::test]
async fn a_success_below_the_threshold_resets_the_count() -> TestResult {
    let app = spawn_with(&[]).await;
    app.register("bob@example.com", PASSWORD).await;
    fail_times(&app, "bob@example.com", 4).await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), StatusCode::OK);
    fail_times(&app, "bob@example.com", 4).await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_lock_expires_after_its_duration() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let vars = [("PORTCULLIS_LOCKOUT_THRESHOLD", "2"), ("PORTCULLIS_LOCKOUT_DURATION", "15m")];
    let app = spawn_with_clock(&vars, clock.clone()).await;
    assert_eq!(app.register("carol@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    fail_times(&app, "carol@example.com", 2).await;
    let locked = app.login("carol@example.com", PASSWORD).await;
    assert_eq!(locked.headers()["retry-after"], "900");
    assert_eq!(locked.status(), StatusCode::LOCKED);
    clock.advance(Duration::from_secs(899));
    let still = app.login("carol@example.com", PASSWORD).await;
    assert_eq!(
        (still.status(), &still.headers()["retry-after"]),
        (StatusCode::LOCKED, &"1".parse()?)
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(app.login("carol@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn failures_outside_the_window_do_not_add_up() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let vars = [("PORTCULLIS_LOCKOUT_THRESHOLD", "2"), ("PORTCULLIS_LOCKOUT_WINDOW", "15m")];
    let app = spawn_with_clock(&vars, clock.clone()).await;
    assert_eq!(app.register("dave@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    fail_times(&app, "dave@example.com", 1).await;
    clock.advance(Duration::from_secs(15 * 60));
    fail_times(&app, "dave@example.com", 1).await;
    assert_eq!(app.login("dave@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_never_get_more_checks_than_the_threshold() -> TestResult {
    let app = spawn_with(&[]).await;
    app.register("erin@example.com", PASSWORD).await;
    let attempts = (0..25).map(|_| app.login("erin@example.com", WRONG));
    let statuses: Vec<StatusCode> =
        futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let locked = statuses.iter().filter(|s| **s == StatusCode::LOCKED).count();
    assert_eq!((checked, locked), (5, 20), "{statuses:?}");
    assert_eq!(app.login("erin@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    Ok(())
}

#[tokio::test]
async fn a_known_device_spares_its_owner_from_a_lock_others_caused() -> TestResult {
    let app = spawn_with(&[]).await;
    let first = app.signed_in("fred@example.com").await;
    let device = str_of(&first, "device_token").to_owned();
    fail_times(&app, "fred@example.com", 5).await;
    assert_eq!(app.login("fred@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    let owner = login_with_device(&app, "fred@example.com", PASSWORD, &device).await;
    assert_eq!(owner.status(), StatusCode::OK);
    // Another account's device token, or a made-up one, spares nothing.
    let other = app.signed_in("gina@example.com").await;
    let stolen =
        login_with_device(&app, "fred@example.com", PASSWORD, str_of(&other, "device_token")).await;
    assert_eq!(stolen.status(), StatusCode::LOCKED);
    let made_up = login_with_device(&app, "fred@example.com", PASSWORD, &"A".repeat(43)).await;
    assert_eq!(made_up.status(), StatusCode::LOCKED);
    Ok(())
}

#[tokio::test]
async fn failures_with_a_device_token_count_against_that_device_alone() -> TestResult {
    let app = spawn_with(&[]).await;
    let first = app.signed_in("hal@example.com").await;
    let device = str_of(&first, "device_token").to_owned();
    for _ in 0..5 {
        let response = login_with_device(&app, "hal@example.com", WRONG, &device).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = login_with_device(&app, "hal@example.com", PASSWORD, &device).await;
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    // The email itself was not counted against.
    assert_eq!(app.login("hal@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn wrong_current_passwords_on_password_change_count_as_failed_logins() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let pair = app.signed_in("ivy@example.com").await;
    let body = json!({ "current_password": WRONG, "new_password": "Brand-New-Pass-9" });
    for _ in 0..3 {
        let response = app
            .request(
                Method::POST,
                "/v1/auth/password",
                Some(str_of(&pair, "access_token")),
                Some(body.clone()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The session is held by the lock of the device its login handed out: a stolen access
    // token gets no more guesses than the threshold, and the owner's other devices go on.
    let right = json!({ "current_password": PASSWORD, "new_password": "Brand-New-Pass-9" });
    let access = str_of(&pair, "access_token");
    let locked = app.request(Method::POST, "/v1/auth/password", Some(access), Some(right)).await;
    assert_eq!(locked.status(), StatusCode::LOCKED);
    assert_eq!(app.login("ivy@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn an_admin_unlocks_a_user_at_once() -> TestResult {
    let app = spawn_with(&[]).await;
    common::create_admin(&app, "root@example.com").await;
    let admin: Value = app.login("root@example.com", PASSWORD).await.json().await?;
    let user: Value = app.register("jay@example.com", PASSWORD).await.json().await?;
    fail_times(&app, "jay@example.com", 5).await;
    assert_eq!(app.login("jay@example.com", PASSWORD).await.status(), StatusCode::LOCKED);

    let path = format!("/v1/admin/users/{}/unlock", str_of(&user, "id"));
    let jay: Value = {
        // A user cannot unlock anyone, themselves included.
        let other = app.signed_in("kim@example.com").await;
        let forbidden =
            app.request(Method::POST, &path, Some(str_of(&other, "access_token")), None).await;
        assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
        other
    };
    let unlocked =
        app.request(Method::POST, &path, Some(str_of(&admin, "access_token")), None).await;
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.login("jay@example.com", PASSWORD).await.status(), StatusCode::OK);

    let unknown = format!("/v1/admin/users/{}/unlock", uuid::Uuid::new_v4());
    let missing =
        app.request(Method::POST, &unknown, Some(str_of(&admin, "access_token")), None).await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let anonymous = app.request(Method::POST, &path, None, None).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    drop(jay);
    Ok(())
}

#[tokio::test]
async fn the_command_line_unlocks_an_email_on_a_running_server() -> TestResult {
    let app = spawn_with(&[]).await;
    app.register("lee@example.com", PASSWORD).await;
    fail_times(&app, "lee@example.com", 5).await;
    assert_eq!(app.login("lee@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    assert_eq!(
        common::run_cli(&app, &["user", "unlock", "--email", "LEE@example.com"]).await,
        Some(0)
    );
    assert_eq!(app.login("lee@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

/// Changes the password with the bearer of `pair`.
async fn change_password(app: &TestApp, pair: &Value, current: &str, new: &str) -> StatusCode {
    let body = json!({ "current_password": current, "new_password": new });
    let bearer = str_of(pair, "access_token");
    app.request(Method::POST, "/v1/auth/password", Some(bearer), Some(body)).await.status()
}

/// Logs in again with the device token of an earlier login, so the new session is bound to it.
async fn on_known_device(app: &TestApp, email: &str) -> Value {
    let first = app.signed_in(email).await;
    let device = str_of(&first, "device_token");
    common::ok_json(login_with_device(app, email, PASSWORD, device).await).await
}

#[tokio::test]
async fn a_strangers_lock_does_not_block_the_owners_password_change_on_a_known_device() -> TestResult
{
    let app = spawn_with(&[]).await;
    let pair = on_known_device(&app, "owner@example.com").await;
    fail_times(&app, "owner@example.com", 5).await;
    assert_eq!(app.login("owner@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    let new = "Another-Horse-43";
    assert_eq!(change_password(&app, &pair, PASSWORD, new).await, StatusCode::NO_CONTENT);
    Ok(())
}

#[tokio::test]
async fn wrong_current_passwords_on_a_known_device_lock_that_device_not_the_email() -> TestResult {
    let app = spawn_with(&[]).await;
    let pair = on_known_device(&app, "thief@example.com").await;
    for _ in 0..5 {
        let status = change_password(&app, &pair, WRONG, "Another-Horse-43").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let locked = change_password(&app, &pair, PASSWORD, "Another-Horse-43").await;
    assert_eq!(locked, StatusCode::LOCKED, "the session's device is locked");
    // The email itself is not: a login elsewhere still works.
    assert_eq!(app.login("thief@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_password_change_voids_every_other_device_token() -> TestResult {
    let app = spawn_with(&[]).await;
    let laptop = on_known_device(&app, "many@example.com").await;
    let phone: Value = common::ok_json(app.login("many@example.com", PASSWORD).await).await;
    let new = "Another-Horse-43";
    assert_eq!(change_password(&app, &laptop, PASSWORD, new).await, StatusCode::NO_CONTENT);
    fail_times(&app, "many@example.com", 5).await;
    let from_phone =
        login_with_device(&app, "many@example.com", new, str_of(&phone, "device_token")).await;
    assert_eq!(from_phone.status(), StatusCode::LOCKED, "the phone's token was voided");
    let from_laptop =
        login_with_device(&app, "many@example.com", new, str_of(&laptop, "device_token")).await;
    assert_eq!(from_laptop.status(), StatusCode::OK, "the laptop made the change");
    Ok(())
}

#[tokio::test]
async fn consecutive_failures_past_the_maximum_lock_until_an_unlock() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let vars = [
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "2"),
        ("PORTCULLIS_LOCKOUT_DURATION", "1m"),
        ("PORTCULLIS_LOCKOUT_MAX_FAILURES", "3"),
    ];
    let app = spawn_with_clock(&vars, clock.clone()).await;
    assert_eq!(app.register("frank@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    fail_times(&app, "frank@example.com", 2).await;
    assert_eq!(app.login("frank@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    clock.advance(Duration::from_secs(61));
    fail_times(&app, "frank@example.com", 1).await;
    clock.advance(Duration::from_secs(365 * 86_400));
    let locked = app.login("frank@example.com", PASSWORD).await;
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    assert_eq!(
        common::run_cli(&app, &["user", "unlock", "--email", "frank@example.com"]).await,
        Some(0)
    );
    assert_eq!(app.login("frank@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_password_change_keeps_the_device_of_the_session_that_made_it() -> TestResult {
    let app = spawn_with(&[]).await;
    // A first login on this laptop: it presents no device token, and is handed one.
    let laptop = app.signed_in("keep@example.com").await;
    let phone: Value = common::ok_json(app.login("keep@example.com", PASSWORD).await).await;
    let new = "Another-Horse-43";
    assert_eq!(change_password(&app, &laptop, PASSWORD, new).await, StatusCode::NO_CONTENT);
    fail_times(&app, "keep@example.com", 5).await;
    let from_laptop =
        login_with_device(&app, "keep@example.com", new, str_of(&laptop, "device_token")).await;
    assert_eq!(from_laptop.status(), StatusCode::OK, "the laptop made the change");
    let from_phone =
        login_with_device(&app, "keep@example.com", new, str_of(&phone, "device_token")).await;
    assert_eq!(from_phone.status(), StatusCode::LOCKED, "the phone's token was voided");
    Ok(())
}
