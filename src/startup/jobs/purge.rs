//! Forgetting what has expired: sessions, failure counters, mail tokens, ceremonies, devices,
//! OAuth tickets.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::domain::Clock;
use crate::startup::backends::Backends;
use crate::startup::service::lockout_policy;

/// Every hour: deletes sessions a day after they expired or were revoked, with their refresh
/// tokens, failure counters whose window and lock have passed, and devices unused for
/// `DEVICE_TOKEN_TTL`.
pub(in crate::startup) fn spawn_purge(
    backends: &Backends,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    let (sessions, lockouts, users, mail, mfa, tickets) = (
        backends.sessions.clone(),
        backends.lockouts.clone(),
        backends.users.clone(),
        backends.mail.clone(),
        backends.mfa.clone(),
        backends.tickets.clone(),
    );
    let policy = lockout_policy(settings);
    let device_ttl = chrono::Duration::from_std(settings.accounts.device_token_ttl)
        .unwrap_or(chrono::Duration::MAX);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(3_600));
        loop {
            interval.tick().await;
            let now = clock.now();
            if let Err(error) = lockouts.purge_lockouts(now, policy).await {
                tracing::warn!(error = error.with_causes(), "could not purge old failure counters");
            }
            match sessions.purge_sessions(now, Duration::from_secs(86_400)).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged old sessions"),
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "could not purge old sessions")
                }
            }
            match mail.purge_tokens(now, Duration::from_secs(86_400)).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged old mail tokens"),
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "could not purge old mail tokens")
                }
            }
            match mfa.purge_challenges(now).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged expired ceremonies"),
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "could not purge old ceremonies")
                }
            }
            match tickets.purge_tickets(now).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged old OAuth tickets"),
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "could not purge old tickets")
                }
            }
            match users.purge_devices(now - device_ttl).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "forgot unused devices"),
                Err(error) => {
                    tracing::warn!(error = error.with_causes(), "could not purge old devices")
                }
            }
        }
    })
}
