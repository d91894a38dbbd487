//! Storage traits and their backends.
//!
//! The traits are small, speak domain types, and are the only thing the `auth` layer sees. Every
//! backend implements them with the same semantics, including expiry and atomic refresh-token
//! rotation, so backends are interchangeable. Nothing above this module sees a driver error: all
//! that leaves it is a `StoreError`.
//!
//! The traits live one concern to a file (`users`, `mail`, `mfa`, `sessions`, `limits`, `keys`,
//! `audit`, `clients`, `tickets`), the records they carry in `records`, the error in `error`; all are re-exported here.

mod codec;
pub mod memory;
mod records;
pub mod redis;
pub mod sql;

use async_trait::async_trait;

mod audit;
mod clients;
mod error;
mod grants;
mod keys;
mod limits;
mod mail;
mod mfa;
mod sessions;
mod tickets;
mod users;

pub use crate::domain::{AttemptGate, LockoutPolicy, Timestamp};

pub use audit::AuditStore;
pub use clients::{ClientCursor, ClientRecord, ClientStore};
pub use error::{Cause, StoreError};
pub use grants::{GrantRecord, GrantStore, MAX_GRANTS_LISTED, merged_scopes};
pub use keys::KeyStore;
pub use limits::{LockKey, LockoutStore, RateDecision, RateLimitStore};
pub use mail::MailStore;
pub use mfa::MfaStore;
pub use sessions::SessionStore;
pub use tickets::{Taken, TicketKind, TicketStore};
pub use users::{AdminGuard, UserStore};

pub use records::{
    ChallengePurpose, ChallengeRecord, EmailTokenRecord, Factors, KindColumns, NewEmailToken,
    NewSession, NewUser, OutboxState, PasskeyRecord, QueuedMail, Rotation, SessionCursor,
    SessionKind, SessionRecord, SigningKeyRecord, TokenHash, TokenPurpose, TotpRecord, UserCursor,
    UserRecord,
};

/// Whether the backend answers at all; used by `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
}
