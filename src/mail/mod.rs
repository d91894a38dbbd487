//! Mail: the messages the service sends (verification and reset links, notices), the outbox that
//! keeps each one until it is delivered, and the transports that deliver it.
//!
//! A message is written to the outbox in the transaction that stores its token, sealed under
//! the master key (it carries the token), and the request answers. A sender on every instance
//! claims due messages with a lease, delivers them, and retries with exponential backoff and
//! jitter for `MAIL_RETRY_FOR` while the mail server is away or refuses; a restart loses
//! nothing, because the message is still in the outbox.

mod messages;
mod sender;
mod transport;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use messages::Templates;
pub use sender::{SenderSettings, spawn_sender};
pub use transport::Transport;

use crate::crypto::Sealer;
use crate::domain::Clock;
use crate::metrics::Metrics;
use crate::store::{MailStore, QueuedMail, StoreError};

/// One plain-text message to one address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// The body may hold a token: never print it.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a queued message could not be sealed or opened: {0}")]
    Seal(String),
}

/// Seals messages into the outbox and opens them for the sender.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn MailStore>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Wakes this instance's sender when a message is queued here.
    queued: Arc<Notify>,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn MailStore>,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { store, sealer, clock, metrics, queued: Arc::new(Notify::new()) }
    }

    pub fn store(&self) -> &Arc<dyn MailStore> {
        &self.store
    }

    /// `message` as the outbox keeps it: sealed for its own row.
    pub fn seal(&self, message: &Message) -> Result<QueuedMail, OutboxError> {
        let id = uuid::Uuid::now_v7().to_string();
        let plain = serde_json::to_vec(message).map_err(|e| OutboxError::Seal(e.to_string()))?;
        let sealed = self
            .sealer
            .seal(&context(&id), &plain)
            .map_err(|e| OutboxError::Seal(e.to_string()))?;
        Ok(QueuedMail { id, created_at: self.clock.now(), attempts: 0, message: sealed })
    }

    pub fn open(&self, mail: &QueuedMail) -> Result<Message, OutboxError> {
        let (plain, _) = self
            .sealer
            .open(&context(&mail.id), &mail.message)
            .map_err(|e| OutboxError::Seal(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| OutboxError::Seal(e.to_string()))
    }

    /// Counts a message written to the outbox (by `MailStore::issue_token` or `queue`) and
    /// wakes the sender.
    pub fn queued(&self) {
        self.metrics.mail().queued.inc();
        self.queued.notify_one();
    }

    /// Queues a message that carries no token.
    pub async fn queue(&self, message: &Message) -> Result<(), OutboxError> {
        let mail = self.seal(message)?;
        self.store.queue_mail(&mail).await?;
        self.queued();
        Ok(())
    }
}

/// What a sealed message is bound to: its own row, so it cannot be moved to another.
fn context(id: &str) -> String {
    format!("mail_outbox:{id}")
}
