//! The audit trail's heartbeat: its head signed at least once a minute.

use std::sync::Arc;

use crate::audit::Audit;
use crate::domain::Clock;

/// Signs the audit chain's head every `HEAD_SIGN_INTERVAL` (when a master key is configured),
/// from the start, also when no event came: a heartbeat, so that a newest signature that stopped
/// being renewed shows a trail cut at its end (see `Audit::verify`).
pub(in crate::startup) fn spawn_head_signing(
    audit: Audit,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(crate::audit::HEAD_SIGN_INTERVAL);
        loop {
            interval.tick().await;
            if let Err(error) = audit.sign_head(clock.now()).await {
                // Without new signatures `audit verify` fails two heartbeats on: say it loudly.
                tracing::error!(error = error.with_causes(), "could not sign the audit head");
            }
        }
    })
}
