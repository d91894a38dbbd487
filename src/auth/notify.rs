//! The mail every use case sends, through the one outbox: links that carry a single-use token
//! (stored with the message in one transaction), and notices that carry none.

use std::sync::Arc;

use super::{AuthError, MailFlows, tokens};
use crate::domain::{Clock, Email};
use crate::mail::{Message, Outbox, Templates};
use crate::store::{MailStore, NewEmailToken, TokenPurpose, UserRecord};

/// The outbox, the messages and how long their links work: it holds nothing else.
pub struct Notifier {
    pub(in crate::auth) outbox: Outbox,
    pub(in crate::auth) templates: Templates,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) flows: MailFlows,
}

impl Notifier {
    /// The outbox messages are queued in: the sender of this instance works on the same one, so
    /// a queued message wakes it at once.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// What the mail flows depend on.
    pub(in crate::auth) fn flows(&self) -> &MailFlows {
        &self.flows
    }

    /// The tokens mailed in links, and the messages waiting.
    pub(in crate::auth) fn links(&self) -> &Arc<dyn MailStore> {
        self.outbox.store()
    }

    /// Queues a notice (no token), composed from the templates.
    pub(in crate::auth) async fn notify(
        &self,
        compose: impl FnOnce(&Templates) -> Message,
    ) -> Result<(), AuthError> {
        self.outbox.queue(&compose(&self.templates)).await.map_err(internal)
    }

    /// Mails a verification link for the account's address to it.
    pub(in crate::auth) async fn send_verification(
        &self,
        user: &UserRecord,
    ) -> Result<(), AuthError> {
        let ttl = self.flows.email_token_ttl;
        let link = Link { purpose: TokenPurpose::Verify, ttl, void_older: false };
        self.issue_link(user, &user.email, link, |templates, address, token| {
            templates.verify(address, token)
        })
        .await
    }

    /// Stores a fresh token of `link`'s purpose for `address` and queues the message that
    /// carries it, in one transaction.
    pub(in crate::auth) async fn issue_link(
        &self,
        user: &UserRecord,
        address: &Email,
        link: Link,
        compose: impl FnOnce(&Templates, &str, &str) -> Message,
    ) -> Result<(), AuthError> {
        let token = tokens::random_token();
        let now = self.clock.now();
        let message = compose(&self.templates, address.as_str(), &token);
        let mail = self.outbox.seal(&message).map_err(internal)?;
        let record = NewEmailToken {
            hash: tokens::hash_token(&token),
            user: user.id,
            purpose: link.purpose,
            address: address.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(link.ttl).map_err(internal)?,
            epoch: user.credential_epoch,
        };
        self.outbox.store().issue_token(&record, link.void_older, &mail).await?;
        self.outbox.queued();
        Ok(())
    }
}

/// A link to mail: what its token is good for, how long, and whether it voids the account's
/// earlier links of that purpose.
#[derive(Clone, Copy)]
pub(in crate::auth) struct Link {
    pub purpose: TokenPurpose,
    pub ttl: std::time::Duration,
    pub void_older: bool,
}

fn internal(error: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::Internal(Box::new(error))
}
