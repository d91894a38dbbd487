//! Sealing TOTP secrets again after a master-key rotation.

use std::sync::Arc;

use crate::auth::Factors;

/// Seals again, in the background, every TOTP secret still in clear or under the previous
/// master key, so that a rotation completes without waiting for each user's next login.
pub(in crate::startup) fn spawn_reseal(factors: Arc<Factors>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match factors.reseal_totp_secrets().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "sealed TOTP secrets under the current master key"),
            Err(error) => {
                let error = crate::domain::with_causes(&error);
                tracing::warn!(error, "could not seal TOTP secrets again")
            }
        }
    })
}
