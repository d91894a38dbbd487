//! The ticket trait: the short-lived, single-use records of an OAuth authorization in progress
//! (authorization codes, pushed authorization requests, login interactions), kept where the
//! sessions live.

use async_trait::async_trait;

use super::{StoreError, Timestamp, TokenHash};

/// What a ticket is: each kind is a namespace of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketKind {
    /// An authorization code (RFC 6749 §4.1.2).
    Code,
    /// A pushed authorization request's `request_uri` (RFC 9126).
    PushedRequest,
    /// A login interaction handed to a login page.
    Interaction,
    /// A browser's sign-in session: read on every authorization, taken at logout.
    Browser,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::PushedRequest => "par",
            Self::Interaction => "interaction",
            Self::Browser => "browser",
        }
    }
}

/// What taking a ticket found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taken {
    /// This call took it: the one winner among any number of concurrent takes.
    First(Vec<u8>),
    /// It was taken before (a replay); its value, so that the caller can undo what the first
    /// take gave.
    Again(Vec<u8>),
    /// Never stored, or past the time it is kept.
    Missing,
}

/// Single-use tickets, shared by every instance. A ticket is kept until `keep_until` (the
/// caller sets it past the ticket's own validity, so that a replay shortly after is still known
/// as one), then forgotten.
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores a ticket under the hash of its secret; a key that is kept at `now` is `Conflict`
    /// (one kept past its time is replaced).
    async fn put_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        value: &[u8],
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Takes the ticket, atomically: exactly one call gets `First`.
    async fn take_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Taken, StoreError>;
    /// The value of a ticket that is kept at `now` and was never taken, without taking it.
    async fn read_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes the tickets kept past their time (Redis lets them expire instead).
    async fn purge_tickets(&self, now: Timestamp) -> Result<u64, StoreError>;
}
