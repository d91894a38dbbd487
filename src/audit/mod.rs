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

use crate::crypto::{SealError, Sealer};
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::store::{AuditStore, StoreError};

pub use crate::domain::audit::{AuditEvent, AuditFilter, EventType, Outcome, chain};

/// The longest a deployment that runs goes without a new head signature: the head is signed at
/// least this often, also when no event came (a heartbeat).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// How often each instance signs the head: twice a heartbeat, so that one missed turn (a slow
/// database, a restart) does not leave the trail without a heartbeat.
pub const HEAD_SIGN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// How old the newest head signature may be, next to the clock or to the newest event, before
/// `verify` says the trail may have been cut at its end: two heartbeats.
pub const SIGNATURE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(120);

/// The most events one batch carries.
const MAX_BATCH: usize = 256;

/// Events waiting for the writer; past this, `record` waits for room (backpressure).
const QUEUE: usize = 4096;

/// An event handed to the writer, and where to say whether its batch was committed.
struct Pending {
    event: AuditEvent,
    written: oneshot::Sender<Result<(), String>>,
}

/// The keys of the head signatures: the one that signs, and those that signed before (under the
/// first key derivation, or the previous master key), whose signatures still hold. No `Debug`:
/// they are secrets.
#[derive(Clone, Default)]
pub struct HeadKeys {
    pub signing: Option<[u8; 32]>,
    pub former: Vec<[u8; 32]>,
}

impl HeadKeys {
    /// The head keys derived from the sealer's master keys.
    pub fn from_sealer(sealer: &Sealer) -> Result<Self, SealError> {
        Ok(Self { signing: sealer.derive(HEAD_KEY)?, former: sealer.former_keys(HEAD_KEY)? })
    }
}

/// The purpose the head key is derived for.
const HEAD_KEY: &str = "audit head";

