//! Picking up signing keys rotated elsewhere (the command line, another instance), and rotating
//! on the schedule, every reload interval of the injected clock.

use std::sync::Arc;

use crate::auth::Sessions;
use crate::store::KeyStore;

/// Re-reads the signing keys so that a rotation reaches this instance within the interval.
pub(in crate::startup) fn spawn_key_reload(
    sessions: Arc<Sessions>,
    keys: Arc<dyn KeyStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { sessions.access_tokens().keep_reloading(keys).await })
}
