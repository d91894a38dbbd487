//! Typed security events and the trail they are written to.
//!
//! Every use case in `auth` records what happened through `Audit`; the event is also emitted as a
//! structured log line, so an operator sees it even before querying the trail. A request succeeds
//! only if its event was written: when the trail cannot be written the request answers 503 (the
//! action itself may have happened; every action of the API is safe to retry).

pub mod query;

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::store::{AuditStore, StoreError};

pub use crate::domain::audit::{AuditEvent, AuditFilter, EventType, Outcome, chain};

/// Writes events to the trail.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
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
        if let Err(error) = self.store.append(&event).await {
            tracing::error!(
                event_id = %event.id,
                error = error.with_causes(),
                "could not write the audit event; the request fails"
            );
            self.metrics.refusal("audit_unavailable");
            // Whatever broke, the trail is a backend the request needs: 503, not 500.
            return Err(match error {
                StoreError::Unavailable { .. } => error,
                other => StoreError::unavailable("append audit event", other),
            });
        }
        Ok(())
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
        Ok(report)
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
