//! The server's life: built from `Settings` (certificate, backends, use cases, jobs, listeners),
//! then served until shutdown, when the requests in flight finish and the jobs stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{DatabaseUrl, Settings};
use crate::domain::{Clock, SystemClock};
use crate::http::limits;
use crate::http::{
    AppState, Clamped, HttpSettings, ServeSettings, Tls, TrustedProxies, metrics_router, router,
    serve,
};

use super::backends::open_backends;
use super::errors::{StartupError, listen_failed};
use super::jobs;
use super::service::{build_auth, new_metrics};
use super::summary::StartSummary;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    app: axum::Router,
    /// `/metrics` on its own listener, when `METRICS_BIND` is set.
    metrics: Option<(TcpListener, axum::Router)>,
    /// Native TLS on the main listener, when `TLS_CERT` and `TLS_KEY` are set.
    tls: Option<Arc<Tls>>,
    serve: ServeSettings,
    /// Connections the metrics listener serves at once.
    metrics_connections: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What this start chose and did, for the line that says it listens.
    summary: StartSummary,
}

impl Application {
    /// Opens the backends, builds the service and binds the listener.
    pub async fn build(settings: Settings, migrate: bool) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, migrate, Arc::new(SystemClock)).await
    }

    /// Like `build`, with the time read from `clock` (tests move it instead of sleeping).
    pub async fn build_with_clock(
        settings: Settings,
        migrate: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // The certificate first: a bad one should stop the start before anything is opened.
        let tls =
            match settings.http.tls() {
                Some(files) => Some(Tls::load(files).map_err(|e| StartupError::Config {
                    variable: e.variable,
                    message: e.message,
                })?),
                None => None,
            };
        // Before the backends open, so that their pools have the raised limit too.
        let (serve, metrics_connections) = serve_settings(&settings)?;
        let backends = open_backends(&settings, migrate).await?;
        if settings.secrets.master_key.is_none()
            && matches!(settings.storage.database_url, DatabaseUrl::Postgres(_))
        {
            tracing::warn!(
                "no PORTCULLIS_MASTER_KEY: signing keys and secrets are stored in clear in PostgreSQL"
            );
        }
        let metrics = new_metrics()?;
        // No signing key before the service is built, one after: this start generated it.
        let signing_keys = || async { backends.keys.signing_keys().await.map(|k| k.len()).ok() };
        let keys_before = signing_keys().await;
        let auth = build_auth(&settings, &backends, metrics.clone(), clock.clone()).await?;
        if let Some(path) = &settings.tokens.clients_file {
            let env = |name: &str| std::env::var(name).ok();
            let count = super::clients_file::put_clients_file(path, &auth.clients, env).await?;
            tracing::info!(count, file = %path.display(), "OAuth clients from CLIENTS_FILE");
        }
        let summary = StartSummary {
            migrations_applied: backends.migrations_applied,
            signing_key_generated: keys_before == Some(0)
                && signing_keys().await.is_some_and(|n| n > 0),
            ..StartSummary::of(&settings)
        };
        let mut tasks = vec![
            jobs::spawn_reseal(auth.factors.clone()),
            jobs::spawn_key_reload(auth.sessions.clone(), backends.keys.clone()),
            jobs::spawn_head_signing(auth.admin.audit().clone(), clock.clone()),
            jobs::spawn_purge(&backends, &settings, clock.clone()),
            jobs::spawn_mail_sender(&settings, auth.mail.outbox().clone(), metrics.clone(), clock)?,
        ];
        if let Some(tls) = &tls {
            tasks.push(crate::http::tls::spawn_reload_on_sighup(tls.clone()));
        }
        let proxies = TrustedProxies {
            networks: Arc::new(settings.http.trusted_proxies.clone()),
            header: settings.http.client_ip_header,
        };
        let state = AppState {
            sign_in: auth.sign_in,
            sessions: auth.sessions,
            registration: auth.registration,
            accounts: auth.accounts,
            factors: auth.factors,
            recovery: auth.recovery,
            admin: auth.admin,
            events: auth.events,
            clients: auth.clients,
            client_endpoints: auth.client_endpoints,
            authorization: auth.authorization,
            browsers: auth.browsers,
            grants: auth.grants,
            pages: Arc::new(
                crate::http::Pages::new(&settings.tokens.issuer, &settings.tokens.brand_name)
                    .map_err(|e| StartupError::Setting {
                        variable: "PORTCULLIS_TEMPLATES_DIR",
                        message: e.to_string(),
                    })?,
            ),
            health: backends.health.clone(),
            proxies,
            metrics: metrics.clone(),
            posture: Arc::new(crate::config::posture(&settings)),
            cookie: settings.tokens.refresh_cookie.then(|| {
                Arc::new(crate::http::cookie::CookiePolicy {
                    origins: settings.http.cors_origins.clone(),
                    max_age: settings.tokens.refresh_ttl.as_secs(),
                })
            }),
        };
        let http = HttpSettings {
            cors_origins: settings.http.cors_origins.clone(),
            request_timeout: settings.http.request_timeout,
            metrics_on_main_listener: settings.http.metrics_bind.is_none(),
        };
        let app = router(state, &http);
        let listener = TcpListener::bind(settings.http.bind)
            .await
            .map_err(|e| listen_failed("PORTCULLIS_BIND", settings.http.bind, e))?;
        let metrics = match settings.http.metrics_bind {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|e| listen_failed("PORTCULLIS_METRICS_BIND", address, e))?;
                Some((listener, metrics_router(metrics)))
            }
            None => None,
        };
        Ok(Self { listener, app, metrics, metrics_connections, tls, serve, tasks, summary })
    }

    /// What this start chose and did: backends, data directory, migrations, a generated key.
    pub fn summary(&self) -> &StartSummary {
        &self.summary
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The TLS configuration in force, to reload it (SIGHUP does the same).
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight within
    /// `REQUEST_TIMEOUT` (see `http::serve`).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut tasks = self.tasks;
        if let Some((listener, app)) = self.metrics {
            let pending = std::future::pending::<()>();
            let settings = ServeSettings {
                max_connections: self.metrics_connections,
                clamped: None,
                ..self.serve
            };
            tasks.push(tokio::spawn(serve(listener, app, None, settings, pending)));
        }
        serve(self.listener, self.app, self.tls, self.serve, shutdown).await;
        for task in tasks {
            task.abort();
        }
        Ok(())
    }
}

