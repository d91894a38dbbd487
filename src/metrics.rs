//! Prometheus metrics: requests by route and status, latency, security events, refusals, and
//! password hashing. One registry, built at start and passed down; nothing global.
//!
//! Every label has a fixed, finite set of values, because a series is never evicted: one label
//! value an attacker chooses per request is a memory leak that also grows every scrape (the
//! Prometheus naming guide: "do not use labels to store dimensions with high cardinality").
//! - `method`: the nine methods of RFC 9110 §9 and RFC 5789 (PATCH), anything else `other`;
//! - `route`: the router's pattern (`/v1/auth/sessions/{id}`), never the raw path, or `unmatched`;
//! - `status`: the three-digit code (100–999);
//! - `type`, `outcome`, `reason`: names from the fixed audit enums and refusal reasons, taken as
//!   `&'static str` so that no request-derived string can become one.

use axum::http::{Method, StatusCode};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method label: a standard method by name, any extension method (RFC 9110 §9.1 lets a
/// client send any token) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    security_events: IntCounterVec,
    refusals: IntCounterVec,
    hashes: IntCounter,
    hashes_waiting: IntGauge,
    mail: MailMetrics,
}

/// The outbox: messages queued, sent and given up on this instance, and how the shared outbox
/// stands (read from the database by every sender).
#[derive(Clone)]
pub struct MailMetrics {
    pub queued: IntCounter,
    pub sent: IntCounter,
    pub failed: IntCounter,
    pub waiting: IntGauge,
    pub oldest_waiting_seconds: IntGauge,
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
        let mail = MailMetrics {
            queued: IntCounter::new("mail_queued_total", "Messages put in the outbox")?,
            sent: IntCounter::new("mail_sent_total", "Messages delivered")?,
            failed: IntCounter::new(
                "mail_failed_total",
                "Messages given up after MAIL_RETRY_FOR without a delivery",
            )?,
            waiting: IntGauge::new("mail_waiting", "Messages in the outbox")?,
            oldest_waiting_seconds: IntGauge::new(
                "mail_oldest_waiting_seconds",
                "Age of the oldest message in the outbox (0 when empty)",
            )?,
        };
        registry.register(Box::new(mail.queued.clone()))?;
        registry.register(Box::new(mail.sent.clone()))?;
        registry.register(Box::new(mail.failed.clone()))?;
        registry.register(Box::new(mail.waiting.clone()))?;
        registry.register(Box::new(mail.oldest_waiting_seconds.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            security_events,
            refusals,
            hashes,
            hashes_waiting,
            mail,
        })
    }

    pub fn mail(&self) -> &MailMetrics {
        &self.mail
    }

    /// `route` must be a pattern of the router or [`UNMATCHED_ROUTE`]: a bounded set.
    pub fn observe_request(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let method = method_label(method);
        self.http_requests.with_label_values(&[method, route, status.as_str()]).inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    /// `kind` and `outcome`: the names of `EventType` and `Outcome`.
    pub fn security_event(&self, kind: &'static str, outcome: &'static str) {
        self.security_events.with_label_values(&[kind, outcome]).inc();
    }

    /// `reason`: the budget (`ip`, `account`, `reads`), `locked` or `hashing_queue_full`.
    pub fn refusal(&self, reason: &'static str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_share_one_label() {
        for raw in ["PURGE", "X-1", "get", "PROPFIND"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{raw}");
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
