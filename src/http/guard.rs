//! One connection's byte stream, between the socket (or TLS) and hyper, with the two guards
//! hyper lacks.
//!
//! - **Every request head is read here before hyper reads it** (see `head`). A head hyper would
//!   answer with a bare status is held back instead: the connection is asked to close
//!   (`refused` is notified, and the connection task shuts hyper down gracefully), hyper
//!   finishes the answer it is writing, if any, and when it shuts the stream down the problem
//!   details are written in its place. Input is then read and dropped for a moment (a lingering
//!   close), so that the client's unread request does not turn the close into a reset that
//!   loses the answer.
//! - **An answer must be taken within the write timeout** (`REQUEST_TIMEOUT`). From the moment
//!   the client stops taking bytes (a write or flush that cannot complete) until all that hyper
//!   buffered is in the kernel, at most that long may pass; then writes fail and hyper closes
//!   the connection. A client that pipelines requests and never reads holds its connection that
//!   long, not forever; what it can make the server buffer meanwhile is bounded by hyper's
//!   write buffer, past which hyper reads no further request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::head::{self, Body, Chunked, Head, MAX_HEADER_BLOCK, Refusal};

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// How long, and how much, input is read and dropped after a refusal is written.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 4 * MAX_HEADER_BLOCK;

/// A stream whose request heads are checked and whose answers must be taken in time.
pub struct GuardedIo<S> {
    inner: S,
    inbox: Inbox,
    framing: Framing,
    eof: bool,
    write_timeout: Duration,
    /// Running while the client takes no bytes.
    stalled: Option<Pin<Box<Sleep>>>,
    refused: Arc<Notify>,
    /// The refusal, written when hyper shuts the stream down.
    answer: Option<Answer>,
}

/// What the next unread bytes are.
#[derive(Debug)]
enum Framing {
    Head,
    Body {
        left: u64,
        keep_alive: bool,
    },
    Chunked {
        chunked: Chunked,
        keep_alive: bool,
    },
    /// Nothing more is checked: hyper closes after this exchange, or the framing is lost.
    Unchecked,
    Refused,
}

impl Framing {
    fn after(keep_alive: bool) -> Framing {
        if keep_alive { Framing::Head } else { Framing::Unchecked }
    }
}

struct Answer {
    bytes: Vec<u8>,
    written: usize,
    shut: bool,
    dropped: usize,
    linger: Option<Pin<Box<Sleep>>>,
}

impl<S> GuardedIo<S> {
    /// `refused` is notified when a head is refused: the connection should then be shut down
    /// gracefully.
    pub fn new(inner: S, write_timeout: Duration, refused: Arc<Notify>) -> Self {
        GuardedIo {
            inner,
            inbox: Inbox::default(),
            framing: Framing::Head,
            eof: false,
            write_timeout,
            stalled: None,
            refused,
            answer: None,
        }
    }

    /// Classifies more of the unread bytes; true if some were cleared for hyper.
    fn classify(&mut self) -> bool {
        let pending = self.inbox.pending();
        let available = pending.len();
        if available == 0 {
            return false;
        }
        let (cleared, next) = match &mut self.framing {
            Framing::Refused => return false,
            Framing::Unchecked => (available, None),
            Framing::Body { left, keep_alive } => {
                let take = (*left).min(available as u64);
                *left -= take;
                (take as usize, (*left == 0).then(|| Framing::after(*keep_alive)))
            }
            Framing::Chunked { chunked, keep_alive } => match chunked.scan(pending) {
                Ok((taken, done)) => (taken, done.then(|| Framing::after(*keep_alive))),
                // Hyper fails the body at this point too, and closes the connection after it.
                Err(_) => (available, Some(Framing::Unchecked)),
            },
            Framing::Head => {
                // Only a new line can complete a head or show it wrong; only size can make it
                // too large.
                let fresh = &pending[self.inbox.scanned.min(available)..];
                if !fresh.contains(&b'\n') && available <= MAX_HEADER_BLOCK {
                    self.inbox.scanned = available;
                    return false;
                }
                match head::check(pending) {
                    Head::Partial => {
                        self.inbox.scanned = available;
                        return false;
                    }
                    Head::Refused(refusal) => {
                        self.refuse(refusal);
                        return false;
                    }
                    Head::Complete { len, body, keep_alive } => {
                        self.inbox.scanned = 0;
                        let next = match body {
                            Body::None => Framing::after(keep_alive),
                            Body::Length(left) => Framing::Body { left, keep_alive },
                            Body::Chunked => {
                                Framing::Chunked { chunked: Chunked::new(), keep_alive }
                            }
                        };
                        (len, Some(next))
                    }
                }
            }
        };
        if let Some(next) = next {
            self.framing = next;
        }
        self.inbox.cleared += cleared;
        cleared > 0
    }

