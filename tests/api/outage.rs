//! A database that goes away: the API answers 503 problem details (never 500, never a hang),
//! and recovers by itself when the database comes back. The outage is made by a TCP relay in
//! front of PostgreSQL that the test cuts and restores; the rest of the suite is not disturbed.

use crate::common;

use std::time::{Duration, Instant};

use common::{PASSWORD, TestResult, assert_problem, free_port, relay, str_of, wait_until_ready};
use futures::future::join_all;
use reqwest::StatusCode;

/// A server on fresh PostgreSQL storage (the database named by PORTCULLIS_TEST_POSTGRES),
/// reached through a relay that the test can cut; with the relay, its address and upstream.
async fn behind_a_relay()
-> (common::TestApp, tokio::task::JoinHandle<()>, std::net::SocketAddr, String) {
    let (mut storage, owner) = common::new_postgres_storage().await;
    let direct = storage.database_url.clone().unwrap();
    let upstream = common::address_of(&direct, 5432);
    let listen = free_port();
    storage.database_url = Some(common::with_address(&direct, &listen.to_string()));
    let link = relay(listen, upstream.clone());
    let app = common::spawn_owning(storage, owner, &[]).await;
    (app, link, listen, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_and_recovers_by_itself() -> TestResult {
    if !common::servers_answer("a lost database", true, true).await {
        return Ok(());
    }
    let (app, mut link, listen, upstream) = behind_a_relay().await;
    let pair = app.signed_in("alice@example.com").await;
    let access = str_of(&pair, "access_token").to_owned();

    link.abort();
    let _ = (&mut link).await;
    let ready = app.client.get(app.url("/readyz")).send().await?;
    assert_problem(ready, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let me = app.get("/v1/auth/me", &access).await;
    assert_problem(me, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let login = app.login("alice@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), StatusCode::OK, "the process itself is fine");

    let _link = relay(listen, upstream);
    assert_eq!(wait_until_ready(&app).await, StatusCode::OK, "recovered without a restart");
    assert_eq!(app.get("/v1/auth/me", &access).await.status(), StatusCode::OK);
    assert_eq!(app.login("alice@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

/// Logins and `/me` requests at once, as many as the pool and the connections of every
/// authenticated read hold; their statuses.
async fn burst(app: &common::TestApp, email: &str, access: &str) -> Vec<StatusCode> {
    let reads = (0..12).map(|_| async { app.get("/v1/auth/me", access).await.status() });
    let logins = (0..4).map(|_| async { app.login(email, PASSWORD).await.status() });
    let (reads, logins) = tokio::join!(join_all(reads), join_all(logins));
    reads.into_iter().chain(logins).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_ready_again_after_the_database_restarts_no_request_fails_on_a_dead_connection()
-> TestResult {
    if !common::servers_answer("a restarted database", true, true).await {
        return Ok(());
    }
    let (app, mut link, listen, upstream) = behind_a_relay().await;
    let email = "carol@example.com";
    let pair = app.signed_in(email).await;
    let access = str_of(&pair, "access_token").to_owned();

    for round in 0..4 {
        // Every connection has just been used, so none is tested before its next use...
        let warm = burst(&app, email, &access).await;
        assert!(warm.iter().all(|s| *s == StatusCode::OK), "round {round}: {warm:?}");
        // ...when the database restarts at once: every connection open before is dead.
        link.abort();
        let _ = (&mut link).await;
        link = relay(listen, upstream.clone());
        let started = Instant::now();
        loop {
            let ready = app.client.get(app.url("/readyz")).send().await?.status();
            if ready == StatusCode::OK {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "round {round}: not ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            let after = burst(&app, email, &access).await;
            assert!(after.iter().all(|s| *s == StatusCode::OK), "round {round}: {after:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_answers_503_and_recovers_by_itself() -> TestResult {
    if !common::servers_answer("a lost Redis", true, true).await {
        return Ok(());
    }
    let (storage, owner) = common::new_postgres_storage().await;
    // The Redis named by PORTCULLIS_TEST_REDIS, reached through the relay.
    let upstream = common::address_of(&common::redis_url(), 6379);
    let listen = free_port();
    let mut link = relay(listen, upstream.clone());
    let redis_url = common::with_address(&common::redis_url(), &listen.to_string());
    let app = common::spawn_owning(storage, owner, &[("PORTCULLIS_REDIS_URL", &redis_url)]).await;
    let pair = app.signed_in("bob@example.com").await;
    let access = str_of(&pair, "access_token").to_owned();

    link.abort();
    let _ = (&mut link).await;
    let ready = app.client.get(app.url("/readyz")).send().await?;
    assert_problem(ready, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let me = app.get("/v1/auth/me", &access).await;
    assert_problem(me, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let refresh = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(refresh, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    let _link = relay(listen, upstream);
    assert_eq!(wait_until_ready(&app).await, StatusCode::OK, "recovered without a restart");
    assert_eq!(app.get("/v1/auth/me", &access).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(str_of(&pair, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

#[test]
fn the_relayed_addresses_come_from_the_test_urls() {
    let postgres = "postgres://user:p@ss@db.test/portcullis_1?sslmode=disable";
    assert_eq!(common::address_of(postgres, 5432), "db.test:5432");
    assert_eq!(
        common::with_address(postgres, "127.0.0.1:4000"),
        "postgres://user:p@ss@127.0.0.1:4000/portcullis_1?sslmode=disable"
    );
    assert_eq!(common::address_of("redis://:pw@[::1]:6380/2", 6379), "[::1]:6380");
    assert_eq!(common::with_address("redis://cache", "127.0.0.1:4001"), "redis://127.0.0.1:4001");
}
