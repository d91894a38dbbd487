//! What one client may hold: a connection whose answers it never takes is closed, one IP gets at
//! most `MAX_CONNECTIONS_PER_IP` connections, and `MAX_CONNECTIONS` fits the open-file limit.

use crate::common;

use std::time::{Duration, Instant};

use common::{ServerProcess, TestResult, spawn_with};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Reads until the server ends the connection (a close or a reset); `None` if it is still open
/// after `bound`, else how many bytes came.
async fn ends_within(stream: &mut TcpStream, bound: Duration) -> Option<usize> {
    let mut total = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    read.ok().map(|()| total)
}

/// Asks for `/healthz` on `stream` and reads the whole answer: true for a 200, false if the
/// server closed the connection instead.
async fn healthy(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\n\r\n").await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let complete = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return true;
                }
            }
        }
    })
    .await;
    complete == Ok(true) && answer.starts_with(b"HTTP/1.1 200 OK\r\n")
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_within_the_request_timeout() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "2s"), ("PORTCULLIS_HEADER_TIMEOUT", "30s")])
            .await;
    let one = app.client.get(app.url("/openapi.json")).send().await?.bytes().await?.len();
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(1024)?;
    let mut slow = socket.connect(app.address).await?;
    // Far more answers than the kernel's buffers and hyper's hold, asked for and never read.
    let pipelined = b"GET /openapi.json HTTP/1.1\r\nHost: portcullis\r\n\r\n".repeat(200);
    slow.write_all(&pipelined).await?;
    let started = Instant::now();

    // Meanwhile another client is answered...
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    // ...and once the timeout has passed, the slow one finds its connection ended.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed())).await;
    let taken = ends_within(&mut slow, Duration::from_secs(5)).await;

    let taken =
        taken.expect("the connection was still open 8.5 s after the client stopped reading");
    assert!(taken < 200 * one, "all {taken} bytes of the answers came: nothing was cut off");
    Ok(())
}

#[tokio::test]
async fn a_connection_over_the_per_ip_cap_is_closed_at_once_and_a_freed_slot_serves_again()
-> TestResult {
    let app = spawn_with(&[("PORTCULLIS_MAX_CONNECTIONS_PER_IP", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.address).await?;
        assert!(healthy(&mut stream).await, "a connection within the cap was not served");
        held.push(stream);
    }

    let mut fourth = TcpStream::connect(app.address).await?;
    let started = Instant::now();
    let answer = ends_within(&mut fourth, Duration::from_secs(2)).await;

    assert_eq!(answer, Some(0), "the fourth connection was not closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(1), "closed after {:?}", started.elapsed());
    for stream in &mut held {
        assert!(healthy(stream).await, "a connection within the cap stopped being served");
    }
    drop(held.pop());
    // The server sees the close when it next reads; then the slot is free.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = TcpStream::connect(app.address).await?;
        if healthy(&mut stream).await {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never given to a new connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn max_connections_is_clamped_below_the_open_file_limit_so_a_flood_never_exhausts_it()
-> TestResult {
    let (storage, _owner) = common::new_embedded_storage().await;
    let vars = [("PORTCULLIS_HEADER_TIMEOUT", "1s"), ("PORTCULLIS_LOG", "warn,portcullis=info")];
    let server = ServerProcess::start_with_fd_limit(&storage, &vars, 96);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.iter().any(|line: &String| line.contains("is clamped")) {
        let left = deadline.saturating_duration_since(Instant::now());
        log.push(server.log.recv_timeout(left).expect("no line said MAX_CONNECTIONS was clamped"));
    }
    let clamped = log.iter().find(|line| line.contains("is clamped")).unwrap();
    assert!(clamped.contains("\"level\":\"WARN\""), "{clamped}");
    assert!(clamped.contains("10000") && clamped.contains("96"), "{clamped}");

    // More connections than the process may open: they wait in the listen queue, served as the
    // idle ones time out, and accept never fails for want of a descriptor.
    let mut flood = Vec::new();
    for _ in 0..150 {
        flood.push(TcpStream::connect(server.address).await?);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
    let health = client.get(format!("http://{}/healthz", server.address)).send().await?;

    assert_eq!(health.status(), StatusCode::OK);
    log.extend(server.log.try_iter());
    let failures: Vec<&String> = log.iter().filter(|line| line.contains("accept failed")).collect();
    assert!(failures.is_empty(), "{failures:?}");
    Ok(())
}

#[tokio::test]
async fn an_open_file_limit_with_no_room_for_connections_stops_the_start_with_a_message() {
    let (storage, _owner) = common::new_embedded_storage().await;
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .envs(storage.env())
        .env("PORTCULLIS_BIND", "127.0.0.1:0")
        .env("PORTCULLIS_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run).await;

    let output = output.expect("the server started anyway").unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = "portcullis: PORTCULLIS_MAX_CONNECTIONS: the open-file limit (64) leaves no \
                    descriptor for connections; raise it (ulimit -n) to at least 65";
    assert!(stderr.lines().any(|line| line == expected), "{stderr}");
}