    fn refuse(&mut self, refusal: Refusal) {
        let (status, headers, body, id) = super::middleware::refusal(refusal.error());
        tracing::info!(request_id = %id, status = status.as_u16(), "request refused before routing");
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )
        .into_bytes();
        for (name, value) in &headers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
        let tail =
            format!("content-length: {}\r\nconnection: close\r\ndate: {date}\r\n\r\n", body.len());
        bytes.extend_from_slice(tail.as_bytes());
        bytes.extend_from_slice(body.as_bytes());
        self.answer = Some(Answer { bytes, written: 0, shut: false, dropped: 0, linger: None });
        self.framing = Framing::Refused;
    }

    /// A write or flush that cannot complete: fails once the client has taken nothing for the
    /// write timeout.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.write_timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took no answer within the request timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> GuardedIo<S> {
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut spare = ReadBuf::new(self.inbox.spare());
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut spare))?;
        let read = spare.filled().len();
        self.inbox.end += read;
        self.eof |= read == 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut delivered = false;
        loop {
            if this.inbox.cleared > 0 {
                this.inbox.deliver(buf);
                delivered = true;
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.classify() {
                continue;
            }
            if delivered {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.framing, Framing::Refused) {
                // Nothing more reaches hyper; the connection task shuts it down.
                this.refused.notify_one();
                return Poll::Pending;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            ready!(this.fill(cx))?;
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.stall(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.stall(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stall(cx),
            Poll::Ready(Ok(())) => {
                // Everything hyper wrote is with the kernel: the client is keeping up.
                this.stalled = None;
                Poll::Ready(Ok(()))
            }
            failed => failed,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(answer) = this.answer.as_mut() else {
            return match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Pending => this.stall(cx),
                done => done,
            };
        };
        while answer.written < answer.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &answer.bytes[answer.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => answer.written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return this.stall(cx),
            }
        }
        if !answer.shut {
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => answer.shut = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return this.stall(cx),
            }
        }
        // The lingering close: drop input until the client closes, for a moment at most.
        let linger = answer.linger.get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        if linger.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 2048];
        while answer.dropped < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    answer.dropped += buf.filled().len();
                }
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Bytes read from the socket: the front `cleared` of them may go to hyper, the rest are not
/// classified yet. Only an incomplete head waits here, so it holds at most `MAX_HEADER_BLOCK`
/// and one read.
#[derive(Default)]
struct Inbox {
    data: Vec<u8>,
    start: usize,
    end: usize,
    cleared: usize,
    /// How many of the unclassified bytes were already searched for a line end.
    scanned: usize,
}

impl Inbox {
    fn pending(&self) -> &[u8] {
        &self.data[self.start + self.cleared..self.end]
    }

    fn deliver(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.cleared.min(buf.remaining());
        buf.put_slice(&self.data[self.start..self.start + n]);
        self.start += n;
        self.cleared -= n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // An idle connection keeps one read's worth, not the largest head it ever sent.
            if self.data.len() > 2 * READ_CHUNK {
                self.data = Vec::new();
            }
        }
    }

    /// Room for one more read at the end.
    fn spare(&mut self) -> &mut [u8] {
        if self.data.len() - self.end < READ_CHUNK && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < READ_CHUNK {
            self.data.resize(self.end + READ_CHUNK, 0);
        }
        &mut self.data[self.end..]
    }
}
