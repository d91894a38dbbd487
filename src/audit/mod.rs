//! Typed security events and the trail they are written to.
//!
//! Every use case in `auth` records what happened through `Audit`; the event is also emitted as a
//! structured log line, so an operator sees it even before querying the trail. A request succeeds
//! only if its event was written: when the trail cannot be written the request answers 503 (the
//! action itself may have happened; every action of the API is safe to retry).
//!
//! Events are written in batches by one writer task per instance: a request hands its event to
//! the writer and waits until the batch that holds it is committed, so durability is what it
//! was with one append per event (no request succeeds before its event is stored), but the
//! chain's head, which every instance's appends queue on, is taken once per batch. While one
//! batch is written the next one gathers, so batches grow with the load by themselves, and a
//! lone event is written at once.

pub mod query;

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::store::{AuditStore, StoreError};

pub use crate::domain::audit::{AuditEvent, AuditFilter, EventType, Outcome, chain};

/// How often the chain's head is signed, when a master key is configured.
pub const HEAD_SIGN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The most events one batch carries.
const MAX_BATCH: usize = 256;

/// Events waiting for the writer; past this, `record` waits for room (backpressure).
const QUEUE: usize = 4096;

/// An event handed to the writer, and where to say whether its batch was committed.
struct Pending {
    event: AuditEvent,
    written: oneshot::Sender<Result<(), String>>,
}

/// Writes events to the trail.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    metrics: Arc<Metrics>,
    /// Signs the chain's head; derived from the master key, never stored.
    head_key: Option<[u8; 32]>,
    /// The writer task's queue, started by the first event, on the runtime that records it.
    writer: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics, head_key: None, writer: Arc::new(OnceLock::new()) }
    }

    /// Signs the chain's head with `key` (see `sign_head`), and checks the signatures.
    pub fn with_head_key(mut self, key: Option<[u8; 32]>) -> Self {
        self.head_key = key;
        self
    }

    /// Signs the current head, unless it is already signed or there is no key. Several
    /// instances may sign the same head: the store keeps one signature per position.
    pub async fn sign_head(&self, now: Timestamp) -> Result<Option<i64>, StoreError> {
        let Some(key) = &self.head_key else { return Ok(None) };
        let (seq, hash) = self.store.head().await?;
        if seq == 0 {
            return Ok(None);
        }
        let signature = chain::sign_head(key, seq, &hash);
        let signed = chain::HeadSignature { seq, hash, signature, signed_at: now };
        self.store.add_head_signature(&signed).await?;
        Ok(Some(seq))
    }

    /// Writes `event`. A request succeeds only if its event was written: the caller answers
    /// 503 when this fails, so no successful request is missing from the trail.
    pub async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.metrics.security_event(event.kind.as_str(), event.outcome.as_str());
        tracing::info!(
            target: "portcullis::audit",
            event_id = %event.id,
            event_type = event.kind.as_str(),
            outcome = event.outcome.as_str(),
            user_id = event.user_id.map(|u| u.to_string()),
            ip = event.ip.as_deref(),
            request_id = event.request_id.as_deref(),
            detail = event.detail.as_deref(),
            "security event"
        );
        let (written, outcome) = oneshot::channel();
        let pending = Pending { event, written };
        let queued = self.writer().send(pending).await;
        let result = match queued {
            Ok(()) => outcome.await.unwrap_or_else(|_| Err("the audit writer stopped".to_owned())),
            Err(_) => Err("the audit writer stopped".to_owned()),
        };
        result.map_err(|cause| {
            self.metrics.refusal("audit_unavailable");
            // Whatever broke, the trail is a backend the request needs: 503, not 500.
            StoreError::unavailable("append audit event", cause)
        })
    }

    fn writer(&self) -> &mpsc::Sender<Pending> {
        self.writer.get_or_init(|| {
            let (queue, pending) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches(self.store.clone(), pending));
            queue
        })
    }

    /// One page of events matching `filter`, newest first.
    pub async fn page(&self, filter: AuditFilter) -> Result<query::Page, StoreError> {
        let limit = filter.limit;
        let mut found = self.store.query(&AuditFilter { limit: limit + 1, ..filter }).await?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next_cursor =
            more.then(|| found.last().map(|(seq, _)| query::encode_cursor(*seq))).flatten();
        Ok(query::Page { events: found.into_iter().map(|(_, e)| e).collect(), next_cursor })
    }

    /// Checks the whole chain, in batches.
    pub async fn verify(&self) -> Result<chain::Report, StoreError> {
        let mut verifier = chain::Verifier::default();
        loop {
            let links = self.store.links(verifier.last_seq(), 1000).await?;
            if links.is_empty() {
                break;
            }
            for link in &links {
                verifier.check(link);
            }
        }
        let (head_seq, head_hash) = self.store.head().await?;
        let unchained = self.store.unchained().await?;
        let mut report = verifier.finish(head_seq, &head_hash);
        if unchained > 0 {
            report.problems.push(format!("{unchained} events are outside the chain"));
        }
        self.verify_head_signatures(&mut report).await?;
        Ok(report)
    }

    /// Each head signature must hold under the key and name the hash the chain has at its
    /// position: a trail rewritten as a whole, head included, fails here, because whoever
    /// rewrote it had the database but not the master key.
    async fn verify_head_signatures(&self, report: &mut chain::Report) -> Result<(), StoreError> {
        let mut after = 0;
        loop {
            let signatures = self.store.head_signatures(after, 1000).await?;
            let Some(last) = signatures.last() else { break };
            after = last.seq;
            for signature in &signatures {
                let Some(key) = &self.head_key else {
                    report.problems.push(
                        "the trail has head signatures but no master key is configured to check them"
                            .to_owned(),
                    );
                    return Ok(());
                };
                let link = self.store.links(signature.seq - 1, 1).await?;
                let stored = link.first().filter(|l| l.seq == Some(signature.seq));
                let matches = stored.and_then(|l| l.hash.as_deref()) == Some(&signature.hash[..]);
                if !chain::head_signature_holds(key, signature) {
                    report
                        .problems
                        .push(format!("position {}: the head signature is forged", signature.seq));
                } else if !matches {
                    report.problems.push(format!(
                        "position {}: the trail differs from what was signed (rewritten)",
                        signature.seq
                    ));
                } else {
                    report.signed_through = signature.seq;
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` events after chain position `after`, oldest first, with their positions.
    pub async fn after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let links = self.store.links(after, limit).await?;
        Ok(links.into_iter().filter_map(|l| l.seq.map(|seq| (seq, l.event))).collect())
    }

    /// The chain's last position.
    pub async fn last_position(&self) -> Result<i64, StoreError> {
        Ok(self.store.head().await?.0)
    }
}

/// The writer: takes what has queued (up to `MAX_BATCH`), appends it in one batch, tells each
/// waiting request the outcome, and goes on until every `Audit` handle is gone.
async fn write_batches(store: Arc<dyn AuditStore>, mut queue: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut events = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut waiting = Vec::with_capacity(batch.len());
        for Pending { event, written } in batch.drain(..) {
            events.push(event);
            waiting.push(written);
        }
        let outcome = store.append(&events).await.map_err(|error| {
            tracing::error!(
                events = events.len(),
                first_event_id = ?events.first().map(|e| e.id),
                error = error.with_causes(),
                "could not write audit events; their requests fail"
            );
            error.with_causes()
        });
        events.clear();
        for written in waiting {
            // A request that has gone away no longer waits; its event is written all the same.
            let _ = written.send(outcome.clone());
        }
    }
}
