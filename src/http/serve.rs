//! Serving connections: the accept loop, HTTP/1.1 on hyper, optional TLS, the connection caps
//! and graceful shutdown.
//!
//! Invariants, each against a way to take the service down from one laptop (OWASP Denial of
//! Service Cheat Sheet):
//! - **Header reading is bounded.** A connection whose request head (or TLS handshake) is not
//!   complete within `header_timeout` is closed, also between keep-alive requests, so a client
//!   trickling header bytes (slowloris) holds nothing for long. The router's timeout then bounds
//!   the body and the answer.
//! - **Answers must be taken.** A client that stops reading is disconnected once it has taken
//!   nothing for `request_timeout` (see `guard`), however many requests it pipelined.
//! - **Errors before routing are problem details.** Each request head is checked before hyper
//!   parses it (see `head` and `guard`), so hyper's own bare 400 and 431 never go out.
//! - **Connections are capped**, in all and per client IP (see `limits`). Each connection holds
//!   a semaphore permit; with none left the loop stops accepting, so further clients wait in the
//!   kernel's listen queue instead of taking file descriptors the process needs for its database
//!   and Redis. One over the per-IP cap is closed at once.
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
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

use super::guard::GuardedIo;
use super::head::{HARD_HEADER_LIMIT, MAX_HEADER_FIELDS};
use super::limits::{IpSlot, PerIp};
use super::tls::Tls;

/// How the listener behaves.
#[derive(Clone, Copy, Debug)]
pub struct ServeSettings {
    /// A request head, or a TLS handshake, must arrive within this (`HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// A client that takes no answer bytes for this long is disconnected (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Connections served at once (`MAX_CONNECTIONS`, within the open-file limit).
    pub max_connections: usize,
    /// Connections served at once from one client IP (`MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// How long requests in flight may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Set when `max_connections` was lowered to fit the open-file limit, for the log.
    pub clamped: Option<Clamped>,
}

/// `MAX_CONNECTIONS` as configured, and the open-file limit that lowered it.
#[derive(Clone, Copy, Debug)]
pub struct Clamped {
    pub configured: usize,
    pub open_file_limit: u64,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    if let Some(Clamped { configured, open_file_limit }) = settings.clamped {
        tracing::warn!(
            configured,
            serving = settings.max_connections,
            open_file_limit,
            "MAX_CONNECTIONS {configured} is clamped to {} below the open-file limit of \
             {open_file_limit}",
            settings.max_connections
        );
    }
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let per_ip = PerIp::new(settings.max_connections_per_ip);
    let (stop, stopped) = watch::channel(false);
    let http = http_builder(settings.header_timeout);
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
        let Some(slot) = per_ip.acquire(peer.ip()) else {
            // Closed at once: the client learns at once, and holds nothing.
            tracing::debug!(%peer, "connection over the per-IP cap closed");
            continue;
        };
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            tls: tls.clone(),
            stopped: stopped.clone(),
            settings,
            _slot: slot,
        };
        tokio::spawn(async move {
            connection.serve(stream, peer).await;
            drop(permit);
        });
    }
    // Closing the listener refuses new connections at once, instead of leaving them queued
    // until the process exits.
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: all of them back means all are done.
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(settings.drain_timeout, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("requests still in flight after the drain timeout were cut off");
    }
}

/// HTTP/1.1 with the header-read timeout and the buffer and field limits.
fn http_builder(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(MAX_HEADER_FIELDS)
        .max_buf_size(HARD_HEADER_LIMIT);
    http
}

/// One accepted connection and what it needs to be served.
struct Connection {
    app: Router,
    http: http1::Builder,
    tls: Option<Arc<Tls>>,
    /// Becomes true when the server shuts down.
    stopped: watch::Receiver<bool>,
    settings: ServeSettings,
    _slot: IpSlot,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let result = match self.tls.clone() {
            None => self.run(stream, peer).await,
            Some(tls) => {
                let handshake = tls.acceptor().accept(stream);
                match tokio::time::timeout(self.settings.header_timeout, handshake).await {
                    Ok(Ok(stream)) => self.run(stream, peer).await,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        if let Err(error) = result {
            // A client that goes away or times out is routine, not an error of the service.
            tracing::debug!(%error, %peer, "connection ended with an error");
        }
    }

    /// Serves HTTP on `stream` until the client or hyper ends it, shutting hyper down gracefully
    /// when a request head is refused or the server stops.
    async fn run<S>(mut self, stream: S, peer: SocketAddr) -> Result<(), hyper::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // The client-IP extractor reads the peer address from `ConnectInfo`, as axum sets it.
        let service = self.app.map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let refused = Arc::new(Notify::new());
        let io = GuardedIo::new(stream, self.settings.request_timeout, refused.clone());
        let connection =
            self.http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => return result,
                () = refused.notified(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = self.stopped.wait_for(|stopped| *stopped), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
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
