//! The listener under attack and at shutdown: slow headers are cut off, a connection flood
//! waits in the listen queue instead of exhausting descriptors, errors from before routing are
//! problem details where hyper lets them be, and SIGTERM drains requests in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{ServerProcess, TestResult, raw_exchange, spawn_with};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; fails if it is still open after `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {bound:?}");
    answer
}

#[tokio::test]
async fn a_partial_header_line_is_closed_within_the_request_timeout() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "1s")]).await;
    let mut slow = TcpStream::connect(app.address).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\nX-Slow: aaaa").await?;
    let started = Instant::now();

    closed_within(&mut slow, Duration::from_secs(5)).await;

    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout");
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_the_request_timeout() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "1s")]).await;
    let mut silent = TcpStream::connect(app.address).await?;

    let answer = closed_within(&mut silent, Duration::from_secs(5)).await;

    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_within_the_request_timeout() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "1s")]).await;
    let mut idle = TcpStream::connect(app.address).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\n\r\n").await?;

    let answer = closed_within(&mut idle, Duration::from_secs(5)).await;

    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&answer));
    Ok(())
}

#[tokio::test]
async fn a_flood_past_max_connections_waits_in_the_queue_and_healthz_keeps_answering() -> TestResult
{
    let app =
        spawn_with(&[("PORTCULLIS_MAX_CONNECTIONS", "20"), ("PORTCULLIS_REQUEST_TIMEOUT", "1s")])
            .await;
    // 100 idle connections: 20 are served, the rest wait in the listen queue. None is refused.
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(TcpStream::connect(app.address).await?);
    }
    let mut last = flood.pop().unwrap();
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\nConnection: close\r\n\r\n")
        .await?;

    // While the cap is reached the last connection is not served...
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), last.read(&mut byte)).await;
    assert!(early.is_err(), "a connection past the cap was served at once");
    // ...and once the idle ones time out, it is, and so is a new client.
    let answer = closed_within(&mut last, Duration::from_secs(20)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&answer));
    let health =
        app.client.get(app.url("/healthz")).timeout(Duration::from_secs(20)).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn running_out_of_file_descriptors_backs_off_and_recovers() -> TestResult {
    let (storage, _owner) = common::new_embedded_storage().await;
    let vars = [("PORTCULLIS_REQUEST_TIMEOUT", "2s"), ("PORTCULLIS_LOG", "warn,portcullis=info")];
    let server = ServerProcess::start_with_fd_limit(&storage, &vars, 96);
    // More connections than the process may open: accept fails with EMFILE.
    let mut flood = Vec::new();
    for _ in 0..150 {
        flood.push(TcpStream::connect(server.address).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    while failures == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server.log.recv_timeout(left).expect("no accept error was logged");
        failures += usize::from(line.contains("accept failed"));
    }
    let flooded_at = Instant::now();

    drop(flood);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let health = client.get(format!("http://{}/healthz", server.address)).send().await?;

    assert_eq!(health.status(), StatusCode::OK);
    let elapsed = flooded_at.elapsed();
    failures += server.log.try_iter().filter(|line| line.contains("accept failed")).count();
    // The pauses double from 10 ms: a spinning loop would log thousands of failures a second.
    let bound = 10 + 2 * elapsed.as_secs() as usize;
    assert!(failures <= bound, "{failures} accept failures in {elapsed:?}: the loop spins");
    Ok(())
}

/// Asserts a response is a problem of `status` and `code`, with the request id and the
/// security headers, and returns its body.
async fn assert_edge_problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.contains_key("strict-transport-security"));
    assert!(headers.contains_key("content-security-policy"));
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["code"], code);
    assert_eq!(body["type"], format!("/errors/{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    assert_eq!(body["request_id"], id.as_str());
    body
}

#[tokio::test]
async fn a_header_block_over_64_kib_answers_431_problem_details() -> TestResult {
    let app = spawn_with(&[]).await;

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(70 * 1024))
        .send()
        .await?;

    assert_edge_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large")
        .await;
    // Just under the limit is served as usual.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(60 * 1024))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

/// Status line and header names of a raw answer, lower-cased.
fn head_of(answer: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(answer);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let names = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .collect();
    (status, names)
}

// The three tests below pin what hyper answers by itself, with no hook to shape it (see
// docs/DEVIATIONS.md): a bare status, `connection: close`, `content-length: 0` and `date`.

#[tokio::test]
async fn a_header_block_over_the_hard_limit_gets_hyper_bare_431_and_is_closed() -> TestResult {
    let app = spawn_with(&[]).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: portcullis\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(140 * 1024)
    );

    let answer = raw_exchange(app.address, request.as_bytes(), Duration::from_secs(5)).await;

    let (status, names) = head_of(&answer);
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(names, ["connection", "content-length", "date"]);
    Ok(())
}

#[tokio::test]
async fn conflicting_content_lengths_get_hyper_bare_400_and_are_closed() -> TestResult {
    let app = spawn_with(&[]).await;
    let request = "POST /v1/auth/login HTTP/1.1\r\nHost: portcullis\r\nContent-Type: \
                   application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";

    let answer = raw_exchange(app.address, request.as_bytes(), Duration::from_secs(5)).await;

    let (status, names) = head_of(&answer);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(names, ["connection", "content-length", "date"]);
    Ok(())
}

#[tokio::test]
async fn a_malformed_request_line_gets_hyper_bare_400_and_is_closed() -> TestResult {
    let app = spawn_with(&[]).await;

    let answer = raw_exchange(
        app.address,
        b"GET /healthz HTTP/1.1 extra\r\nHost: p\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;

    let (status, names) = head_of(&answer);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(names, ["connection", "content-length", "date"]);
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() -> TestResult {
    let (storage, _owner) = common::new_embedded_storage().await;
    let mut server = ServerProcess::start(&storage, &[("PORTCULLIS_REQUEST_TIMEOUT", "10s")]);
    let body = br#"{"email":"drain@example.com","password":"Correct-Horse-42"}"#;
    let mut in_flight = TcpStream::connect(server.address).await?;
    let head = format!(
        "POST /v1/auth/register HTTP/1.1\r\nHost: portcullis\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await?;
    // `100 Continue` comes when the handler starts reading the body: the request is in flight.
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), in_flight.read_exact(&mut interim)).await??;
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    server.signal("TERM");
    // Wait until the server has stopped accepting: the shutdown has begun.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(server.address).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener still accepts after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    in_flight.write_all(body).await?;

    let answer = closed_within(&mut in_flight, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
    let status = server.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    Ok(())
}
