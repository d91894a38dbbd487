//! The mail trait: tokens sent by mail and the outbox that sends them.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    EmailTokenRecord, NewEmailToken, OutboxState, QueuedMail, StoreError, Timestamp, TokenHash,
    TokenPurpose,
};
use crate::domain::UserId;

/// Tokens sent by mail, and the outbox that sends them: a message is stored in the transaction
/// that stores its token, and leaves the outbox only once it is delivered or given up.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Stores `token` and queues `mail` in one transaction. With `void_older`, the user's unused
    /// tokens of the same purpose stop working first.
    async fn issue_token(
        &self,
        token: &NewEmailToken,
        void_older: bool,
        mail: &QueuedMail,
    ) -> Result<(), StoreError>;
    /// Queues a message that carries no token (a notice).
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError>;
    /// The token with this hash, if it is for `purpose`, unused and unexpired; it stays usable.
    async fn peek_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError>;
    /// Uses up the token, as `peek_token` finds it: of concurrent calls, exactly one gets it.
    async fn spend_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError>;
    /// Voids every unused token of `purpose` of the user; returns how many.
    async fn void_tokens(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Deletes tokens that expired or were used more than `retention` ago.
    async fn purge_tokens(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError>;
    /// Claims up to `limit` messages that are due, oldest first, for `lease`: until the lease
    /// ends no other caller claims them.
    async fn claim_mail(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError>;
    /// Removes a message: delivered, or given up.
    async fn remove_mail(&self, id: &str) -> Result<(), StoreError>;
    /// Releases a message that could not be delivered, to be tried again at `due`.
    async fn defer_mail(&self, id: &str, due: Timestamp) -> Result<(), StoreError>;
    async fn outbox_state(&self) -> Result<OutboxState, StoreError>;
}
