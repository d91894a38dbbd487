//! An open-loop load driver: requests at a constant arrival rate, whatever the server does.
//!
//! Why hand-written: wrk (and `wrk -R`-less wrk in Debian) is closed-loop, each connection waiting
//! for its answer before sending again, so a slow server slows the load down and its queueing
//! never shows in the latencies (coordinated omission). oha and wrk2 can send at a constant rate,
//! but neither can make a request's body from an earlier response, which refresh needs: refresh
//! tokens rotate on every use, so each refresh must carry the token the previous refresh of its
//! chain returned. This driver schedules request `i` at `t0 + i / rate`, sends it at that time on a
//! task of its own (however many earlier requests are still waiting, up to a bound), and measures
//! its latency from the *scheduled* time, so time spent waiting behind a saturated server or a
//! late driver counts. Each request has a deadline (scheduled time + timeout); those that miss it
//! are counted as timeouts. A request that would exceed the in-flight bound is not sent and is
//! counted as skipped, so the driver's memory stays bounded when the server stops answering.
//!
//! tokio's timer has a resolution of 1 ms, so at rates above 1000/s several requests leave in the
//! same tick; their latency still counts from their own scheduled times.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::util::{ms, percentile};

/// What a request's future reports.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// An HTTP answer: its status, and whether it carried `Retry-After`.
    Status { status: u16, retry_after: bool },
    /// No answer: connection refused or reset, unreadable response.
    Failed,
    /// Not sent: nothing to send it with (no free refresh chain).
    NotSent,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Status { status: u16, retry_after: bool },
    Failed,
    Timeout,
    Skipped,
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub kind: Kind,
    /// From the scheduled send time to the answer.
    pub latency: Duration,
    /// From the scheduled send time to the moment the driver started sending: the driver's own
    /// lateness, part of `latency` (zero for requests not sent).
    pub lag: Duration,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub offered_rate: f64,
    pub duration: Duration,
    pub samples: Vec<Sample>,
}

impl Outcome {
    pub fn count(&self, which: impl Fn(&Kind) -> bool) -> usize {
        self.samples.iter().filter(|s| which(&s.kind)).count()
    }

    /// Answers per second (over the scheduling window) that match.
    pub fn rate(&self, which: impl Fn(&Kind) -> bool) -> f64 {
        self.count(which) as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    pub fn latency(&self, which: impl Fn(&Kind) -> bool, p: f64) -> Duration {
        let latencies: Vec<Duration> =
            self.samples.iter().filter(|s| which(&s.kind)).map(|s| s.latency).collect();
        percentile(&latencies, p)
    }

    /// The driver's own lateness at the `p`-th percentile, over the requests it sent.
    pub fn lag(&self, p: f64) -> Duration {
        let lags: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| !matches!(s.kind, Kind::Skipped))
            .map(|s| s.lag)
            .collect();
        percentile(&lags, p)
    }

    pub fn timeouts(&self) -> usize {
        self.count(|k| matches!(k, Kind::Timeout))
    }

    pub fn skipped(&self) -> usize {
        self.count(|k| matches!(k, Kind::Skipped))
    }

    pub fn failed(&self) -> usize {
        self.count(|k| matches!(k, Kind::Failed))
    }

    /// Status counts, for reports: `200×812 503×7311 timeout×0`.
    pub fn statuses_text(&self) -> String {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for sample in &self.samples {
            let key = match sample.kind {
                Kind::Status { status, .. } => status.to_string(),
                Kind::Failed => "failed".into(),
                Kind::Timeout => "timeout".into(),
                Kind::Skipped => "skipped".into(),
            };
            *counts.entry(key).or_default() += 1;
        }
        counts.iter().map(|(k, n)| format!("{k}×{n}")).collect::<Vec<_>>().join(" ")
    }

