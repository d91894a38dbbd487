//! Refresh-token rotation, reuse detection and the reuse grace.

use crate::common;

use common::{TestResult, assert_problem, spawn, spawn_with, str_of};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn refresh_rotates_both_tokens() -> TestResult {
    let app = spawn().await;
    let first = app.signed_in("alice@example.com").await;
    let response = app.refresh(str_of(&first, "refresh_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await?;
    assert_ne!(str_of(&second, "refresh_token"), str_of(&first, "refresh_token"));
    assert_ne!(str_of(&second, "access_token"), str_of(&first, "access_token"));
    assert_eq!(second["token_type"], "Bearer");
    assert!(second.get("device_token").is_none());
    let me = app.get("/v1/auth/me", str_of(&second, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    // The new refresh token works in turn.
    assert_eq!(app.refresh(str_of(&second, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn reused_refresh_token_revokes_the_session() -> TestResult {
    let app = spawn().await;
    let first = app.signed_in("bob@example.com").await;
    let second = app.refreshed(str_of(&first, "refresh_token")).await;
    let reuse = app.refresh(str_of(&first, "refresh_token")).await;
    assert_problem(reuse, StatusCode::UNAUTHORIZED, "token_reused").await;
    // The whole session is gone: the legitimate successor and its access token too.
    let successor = app.refresh(str_of(&second, "refresh_token")).await;
    assert_problem(successor, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let me = app.get("/v1/auth/me", str_of(&second, "access_token")).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}

#[tokio::test]
async fn reuse_in_one_session_leaves_other_sessions_alone() -> TestResult {
    let app = spawn().await;
    let laptop = app.signed_in("carol@example.com").await;
    let phone = app.logged_in("carol@example.com", common::PASSWORD).await;
    let rotated = app.refreshed(str_of(&laptop, "refresh_token")).await;
    let reuse = app.refresh(str_of(&laptop, "refresh_token")).await;
    assert_problem(reuse, StatusCode::UNAUTHORIZED, "token_reused").await;
    // The laptop's session is revoked, its rotated successor with it...
    let successor = app.refresh(str_of(&rotated, "refresh_token")).await;
    assert_problem(successor, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let laptop_me = app.get("/v1/auth/me", str_of(&rotated, "access_token")).await;
    assert_problem(laptop_me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // ...while the phone's session goes on: its access token works and its refresh token rotates.
    let phone_me = app.get("/v1/auth/me", str_of(&phone, "access_token")).await;
    assert_eq!(phone_me.status(), StatusCode::OK);
    let me: Value = phone_me.json().await?;
    assert_eq!(me["email"], "carol@example.com");
    let next = app.refreshed(str_of(&phone, "refresh_token")).await;
    assert_eq!(next["token_type"], "Bearer");
    assert_eq!(str_of(&next, "refresh_token").len(), 22 + 1 + 43);
    assert_ne!(str_of(&next, "refresh_token"), str_of(&phone, "refresh_token"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_token_have_exactly_one_winner() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("dave@example.com").await;
    let token = str_of(&pair, "refresh_token").to_owned();
    let attempts = (0..10).map(|_| app.refresh(&token));
    let responses = futures::future::join_all(attempts).await;
    let ok = responses.iter().filter(|r| r.status() == StatusCode::OK).count();
    let unauthorized = responses.iter().filter(|r| r.status() == StatusCode::UNAUTHORIZED).count();
    assert_eq!((ok, unauthorized), (1, 9));
    Ok(())
}

#[tokio::test]
async fn unknown_and_malformed_refresh_tokens_are_invalid() -> TestResult {
    let app = spawn().await;
    for token in ["x".repeat(43), "short".to_owned(), "é".repeat(40), String::new()] {
        let response = app.refresh(&token).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    Ok(())
}

#[tokio::test]
async fn within_the_grace_a_rotated_token_gets_the_same_successor() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_REFRESH_REUSE_GRACE", "60s")]).await;
    let first = app.signed_in("erin@example.com").await;
    let a = app.refreshed(str_of(&first, "refresh_token")).await;
    let again = app.refresh(str_of(&first, "refresh_token")).await;
    assert_eq!(again.status(), StatusCode::OK);
    let b: Value = again.json().await?;
    assert_eq!(str_of(&a, "refresh_token"), str_of(&b, "refresh_token"));
    // Once the successor is used, the old token is a reuse even within the grace.
    let c = app.refreshed(str_of(&b, "refresh_token")).await;
    let late = app.refresh(str_of(&first, "refresh_token")).await;
    assert_problem(late, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_problem(
        app.refresh(str_of(&c, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_within_the_grace_all_get_the_same_pair() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_REFRESH_REUSE_GRACE", "60s")]).await;
    let pair = app.signed_in("fred@example.com").await;
    let token = str_of(&pair, "refresh_token").to_owned();
    let responses = futures::future::join_all((0..5).map(|_| app.refresh(&token))).await;
    let mut successors = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await?;
        successors.push(str_of(&body, "refresh_token").to_owned());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1);
    Ok(())
}

#[tokio::test]
async fn sessions_and_refresh_tokens_survive_a_restart() -> TestResult {
    let mut app = spawn().await;
    let pair = app.signed_in("gina@example.com").await;
    app.stop().await;
    let restarted = common::spawn_in(&app.storage, &[]).await;
    let me = restarted.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK, "the signing key survived");
    assert_eq!(restarted.refresh(str_of(&pair, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

/// A refresh token of the older form (bare random bits, from before tokens named their owner)
/// keeps rotating after an upgrade on the SQL store, into tokens of its own form, with reuse
/// detection intact. Redis never held such tokens under this layout, so the test is the SQL
/// store's.
#[tokio::test]
async fn a_refresh_token_of_the_older_form_still_rotates_and_is_still_watched_for_reuse()
-> TestResult {
    if common::on_postgres() {
        return Ok(());
    }
    let app = spawn().await;
    let pair = app.signed_in("legacy@example.com").await;
    let current = portcullis::crypto::tokens::hash_token(str_of(&pair, "refresh_token"));
    let older = portcullis::crypto::tokens::random_token();
    let db = app.storage.db().await;
    // The session's current token, exchanged for one of the older form.
    let done = sqlx::query("UPDATE refresh_tokens SET token_hash = $1 WHERE token_hash = $2")
        .bind(&portcullis::crypto::tokens::hash_token(&older).0[..])
        .bind(&current.0[..])
        .execute(&db)
        .await?;
    assert_eq!(done.rows_affected(), 1);

    let next = app.refreshed(&older).await;
    assert_eq!(str_of(&next, "refresh_token").len(), 43, "the same form as its predecessor");
    assert_eq!(
        app.get("/v1/auth/me", str_of(&next, "access_token")).await.status(),
        StatusCode::OK
    );
    assert_problem(app.refresh(&older).await, StatusCode::UNAUTHORIZED, "token_reused").await;
    let after = app.refresh(str_of(&next, "refresh_token")).await;
    assert_problem(after, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}

#[tokio::test]
async fn a_refresh_token_whose_owner_part_was_changed_is_invalid_and_harms_no_one() -> TestResult {
    let app = spawn().await;
    let victim = app.signed_in("victim@example.com").await;
    let attacker = app.signed_in("attacker@example.com").await;
    let (victim_owner, _) = str_of(&victim, "refresh_token").split_once('.').unwrap();
    let (_, attacker_random) = str_of(&attacker, "refresh_token").split_once('.').unwrap();
    let forged = format!("{victim_owner}.{attacker_random}");
    assert_problem(app.refresh(&forged).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.refresh(str_of(&victim, "refresh_token")).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(str_of(&attacker, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}
