//! Several instances on the same storage behave as one service: a logout, a lock or a spent
//! budget on one holds on every other at once.

use crate::common;

use common::{PASSWORD, TestResult, spawn, spawn_in, str_of};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_logout_on_one_instance_holds_on_the_other_at_once() -> TestResult {
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    let pair = a.signed_in("alice@example.com").await;
    let access = str_of(&pair, "access_token");
    assert_eq!(b.get("/v1/auth/me", access).await.status(), StatusCode::OK, "keys are shared");
    let logout = b.request(Method::POST, "/v1/auth/logout", Some(access), None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(a.get("/v1/auth/me", access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(a.refresh(str_of(&pair, "refresh_token")).await.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_rotated_token_replayed_on_another_instance_is_a_reuse() -> TestResult {
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    let pair = a.signed_in("bob@example.com").await;
    assert_eq!(a.refresh(str_of(&pair, "refresh_token")).await.status(), StatusCode::OK);
    let replay = b.refresh(str_of(&pair, "refresh_token")).await;
    common::assert_problem(replay, StatusCode::UNAUTHORIZED, "token_reused").await;
    Ok(())
}

#[tokio::test]
async fn a_lock_made_through_one_instance_holds_on_the_other() -> TestResult {
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    a.register("carol@example.com", PASSWORD).await;
    for _ in 0..5 {
        a.login("carol@example.com", "Wrong-Pass-1").await;
    }
    assert_eq!(b.login("carol@example.com", PASSWORD).await.status(), StatusCode::LOCKED);
    Ok(())
}

#[tokio::test]
async fn with_redis_a_budget_is_shared_by_every_instance() -> TestResult {
    if !common::servers_answer("with_redis_a_budget_is_shared_by_every_instance", true, true).await
    {
        return Ok(());
    }
    let (storage, owner) = common::new_postgres_storage().await;
    let limit = [("PORTCULLIS_RATE_LIMIT_IP", "4/min")];
    let a = common::spawn_owning(storage, owner, &limit).await;
    let b = spawn_in(&a.storage, &limit).await;
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let response = app.login(&format!("u{i}@example.com"), PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(a.login("u9@example.com", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(b.login("u9@example.com", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    Ok(())
}

/// Three instances on one storage (on the cluster pass: one PostgreSQL and the Redis Cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_tokens_logouts_and_one_winner_of_concurrent_refreshes() -> TestResult
{
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    let c = spawn_in(&a.storage, &[]).await;
    let pair = a.signed_in("dora@example.com").await;
    let access = str_of(&pair, "access_token");
    assert_eq!(b.get("/v1/auth/me", access).await.status(), StatusCode::OK, "A's token on B");
    let logout = a.request(Method::POST, "/v1/auth/logout", Some(access), None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.get("/v1/auth/me", access).await.status(), StatusCode::UNAUTHORIZED, "seen on C");

    // 20 refreshes of one token at once, spread over the three instances: exactly one wins, and
    // the others are reuses that end the session, so the winner's pair dies with it.
    let pair = b.logged_in("dora@example.com", PASSWORD).await;
    let token = str_of(&pair, "refresh_token").to_owned();
    let apps = [&a, &b, &c];
    let attempts = (0..20).map(|i| apps[i % 3].refresh(&token));
    let responses = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => winners.push(response.json::<serde_json::Value>().await?),
            StatusCode::UNAUTHORIZED => {}
            other => panic!("a refresh answered {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let next = str_of(&winners[0], "refresh_token");
    common::assert_problem(c.refresh(next).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    Ok(())
}
