//! The listener under attack and at shutdown: slow headers are cut off, a connection flood
//! waits in the listen queue, errors from before routing are problem details, and SIGTERM
//! drains requests in flight. Slow readers and the connection caps are in `connection_limits`.

use crate::common;

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
async fn a_trickled_head_is_closed_within_the_header_timeout_not_the_request_timeout() -> TestResult
{
    let app =
        spawn_with(&[("PORTCULLIS_HEADER_TIMEOUT", "1s"), ("PORTCULLIS_REQUEST_TIMEOUT", "30s")])
            .await;
    let mut slow = TcpStream::connect(app.address).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\nX-Slow: ").await?;
    let started = Instant::now();
    // One byte every 100 ms: the head keeps arriving, and never completes.
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer)).await;

    trickle.abort();
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout");
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_the_header_timeout() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_HEADER_TIMEOUT", "1s")]).await;
    let mut silent = TcpStream::connect(app.address).await?;

    let answer = closed_within(&mut silent, Duration::from_secs(5)).await;

    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_within_the_header_timeout() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_HEADER_TIMEOUT", "1s")]).await;
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
        spawn_with(&[("PORTCULLIS_MAX_CONNECTIONS", "20"), ("PORTCULLIS_HEADER_TIMEOUT", "1s")])
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

/// A raw answer cut into its status line, its fields (names lower-cased) and its body.
struct RawAnswer {
    status: String,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    /// The first answer in `bytes`, and what follows it.
    fn parse(bytes: &[u8]) -> (RawAnswer, &[u8]) {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("no complete head");
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default().to_owned();
        let fields: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let answer = RawAnswer { status, fields, body: Vec::new() };
        let length: usize = answer.field("content-length").parse().expect("no content-length");
        let body = &bytes[end + 4..];
        let answer = RawAnswer { body: body[..length].to_vec(), ..answer };
        (answer, &body[length..])
    }

    fn field(&self, name: &str) -> &str {
        self.fields.iter().find(|(n, _)| n == name).map_or("", |(_, value)| value.as_str())
    }

    /// Asserts a problem of `status` and `code` with the request id and the security headers,
    /// as `assert_edge_problem` does for a response reqwest read.
    fn assert_problem(&self, status: StatusCode, code: &str) {
        let line = format!("HTTP/1.1 {} {}", status.as_u16(), status.canonical_reason().unwrap());
        assert_eq!(self.status, line);
        assert_eq!(self.field("content-type"), "application/problem+json");
        assert_eq!(self.field("x-content-type-options"), "nosniff");
        assert_eq!(self.field("x-frame-options"), "DENY");
        assert_eq!(self.field("cache-control"), "no-store");
        assert_eq!(self.field("connection"), "close");
        for name in ["strict-transport-security", "content-security-policy", "referrer-policy"] {
            assert!(!self.field(name).is_empty(), "no {name}");
        }
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(body["code"], code);
        assert_eq!(body["type"], format!("/errors/{code}"));
        assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
        assert_eq!(body["request_id"], self.field("x-request-id"));
        assert_eq!(self.field("x-request-id").len(), 36);
    }
}

/// Sends `bytes` on a new connection and parses the single answer, after which the server must
/// have closed the connection.
async fn refused(app: &common::TestApp, bytes: &[u8]) -> RawAnswer {
    let raw = raw_exchange(app.address, bytes, Duration::from_secs(5)).await;
    let (answer, rest) = RawAnswer::parse(&raw);
    assert!(rest.is_empty(), "more after the answer: {}", String::from_utf8_lossy(rest));
    answer
}

#[tokio::test]
async fn a_header_block_over_the_hard_limit_answers_431_problem_details() -> TestResult {
    let app = spawn_with(&[]).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: portcullis\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(140 * 1024)
    );

    let answer = refused(&app, request.as_bytes()).await;

    answer.assert_problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large");
    Ok(())
}

#[tokio::test]
async fn more_than_100_header_fields_answer_431_problem_details() -> TestResult {
    let app = spawn_with(&[]).await;
    let fields: String = (0..101).map(|i| format!("X-Field-{i}: 1\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: portcullis\r\n{fields}\r\n");

    let answer = refused(&app, request.as_bytes()).await;

    answer.assert_problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large");
    Ok(())
}

#[tokio::test]
async fn conflicting_content_lengths_answer_400_problem_details() -> TestResult {
    let app = spawn_with(&[]).await;
    let request = "POST /v1/auth/login HTTP/1.1\r\nHost: portcullis\r\nContent-Type: \
                   application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";

    let answer = refused(&app, request.as_bytes()).await;

    answer.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    Ok(())
}

#[tokio::test]
async fn a_malformed_request_line_answers_400_problem_details() -> TestResult {
    let app = spawn_with(&[]).await;

    let answer = refused(&app, b"GET /healthz HTTP/1.1 extra\r\nHost: p\r\n\r\n").await;

    answer.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    Ok(())
}

#[tokio::test]
async fn a_malformed_head_after_pipelined_requests_is_answered_after_them() -> TestResult {
    let app = spawn_with(&[]).await;
    // A chunked body, then a request with a body, then garbage: the heads are found across
    // both framings, and the answers come in order.
    let credentials = r#"{"email":"nobody@example.com","password":"Wrong-Horse-42"}"#;
    let login = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x};x=y\r\n{credentials}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        credentials.len()
    );
    let health = "GET /healthz HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nGET ";
    let garbage = "GET /healthz HTTP/1.1 extra\r\nHost: p\r\n\r\n";
    let request = format!("{login}{health}{garbage}");

    let raw = raw_exchange(app.address, request.as_bytes(), Duration::from_secs(5)).await;

    let (first, rest) = RawAnswer::parse(&raw);
    assert_eq!(first.status, "HTTP/1.1 401 Unauthorized");
    let (second, rest) = RawAnswer::parse(rest);
    assert_eq!(second.status, "HTTP/1.1 200 OK");
    let (third, rest) = RawAnswer::parse(rest);
    third.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(rest));
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