    pub fn json(&self) -> serde_json::Value {
        let ok = |k: &Kind| matches!(k, Kind::Status { status: 200..=299, .. });
        serde_json::json!({
            "offered_rate": self.offered_rate,
            "duration_s": self.duration.as_secs_f64(),
            "sent": self.samples.len() - self.skipped(),
            "ok_rate": self.rate(ok),
            "ok_p50_ms": ms(self.latency(ok, 50.0)),
            "ok_p99_ms": ms(self.latency(ok, 99.0)),
            "timeouts": self.timeouts(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "statuses": self.statuses_text(),
            "driver_lag_p50_ms": ms(self.lag(50.0)),
            "driver_lag_p99_ms": ms(self.lag(99.0)),
        })
    }
}

/// Sends `request(i)` at `t0 + i / rate` for `duration`, at most `max_in_flight` at once, each
/// given until its scheduled time + `timeout`; returns once every sent request has ended.
pub async fn run<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    timeout: Duration,
    request: F,
) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let request = Arc::new(request);
    let total = (rate * duration.as_secs_f64()).floor().max(0.0) as u64;
    let samples = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now() + Duration::from_millis(5);
    for i in 0..total {
        let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled).await;
        }
        if in_flight.load(Ordering::SeqCst) >= max_in_flight {
            let sample =
                Sample { kind: Kind::Skipped, latency: Duration::ZERO, lag: Duration::ZERO };
            samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
            continue;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let (request, samples, in_flight) = (request.clone(), samples.clone(), in_flight.clone());
        tokio::spawn(async move {
            let lag = Instant::now().saturating_duration_since(scheduled);
            let kind = match tokio::time::timeout_at(scheduled + timeout, request(i)).await {
                Err(_) => Kind::Timeout,
                Ok(Reply::Status { status, retry_after }) => Kind::Status { status, retry_after },
                Ok(Reply::Failed) => Kind::Failed,
                Ok(Reply::NotSent) => Kind::Skipped,
            };
            let latency = Instant::now().saturating_duration_since(scheduled);
            samples.lock().unwrap_or_else(|e| e.into_inner()).push(Sample { kind, latency, lag });
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
    // Every request ends by its deadline; allow a little more for the tasks to report.
    let wait_until = Instant::now() + timeout + Duration::from_secs(2);
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    Outcome { offered_rate: rate, duration, samples }
}

/// The reply of a reqwest send: its status and whether it carried `Retry-After`; the body is
/// read, so that the connection can be reused.
pub async fn reply(response: reqwest::Result<reqwest::Response>) -> (Reply, Option<Vec<u8>>) {
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key(reqwest::header::RETRY_AFTER);
            match response.bytes().await {
                Ok(body) => (Reply::Status { status, retry_after }, Some(body.to_vec())),
                Err(_) => (Reply::Failed, None),
            }
        }
        Err(_) => (Reply::Failed, None),
    }
}

/// Refresh chains for the open-loop driver: a request takes a free chain's current token, and a
/// successful refresh puts the rotated one back. A chain whose refresh failed or timed out is
/// lost (its token may have rotated without our seeing the new one; reusing it would revoke the
/// session), and counted.
pub struct Chains {
    free: Mutex<Vec<String>>,
    lost: AtomicUsize,
}

impl Chains {
    pub fn new(tokens: Vec<String>) -> Arc<Self> {
        Arc::new(Self { free: Mutex::new(tokens), lost: AtomicUsize::new(0) })
    }

    pub fn take(&self) -> Option<String> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    pub fn give_back(&self, token: String) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(token);
    }

    pub fn lose(&self) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }

    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// A refresh request along one of `chains`: the future of a driver's `request(i)`. A timeout
/// cancels the future before it can give the chain back, which loses it, as it must.
pub fn refresh(
    client: reqwest::Client,
    base: Arc<str>,
    chains: Arc<Chains>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static {
    move |_| {
        let (client, base, chains) = (client.clone(), base.clone(), chains.clone());
        Box::pin(async move {
            let Some(token) = chains.take() else { return Reply::NotSent };
            let mut guard = LostUnlessReturned { chains: &chains, returned: false };
            let body = serde_json::json!({ "refresh_token": token });
            let sent = client.post(format!("{base}/v1/auth/refresh")).json(&body).send().await;
            let (reply, body) = reply(sent).await;
            let next = body
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["refresh_token"].as_str().map(str::to_owned));
            if let (Reply::Status { status: 200, .. }, Some(next)) = (reply, next) {
                chains.give_back(next);
                guard.returned = true;
            }
            reply
        })
    }
}

struct LostUnlessReturned<'a> {
    chains: &'a Chains,
    returned: bool,
}

impl Drop for LostUnlessReturned<'_> {
    fn drop(&mut self) {
        if !self.returned {
            self.chains.lose();
        }
    }
}
