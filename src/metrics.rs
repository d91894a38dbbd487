//! Prometheus metrics: requests by route and status, latency, security events, refusals, and
//! password hashing. One registry, built at start and passed down; nothing global.
//!
//! Labels are bounded: routes are the router's patterns (`/v1/auth/sessions/{id}`), never raw
//! paths, so a scan of random URLs cannot grow the series.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    security_events: IntCounterVec,
    refusals: IntCounterVec,
    hashes: IntCounter,
    hashes_waiting: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("portcullis".to_owned()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered, by route and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer, by route")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route"],
        )?;
        let security_events = IntCounterVec::new(
            Opts::new("security_events_total", "Audit events written, by type and outcome"),
            &["type", "outcome"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new("refusals_total", "Requests refused by a budget or a lock"),
            &["reason"],
        )?;
        let hashes = IntCounter::new("password_hashes_total", "Argon2id hashes and verifications")?;
        let hashes_waiting =
            IntGauge::new("password_hashes_waiting", "Hashes waiting for a hashing slot")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(security_events.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(hashes.clone()))?;
        registry.register(Box::new(hashes_waiting.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            security_events,
            refusals,
            hashes,
            hashes_waiting,
        })
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    pub fn security_event(&self, kind: &str, outcome: &str) {
        self.security_events.with_label_values(&[kind, outcome]).inc();
    }

    /// `reason`: the budget (`ip`, `account`, `reads`) or `locked`.
    pub fn refusal(&self, reason: &str) {
        self.refusals.with_label_values(&[reason]).inc();
    }

    pub fn hash_started(&self) {
        self.hashes.inc();
    }

    pub fn hashes_waiting(&self) -> &IntGauge {
        &self.hashes_waiting
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buffer).is_err() {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
