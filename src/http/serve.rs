//! Serving connections: the accept loop, HTTP/1.1 on hyper, optional TLS, the connection cap
//! and graceful shutdown.
//!
//! Invariants, each against a way to take the service down from one laptop (OWASP Denial of
//! Service Cheat Sheet):
//! - **Header reading is bounded.** A connection whose request head (or TLS handshake) is not
//!   complete within `header_read_timeout` is closed, also between keep-alive requests, so a
//!   client trickling header bytes (slowloris) holds nothing for long. The router's timeout
//!   then bounds the body and the answer.
//! - **Connections are capped.** Each connection holds a semaphore permit; with none left the
//!   loop stops accepting, so further clients wait in the kernel's listen queue instead of
//!   taking file descriptors the process needs for its database and Redis.
//! - **Accept errors never stop or spin the loop.** `EMFILE`/`ENFILE` and the like are retried
//!   after a pause that doubles from 10 ms to 1 s and resets on the next success.
//! - **Shutdown drains.** Once `shutdown` completes the listener is closed, requests in flight
//!   get up to `drain_timeout` to finish (with `Connection: close`), and then `serve` returns.
//!
//! Only HTTP/1.1 is served: hyper's HTTP/2 server has no header-read timeout, and every client
//! of this API speaks HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::tls::Tls;

/// The largest request head hyper parses at all: past it hyper itself answers a bare 431 and
/// closes. Between the contract's 64 KiB and this, the `problem_details` middleware answers 431
/// problem details, so the common oversize case gets the contract's body; the read buffer per
/// connection stays bounded by the same figure.
pub const HARD_HEADER_LIMIT: usize = 128 * 1024;

/// How the listener behaves.
#[derive(Clone, Copy, Debug)]
pub struct ServeSettings {
    /// A request head, or a TLS handshake, must arrive within this (`REQUEST_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// Connections served at once (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long requests in flight may take to finish after shutdown begins.
    pub drain_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let http = http_builder(settings.header_read_timeout);
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        // The permit comes first: without one, nothing is accepted and the kernel queues.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff.reset();
                pair
            }
            Err(error) => {
                let wait = backoff.next_wait();
                tracing::warn!(%error, wait_ms = wait.as_millis() as u64, "accept failed");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            tls: tls.clone(),
            watcher: graceful.watcher(),
            handshake_timeout: settings.header_read_timeout,
        };
        tokio::spawn(async move {
            connection.serve(stream, peer).await;
            drop(permit);
        });
    }
    // Closing the listener refuses new connections at once, instead of leaving them queued
    // until the process exits.
    drop(listener);
    if tokio::time::timeout(settings.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the drain timeout were cut off");
    }
}

/// HTTP/1.1 with the header-read timeout and the header size limit.
fn http_builder(header_read_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_header_size(HARD_HEADER_LIMIT)
        .max_buf_size(HARD_HEADER_LIMIT);
    http
}

/// One accepted connection and what it needs to be served.
struct Connection {
    app: Router,
    http: http1::Builder,
    tls: Option<Arc<Tls>>,
    watcher: Watcher,
    handshake_timeout: Duration,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        // The client-IP extractor reads the peer address from `ConnectInfo`, as axum sets it.
        let service = self.app.map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let result = match self.tls {
            None => {
                let connection = self.http.serve_connection(TokioIo::new(stream), service);
                self.watcher.watch(connection).await
            }
            Some(tls) => {
                let handshake = tls.acceptor().accept(stream);
                let stream = match tokio::time::timeout(self.handshake_timeout, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let connection = self.http.serve_connection(TokioIo::new(stream), service);
                self.watcher.watch(connection).await
            }
        };
        if let Err(error) = result {
            // A client that goes away or times out is routine, not an error of the service.
            tracing::debug!(%error, %peer, "connection ended with an error");
        }
    }
}

/// The pause after a failed accept: 10 ms, doubling up to 1 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn next_wait(&mut self) -> Duration {
        let wait = Self::FIRST.saturating_mul(1 << self.failures.min(10)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_backoff_doubles_from_10ms_to_1s_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..10).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(10));
    }
}