/// The listeners' settings, with `MAX_CONNECTIONS` fitted to the open-file limit (raised to the
/// hard limit first), and the metrics listener's connection cap.
fn serve_settings(settings: &Settings) -> Result<(ServeSettings, usize), StartupError> {
    let open_files = limits::raise_open_file_limit();
    let metrics_listener = settings.http.metrics_bind.is_some();
    let (max_connections, metrics_connections) =
        limits::connection_caps(settings.http.max_connections, metrics_listener, open_files)
            .map_err(|needed| StartupError::Setting {
                variable: "PORTCULLIS_MAX_CONNECTIONS",
                message: format!(
                    "the open-file limit ({}) leaves no descriptor for connections; raise it \
                     (ulimit -n) to at least {needed}",
                    open_files.unwrap_or_default()
                ),
            })?;
    let clamped = open_files.filter(|_| max_connections < settings.http.max_connections).map(
        |open_file_limit| Clamped { configured: settings.http.max_connections, open_file_limit },
    );
    let serve = ServeSettings {
        header_timeout: settings.http.header_timeout,
        request_timeout: settings.http.request_timeout,
        max_connections,
        max_connections_per_ip: settings.http.max_connections_per_ip,
        // A request in flight has REQUEST_TIMEOUT to finish anyway; waiting longer helps no one.
        drain_timeout: settings.http.request_timeout,
        clamped,
    };
    Ok((serve, metrics_connections))
}
