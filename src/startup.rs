//! Builds the application from `Settings`: the one place that chooses backends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::audit::Audit;
use crate::auth::{
    AccessTokenSettings, AccessTokens, AuthService, AuthSettings, PasswordHasher, SuccessorKey,
    keys, tokens,
};
use crate::config::{DatabaseUrl, Settings};
use crate::http::{AppState, router};
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditStore, Health, KeyStore, SessionStore, StoreError, UserStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration asks for something this build cannot do (exit status 2).
    #[error("{variable}: {message}")]
    Config {
        variable: &'static str,
        message: String,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The stores, as trait objects, on whichever backend the settings chose.
#[derive(Clone)]
pub struct Backends {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub keys: Arc<dyn KeyStore>,
    pub audit: Arc<dyn AuditStore>,
    pub health: Arc<dyn Health>,
}

/// Opens the backends the settings name, applying migrations first when `migrate` is set.
pub async fn open_backends(settings: &Settings, migrate: bool) -> Result<Backends, StartupError> {
    if settings.redis_url.is_some() {
        return Err(StartupError::Config {
            variable: "PORTCULLIS_REDIS_URL",
            message: "the Redis session store is not available in this version; unset it to use \
                      the embedded store"
                .to_owned(),
        });
    }
    let url = match &settings.database_url {
        DatabaseUrl::Sqlite(url) => url,
        DatabaseUrl::Postgres(_) => {
            return Err(StartupError::Config {
                variable: "PORTCULLIS_DATABASE_URL",
                message: "PostgreSQL is not available in this version; unset it to use the \
                          embedded SQLite database"
                    .to_owned(),
            });
        }
    };
    if settings.database_url == default_database(settings) {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let store = SqliteStore::connect(url).await?;
    if migrate {
        store.migrate().await?;
    }
    let store = Arc::new(store);
    Ok(Backends {
        users: store.clone(),
        sessions: store.clone(),
        keys: store.clone(),
        audit: store.clone(),
        health: store,
    })
}

fn default_database(settings: &Settings) -> DatabaseUrl {
    DatabaseUrl::Sqlite(format!(
        "sqlite://{}?mode=rwc",
        settings.data_dir.join("portcullis.db").display()
    ))
}

/// Builds the use cases on the backends.
pub async fn build_auth(
    settings: &Settings,
    backends: &Backends,
) -> Result<AuthService, StartupError> {
    let access = AccessTokens::load(
        AccessTokenSettings {
            secret: settings.jwt_secret.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: settings.access_token_ttl,
            leeway: settings.jwt_leeway,
        },
        backends.keys.as_ref(),
    )
    .await?;
    let successor_key = backends
        .keys
        .secret("refresh_successor_key", &tokens::random_bytes::<32>())
        .await?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(AuthService::new(
        backends.users.clone(),
        backends.sessions.clone(),
        Audit::new(backends.audit.clone()),
        PasswordHasher::new(settings.argon2, cores)?,
        Arc::new(access),
        SuccessorKey::new(successor_key),
        AuthSettings {
            refresh_token_ttl: settings.refresh_token_ttl,
            refresh_reuse_grace: settings.refresh_reuse_grace,
            password_policy: settings.password_policy,
        },
    ))
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    app: axum::Router,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Opens the backends, builds the service and binds the listener.
    pub async fn build(settings: Settings, migrate: bool) -> Result<Self, StartupError> {
        let backends = open_backends(&settings, migrate).await?;
        let auth = Arc::new(build_auth(&settings, &backends).await?);
        let tasks = vec![
            spawn_key_reload(auth.clone(), backends.keys.clone()),
            spawn_session_purge(backends.sessions.clone()),
        ];
        let state = AppState {
            auth,
            health: backends.health.clone(),
        };
        let app = router(state, &settings.cors_origins);
        let listener = TcpListener::bind(settings.bind).await?;
        Ok(Self {
            listener,
            app,
            tasks,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self.app.into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        for task in self.tasks {
            task.abort();
        }
        result
    }
}

/// Re-reads the signing keys so that a rotation reaches this instance within the interval.
fn spawn_key_reload(
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

/// Deletes sessions a day after they expired or were revoked, with their refresh tokens.
fn spawn_session_purge(sessions: Arc<dyn SessionStore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(3_600));
        loop {
            interval.tick().await;
            match sessions
                .purge_sessions(crate::store::now(), Duration::from_secs(86_400))
                .await
            {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged old sessions"),
                Err(error) => tracing::warn!(%error, "could not purge old sessions"),
            }
        }
    })
}
