//! Picking up signing keys rotated elsewhere (the command line, another instance), and rotating
//! on the schedule, every reload interval of the injected clock.

use std::sync::Arc;

use crate::auth::AuthService;
use crate::store::KeyStore;

/// Re-reads the signing keys so that a rotation reaches this instance within the interval.
pub(in crate::startup) fn spawn_key_reload(
    auth: Arc<AuthService>,
    keys: Arc<dyn KeyStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { auth.sessions().access_tokens().keep_reloading(keys).await })
}
