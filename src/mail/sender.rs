//! The background sender, one per instance: claims due messages with a lease (so two instances
//! do not send one message twice in the normal case), delivers them, and retries with
//! exponential backoff and jitter, at most `MAIL_RETRY_MAX_DELAY` apart, for `MAIL_RETRY_FOR`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use lettre::message::Mailbox;

use super::{Outbox, Transport};
use crate::domain::Clock;
use crate::metrics::Metrics;
use crate::store::QueuedMail;

/// How long a claimed message is this sender's: longer than one delivery may take.
const LEASE: Duration = Duration::from_secs(60);
/// Messages claimed at a time.
const BATCH: u32 = 32;
/// Deliveries in flight at once (the SMTP transport keeps a pool of connections).
const DELIVERIES: usize = 8;
/// How often the outbox is looked at when nothing wakes the sender earlier.
const POLL: Duration = Duration::from_secs(1);
/// The wait after a first failed try; it doubles with each try, up to the maximum.
const FIRST_RETRY: Duration = Duration::from_millis(250);

pub struct SenderSettings {
    pub from: Mailbox,
    pub retry_for: Duration,
    pub retry_max_delay: Duration,
}

pub fn spawn_sender(
    outbox: Outbox,
    transport: Transport,
    settings: SenderSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let sender = Sender { outbox, transport, settings, clock, metrics };
    tokio::spawn(async move { sender.run().await })
}

struct Sender {
    outbox: Outbox,
    transport: Transport,
    settings: SenderSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Sender {
    async fn run(self) {
        loop {
            let claimed = match self.outbox.store().claim_mail(self.clock.now(), LEASE, BATCH).await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "cannot read the mail outbox");
                    Vec::new()
                }
            };
            let full = claimed.len() == BATCH as usize;
            stream::iter(claimed).for_each_concurrent(DELIVERIES, |mail| self.deliver(mail)).await;
            self.observe().await;
            if !full {
                tokio::select! {
                    () = self.outbox.queued.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    async fn deliver(&self, mail: QueuedMail) {
        let store = self.outbox.store();
        let message = match self.outbox.open(&mail) {
            Ok(message) => message,
            Err(error) => {
                // Sealed under a key this instance does not hold, or corrupt: no try can help.
                tracing::error!(mail = mail.id, %error, "a queued message cannot be opened; dropped");
                self.metrics.mail().failed.inc();
                let _ = store.remove_mail(&mail.id).await;
                return;
            }
        };
        let outcome = self.transport.deliver(&self.settings.from, &message).await;
        let now = self.clock.now();
        let result = match outcome {
            Ok(()) => {
                self.metrics.mail().sent.inc();
                tracing::info!(mail = mail.id, attempts = mail.attempts, "mail delivered");
                store.remove_mail(&mail.id).await
            }
            Err(error) => {
                let age = (now - mail.created_at).to_std().unwrap_or_default();
                if error.permanent || age >= self.settings.retry_for {
                    self.metrics.mail().failed.inc();
                    tracing::warn!(
                        mail = mail.id,
                        attempts = mail.attempts,
                        error = error.message,
                        permanent = error.permanent,
                        "mail given up"
                    );
                    store.remove_mail(&mail.id).await
                } else {
                    let wait = backoff(mail.attempts, self.settings.retry_max_delay);
                    tracing::info!(
                        mail = mail.id,
                        attempts = mail.attempts,
                        error = error.message,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "mail not delivered yet"
                    );
                    let due = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    store.defer_mail(&mail.id, due).await
                }
            }
        };
        if let Err(error) = result {
            // The lease runs out and another try follows: at worst the message goes twice.
            tracing::warn!(mail = mail.id, error = error.with_causes(), "cannot update the outbox");
        }
    }

    async fn observe(&self) {
        if let Ok(state) = self.outbox.store().outbox_state().await {
            let mail = self.metrics.mail();
            mail.waiting.set(i64::try_from(state.waiting).unwrap_or(i64::MAX));
            let oldest = state.oldest.map_or(0, |at| (self.clock.now() - at).num_seconds().max(0));
            mail.oldest_waiting_seconds.set(oldest);
        }
    }
}

/// The wait before try `attempts + 1`: doubling from `FIRST_RETRY`, at most `max`, and a
/// random half of it taken off so that senders that failed together do not retry together.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let doubling = FIRST_RETRY.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let wait = doubling.min(max);
    let [byte] = crate::crypto::tokens::random_bytes::<1>();
    wait.mul_f64(0.5 + f64::from(byte) / 510.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_maximum_with_jitter() {
        let max = Duration::from_secs(5);
        for attempts in 1..40 {
            let wait = backoff(attempts, max);
            let full = FIRST_RETRY.saturating_mul(1 << (attempts - 1).min(20)).min(max);
            assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
        }
    }
}
