//! Native TLS: the certificate and key from `TLS_CERT` and `TLS_KEY`, reloadable without
//! dropping the listener.
//!
//! The rustls configuration sits behind an `ArcSwap`: each new connection takes the current one,
//! and a reload swaps in a new one, so connections already open keep the certificate they were
//! made with and new ones get the new certificate. A reload that fails (a half-written file, a
//! key that does not match) keeps the old configuration: a renewal mistake must not take the
//! service off the air. The `ring` provider is named explicitly, so no process-wide default
//! provider is needed and no other crypto backend can be picked by accident.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Why the certificate or key could not be used, naming the variable of the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct TlsError {
    pub variable: &'static str,
    pub message: String,
}

/// The TLS configuration in force, and the files it is reloaded from.
pub struct Tls {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
}

impl Tls {
    /// Reads and checks the files; an error here stops the start.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let config = server_config(&files)?;
        Ok(Arc::new(Self { files, config: ArcSwap::from_pointee(config) }))
    }

    /// Re-reads the files; new connections use them from now on. On error the old certificate
    /// stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let cert_error = |message: String| TlsError { variable: "PORTCULLIS_TLS_CERT", message };
    let key_error = |message: String| TlsError { variable: "PORTCULLIS_TLS_KEY", message };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_error(format!("{}: {e}", files.cert.display())))?;
    if chain.is_empty() {
        return Err(cert_error(format!("{}: no certificate in the file", files.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| key_error(format!("{}: {e}", files.key.display())))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| key_error(format!("does not match the certificate or is unusable: {e}")))?;
    // Only HTTP/1.1 is served (see `serve`); saying so in ALPN keeps clients from trying h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reloads the certificate on every SIGHUP, the usual signal after a renewal (certbot's
/// `--deploy-hook`, `systemctl reload`). The listener stays open throughout. The handler is
/// installed before this returns, so a SIGHUP sent once the server listens cannot hit the
/// default action, which would end the process.
pub fn spawn_reload_on_sighup(tls: Arc<Tls>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut hangups = match hangups {
                Ok(hangups) => hangups,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; TLS reload is off");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("reloaded the TLS certificate"),
                    Err(error) => {
                        tracing::error!(%error, "TLS reload failed; the old certificate stays")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        drop(tls);
    })
}
