//! Picking up signing keys rotated elsewhere (the command line, another instance).

use std::sync::Arc;

use crate::auth::{AuthService, keys};
use crate::store::KeyStore;

/// Re-reads the signing keys so that a rotation reaches this instance within the interval.
pub(in crate::startup) fn spawn_key_reload(
    auth: Arc<AuthService>,
    keys: Arc<dyn KeyStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(keys::RELOAD_INTERVAL);
        loop {
            interval.tick().await;
            if let Err(error) = auth.access_tokens().reload(keys.as_ref()).await {
                tracing::warn!(%error, "could not reload the signing keys");
            }
        }
    })
}
