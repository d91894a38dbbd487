//! A database that goes away: the API answers 503 problem details (never 500, never a hang),
//! and recovers by itself when the database comes back. The outage is made by a TCP relay in
//! front of PostgreSQL that the test cuts and restores; the rest of the suite is not disturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{PASSWORD, TestResult, assert_problem, str_of};
use reqwest::StatusCode;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Relays connections from `listen` to PostgreSQL until aborted; aborting it drops every
/// relayed connection too.
fn relay(listen: SocketAddr, upstream: SocketAddr) -> JoinHandle<()> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(listen).unwrap();
    let listener = socket.listen(64).unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut client, _)) = listener.accept().await else { continue };
            connections.spawn(async move {
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    })
}

/// Polls `/readyz` for up to ten seconds; returns the last status.
async fn wait_until_ready(app: &common::TestApp) -> StatusCode {
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..40 {
        ready = app.client.get(app.url("/readyz")).send().await.unwrap().status();
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ready
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_and_recovers_by_itself() -> TestResult {
    let (mut storage, owner) = common::new_postgres_storage().await;
    let direct = storage.database_url.clone().unwrap();
    let upstream: SocketAddr = "127.0.0.1:5432".parse()?;
    let listen = free_port();
    storage.database_url = Some(direct.replace("127.0.0.1:5432", &listen.to_string()));
    let mut link = relay(listen, upstream);
    let app = common::spawn_owning(storage, owner, &[]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_answers_503_and_recovers_by_itself() -> TestResult {
    let (storage, owner) = common::new_postgres_storage().await;
    let upstream: SocketAddr = common::redis_url().trim_start_matches("redis://").parse()?;
    let listen = free_port();
    let mut link = relay(listen, upstream);
    let redis_url = format!("redis://{listen}");
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
