//! Delivering queued mail.

use std::sync::Arc;

use crate::config::Settings;
use crate::domain::Clock;
use crate::mail::{Outbox, SenderSettings, Transport, spawn_sender};
use crate::metrics::Metrics;
use crate::startup::StartupError;
use crate::startup::files;

/// The mail sender of this instance, on the transport the settings name.
pub(in crate::startup) fn spawn_mail_sender(
    settings: &Settings,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<tokio::task::JoinHandle<()>, StartupError> {
    let config =
        |message: String| StartupError::Config { variable: "PORTCULLIS_SMTP_URL", message };
    if settings.mail.smtp_url.is_none() {
        // Messages go to files in the data directory (also on PostgreSQL): make it private.
        files::create_data_dir(&settings.storage.data_dir)?;
    }
    let transport =
        Transport::new(settings.mail.smtp_url.as_deref(), &settings.storage.data_dir.join("mail"))
            .map_err(config)?;
    let from = settings.mail.from.parse().map_err(|_| StartupError::Config {
        variable: "PORTCULLIS_MAIL_FROM",
        message: "is not a mailbox".to_owned(),
    })?;
    let sender = SenderSettings {
        from,
        retry_for: settings.mail.retry_for,
        retry_max_delay: settings.mail.retry_max_delay,
    };
    Ok(spawn_sender(outbox, transport, sender, clock, metrics))
}
