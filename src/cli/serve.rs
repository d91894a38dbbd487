//! `serve` and `migrate`: the server until a signal stops it, and the database's migrations.

use crate::config::Settings;
use crate::startup::{Application, open_backends};

use super::Failure;

pub(super) async fn serve(settings: Settings, migrate: bool) -> Result<(), Failure> {
    let application = Application::build(settings, migrate).await?;
    let address = application.local_addr().map_err(|e| Failure::other(e.to_string()))?;
    let summary = application.summary();
    tracing::info!(
        %address,
        version = env!("CARGO_PKG_VERSION"),
        database = %summary.database,
        session_store = %summary.session_store,
        data_dir = %summary.data_dir,
        migrations_applied = summary.migrations_applied,
        signing_key_generated = summary.signing_key_generated,
        "portcullis is listening"
    );
    application.run(shutdown_signal()).await.map_err(|e| Failure::other(e.to_string()))
}

/// Opens the backends, migrating them, and nothing else: no signing key is read or made.
pub(super) async fn migrate(settings: Settings) -> Result<(), Failure> {
    open_backends(&settings, true).await?;
    println!("migrations applied");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
