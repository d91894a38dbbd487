//! The audit trait: the append-only, hash-chained trail and its head signatures.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::audit::chain::{HeadSignature, Link};
use crate::domain::audit::{AuditEvent, AuditFilter};

/// The append-only, hash-chained audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `events` as the next links of the chain, in order, all or none. Appends are
    /// serialised on the chain's head, so concurrent writers never fork it; a batch takes the
    /// head once for all of its events.
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Events matching `filter`, newest first, each with its chain position.
    async fn query(&self, filter: &AuditFilter) -> Result<Vec<(i64, AuditEvent)>, StoreError>;
    /// Up to `limit` links after position `after`, in chain order.
    async fn links(&self, after: i64, limit: u32) -> Result<Vec<Link>, StoreError>;
    /// Events stored outside the chain (only a tampered trail has any).
    async fn unchained(&self) -> Result<u64, StoreError>;
    /// The chain's last position and hash.
    async fn head(&self) -> Result<(i64, Vec<u8>), StoreError>;
    /// Stores `signature` as the newest head signature, if the newest stored is still `seen`
    /// (the one the signer read, `None` when there was none): at a later position it is added;
    /// at the newest's own position (a heartbeat of an unchanged head) it takes that one's
    /// place, so an idle trail keeps one signature, not one a minute. The check and the write
    /// are one step under the chain's head lock, so signers racing keep one chain. Returns
    /// false, storing nothing, when another signature came in between or the position is older.
    async fn add_head_signature(
        &self,
        signature: &HeadSignature,
        seen: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
    /// The newest head signature (at the highest position), if there is one.
    async fn newest_head_signature(&self) -> Result<Option<HeadSignature>, StoreError>;
    /// Up to `limit` head signatures after position `after` (-1 for all), in chain order.
    async fn head_signatures(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<HeadSignature>, StoreError>;
}