/// Writes events to the trail.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    metrics: Arc<Metrics>,
    /// Sign the chain's head and check its signatures; derived from the master key, never
    /// stored.
    head_keys: HeadKeys,
    /// The writer task's queue, started by the first event, on the runtime that records it.
    writer: Arc<OnceLock<mpsc::Sender<Pending>>>,
    /// The highest position this process has seen signed: a newest signature below it means
    /// the trail was cut, and this process then refuses to sign over the cut.
    signed_seen: Arc<std::sync::Mutex<Option<i64>>>,
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            head_keys: HeadKeys::default(),
            writer: Arc::new(OnceLock::new()),
            signed_seen: Arc::default(),
        }
    }

    /// Signs the chain's head with `keys.signing` (see `sign_head`), and checks the signatures.
    pub fn with_head_keys(mut self, keys: HeadKeys) -> Self {
        self.head_keys = keys;
        self
    }

    /// Signs the current head at `now`, following the newest signature: at a new position, or
    /// again at the same one (a heartbeat, which only renews the time). Returns the position
    /// signed, or `None` with no key, or when another instance signed at the same moment (its
    /// signature does as well). Refuses, with an error, to sign a head behind the newest
    /// signature, or behind one this process has seen: that trail was cut, and signing it would
    /// hide the cut.
    pub async fn sign_head(&self, now: Timestamp) -> Result<Option<i64>, StoreError> {
        let Some(key) = &self.head_keys.signing else { return Ok(None) };
        let refused = |why: String| Err(StoreError::backend("sign audit head", why));
        for _ in 0..3 {
            let newest = self.store.newest_head_signature().await?;
            let (seq, hash) = self.store.head().await?;
            let seen = *self.signed_seen.lock().unwrap_or_else(|e| e.into_inner());
            let newest_seq = newest.as_ref().map(|n| n.seq);
            if let Some(seen) = seen
                && newest_seq.is_none_or(|n| n < seen)
            {
                return refused(format!(
                    "the newest head signature went back from position {seen} to {}: events were \
                     cut from the end of the trail; not signing over the cut",
                    newest_seq.map_or("none".to_owned(), |n| n.to_string())
                ));
            }
            *self.signed_seen.lock().unwrap_or_else(|e| e.into_inner()) = seen.max(newest_seq);
            let previous = match &newest {
                Some(n) if seq < n.seq || (seq == n.seq && hash != n.hash) => {
                    return refused(format!(
                        "the head (position {seq}) differs from its newest signature (position \
                         {}): the trail was rewound or rewritten; not signing it",
                        n.seq
                    ));
                }
                // Another instance renewed it already, with a later time.
                Some(n) if seq == n.seq && n.signed_at >= now => return Ok(None),
                // A heartbeat keeps the link of the signature it renews.
                Some(n) if seq == n.seq => n.previous.clone().unwrap_or(chain::GENESIS.to_vec()),
                Some(n) => n.signature.clone(),
                None => chain::GENESIS.to_vec(),
            };
            let signed = chain::sign_head(key, seq, &hash, now, &previous);
            let seen_signature = newest.as_ref().map(|n| &n.signature[..]);
            if self.store.add_head_signature(&signed, seen_signature).await? {
                let mut seen = self.signed_seen.lock().unwrap_or_else(|e| e.into_inner());
                *seen = (*seen).max(Some(seq));
                return Ok(Some(seq));
            }
        }
        // Others keep signing in between: they keep the head signed.
        Ok(None)
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

    /// Checks the whole chain, in batches, and its head signatures, as of `now`.
    pub async fn verify(&self, now: Timestamp) -> Result<chain::Report, StoreError> {
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
        self.verify_head_signatures(&mut report, now).await?;
        Ok(report)
    }

    /// Each head signature must hold under the key and name the hash the chain has at its
    /// position: a trail rewritten as a whole, head included, fails here, because whoever
    /// rewrote it had the database but not the master key. The signatures must form one chain,
    /// and the newest must be recent, next to `now` and to the newest event: whoever deletes the
    /// newest events, their signatures, and rewinds the head leaves a newest signature that
    /// stopped being renewed.
    async fn verify_head_signatures(
        &self,
        report: &mut chain::Report,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut after = -1;
        let mut signatures_chain = chain::SignatureChain::default();
        loop {
            let signatures = self.store.head_signatures(after, 1000).await?;
            let Some(last) = signatures.last() else { break };
            after = last.seq;
            for signature in &signatures {
                let Some(key) = &self.head_keys.signing else {
                    report.problems.push(
                        "the trail has head signatures but no master key is configured to check them"
                            .to_owned(),
                    );
                    return Ok(());
                };
                let stored = if signature.seq == 0 {
                    Some(chain::GENESIS.to_vec())
                } else {
                    let link = self.store.links(signature.seq - 1, 1).await?;
                    link.into_iter().find(|l| l.seq == Some(signature.seq)).and_then(|l| l.hash)
                };
                let former = &self.head_keys.former;
                if !(chain::head_signature_holds(key, signature)
                    || former.iter().any(|key| chain::head_signature_holds(key, signature)))
                {
                    report
                        .problems
                        .push(format!("position {}: the head signature is forged", signature.seq));
                } else if stored.as_deref() != Some(&signature.hash[..]) {
                    report.problems.push(format!(
                        "position {}: the trail differs from what was signed (rewritten)",
                        signature.seq
                    ));
                } else {
                    report.signed_through = signature.seq;
                }
                if let Some(problem) = signatures_chain.check(signature) {
                    report.problems.push(problem);
                }
            }
        }
        if self.head_keys.signing.is_none() {
            report.notes.push(
                "the head is not signed: there is no master key (PORTCULLIS_MASTER_KEY or \
                 PORTCULLIS_MASTER_KEY_FILE), so events cut from the end of the trail, with the \
                 head rewound, cannot be found"
                    .to_owned(),
            );
            return Ok(());
        }
        let Some(newest) = signatures_chain.newest() else {
            if report.head_seq > 0 {
                report.problems.push(format!(
                    "the head (position {}) has no signature: head signatures were deleted",
                    report.head_seq
                ));
            }
            return Ok(());
        };
        report.signed_at = Some(newest.signed_at);
        let max_age =
            chrono::Duration::from_std(SIGNATURE_MAX_AGE).unwrap_or(chrono::Duration::MAX);
        let minutes = |age: chrono::Duration| age.num_seconds() as f64 / 60.0;
        if now - newest.signed_at > max_age {
            report.problems.push(format!(
                "the newest head signature (position {}) was made at {}, {:.1} minutes ago, more \
                 than two heartbeats: no instance has signed since (stopped?), or the newest \
                 events and their signatures were cut",
                newest.seq,
                newest.signed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                minutes(now - newest.signed_at)
            ));
        } else if let Some(event_at) = report.newest_event_at
            && event_at - newest.signed_at > max_age
        {
            report.problems.push(format!(
                "the newest head signature (position {}) is {:.1} minutes older than the newest \
                 event, more than two heartbeats: events were written unsigned, or signed ones \
                 were cut",
                newest.seq,
                minutes(event_at - newest.signed_at)
            ));
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
