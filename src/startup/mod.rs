//! Builds the application from `Settings`: the one place that chooses backends.

mod files;
mod summary;

pub use summary::StartSummary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::audit::Audit;
use crate::auth::{
    AccessTokenSettings, AccessTokens, AuthService, AuthSettings, AuthStores, Limits, MailFlows,
    PasswordHasher, SecondFactors, SuccessorKey, keys, tokens,
};
use crate::config::{DatabaseUrl, Settings};
use crate::domain::Sealer;
use crate::domain::{Clock, FAILURE_MEMORY, LockoutPolicy, SystemClock};
use crate::http::limits;
use crate::http::{
    AppState, Clamped, HttpSettings, ServeSettings, Tls, TrustedProxies, metrics_router, router,
    serve,
};
use crate::mail::{Outbox, SenderSettings, Templates, Transport, spawn_sender};
use crate::metrics::Metrics;
use crate::store::memory::MemoryRateLimiter;
use crate::store::redis::RedisStore;
use crate::store::sealed::SealedKeys;
use crate::store::sql::SqlStore;
use crate::store::{
    AuditStore, Health, KeyStore, LockoutStore, MailStore, MfaStore, RateLimitStore, SessionStore,
    StoreError, UserStore,
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration asks for something this build cannot do (exit status 2).
    #[error("{variable}: {message}")]
    Config { variable: &'static str, message: String },
    /// A valid setting that could not be acted on (exit status 1): a database that refuses, an
    /// address in use. The message is the backend's own words, without secrets.
    #[error("{variable}: {message}")]
    Setting { variable: &'static str, message: String },
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
    pub limiter: Arc<dyn RateLimitStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    pub health: Arc<dyn Health>,
    /// Mail tokens and the outbox, in the database.
    pub mail: Arc<dyn MailStore>,
    /// Second factors and ceremonies in progress, in the database.
    pub mfa: Arc<dyn MfaStore>,
    /// Seals queued mail under the master key.
    pub sealer: Sealer,
    /// Signs the audit chain's head: derived from the master key, if there is one.
    pub audit_head_key: Option<[u8; 32]>,
    /// How many database migrations opening these backends applied.
    pub migrations_applied: usize,
}

/// Opens the backends the settings name, applying migrations first when `migrate` is set: the
/// database for users, keys and the audit trail, and, with `REDIS_URL`, Redis for sessions,
/// budgets and lockouts.
pub async fn open_backends(settings: &Settings, migrate: bool) -> Result<Backends, StartupError> {
    let mut backends = open_database(settings, migrate).await?;
    let sealer = files::sealer(settings)?;
    backends.audit_head_key = sealer.derive("audit head");
    backends.sealer = sealer.clone();
    backends.keys = Arc::new(SealedKeys::new(backends.keys, sealer));
    match &settings.storage.redis_url {
        None => Ok(backends),
        Some(url) => {
            // Only a URL the client cannot use fails here: a Redis that is down does not stop
            // the start (the service answers 503 until it is there).
            let redis =
                RedisStore::connect(url, &settings.storage.redis_prefix).map_err(|error| {
                    StartupError::Setting {
                        variable: "PORTCULLIS_REDIS_URL",
                        message: format!(
                            "{}: {}",
                            summary::redis(url),
                            without_password(url, &root_cause(&error))
                        ),
                    }
                })?;
            let redis = Arc::new(redis);
            Ok(Backends {
                sessions: redis.clone(),
                limiter: redis.clone(),
                lockouts: redis.clone(),
                health: Arc::new(AllOf(vec![backends.health, redis])),
                ..backends
            })
        }
    }
}

/// Healthy when every part is.
struct AllOf(Vec<Arc<dyn Health>>);

#[async_trait::async_trait]
impl Health for AllOf {
    async fn ping(&self) -> Result<(), StoreError> {
        for part in &self.0 {
            part.ping().await?;
        }
        Ok(())
    }
}

/// Opens the database and, with `migrate`, applies its migrations. On SQLite both happen under
/// a lock file beside the database, so that instances starting at the same moment on one file
/// take turns (PostgreSQL's instances take turns on the migrator's advisory lock).
async fn open_database(settings: &Settings, migrate: bool) -> Result<Backends, StartupError> {
    let url = &settings.storage.database_url;
    let sqlite_file = match url {
        DatabaseUrl::Embedded(path) => {
            files::create_data_dir(&settings.storage.data_dir)?;
            Some((path.clone(), "PORTCULLIS_DATA_DIR"))
        }
        DatabaseUrl::Sqlite(url) => files::sqlite_file(url).map(|f| (f, "PORTCULLIS_DATABASE_URL")),
        DatabaseUrl::Postgres(_) => None,
    };
    let lock = match sqlite_file {
        Some((path, variable)) => {
            let lock = tokio::task::spawn_blocking(move || files::lock_database(&path, variable))
                .await
                .map_err(|e| StartupError::Io(std::io::Error::other(e)))??;
            Some(lock)
        }
        None => None,
    };
    let store = match url {
        DatabaseUrl::Embedded(path) => {
            files::create_database_file(path)?;
            let store = SqlStore::open_file(path).await;
            files::restrict_database_files(path);
            store
        }
        DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => SqlStore::connect(url).await,
    }
    .map_err(|error| database_failed(url, "", &error))?;
    let migrations_applied = if migrate {
        store.migrate().await.map_err(|error| database_failed(url, "migrate: ", &error))?
    } else {
        0
    };
    if let DatabaseUrl::Embedded(path) = url {
        // The WAL may first appear with the migrations' writes.
        files::restrict_database_files(path);
    }
    drop(lock);
    Ok(Backends { migrations_applied, ..Backends::on_database(Arc::new(store)) })
}

/// A database error at start as one line: the variable that names the database, then
/// PostgreSQL's own message (`database "x" does not exist`), or the backend and what went wrong
/// reaching it; never the password of the URL.
fn database_failed(url: &DatabaseUrl, operation: &str, error: &StoreError) -> StartupError {
    let (variable, backend, text) = match url {
        DatabaseUrl::Embedded(path) => {
            ("PORTCULLIS_DATA_DIR", format!("SQLite at {}", path.display()), "")
        }
        DatabaseUrl::Sqlite(url) => ("PORTCULLIS_DATABASE_URL", format!("SQLite at {url}"), ""),
        DatabaseUrl::Postgres(url) => (
            "PORTCULLIS_DATABASE_URL",
            format!("PostgreSQL at {}", summary::postgres_address(url)),
            url.as_str(),
        ),
    };
    let said_by_server = matches!(url, DatabaseUrl::Postgres(_))
        && std::error::Error::source(error)
            .and_then(|cause| cause.downcast_ref::<sqlx::Error>())
            .is_some_and(|cause| matches!(cause, sqlx::Error::Database(_)));
    let timed_out = std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<sqlx::Error>())
        .is_some_and(|cause| matches!(cause, sqlx::Error::PoolTimedOut));
    let cause = if timed_out {
        // The pool keeps no reason: the server refused, or did not answer in time.
        "no connection within the timeout (is the server up, at that address?)".to_owned()
    } else {
        root_cause(error)
    };
    let message = if said_by_server {
        format!("{operation}{cause}")
    } else {
        format!("{backend}: {operation}{cause}")
    };
    StartupError::Setting { variable, message: without_password(text, &message) }
}

/// The innermost cause of `error`: the driver's or the server's own words.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// `message` with the password of `url` masked, in case a driver quoted it.
fn without_password(url: &str, message: &str) -> String {
    let password = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned));
    match password {
        Some(password) if !password.is_empty() => {
            let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let mut message = message.replace(&password, "********");
            if !decoded.is_empty() {
                message = message.replace(&decoded, "********");
            }
            message
        }
        _ => message.to_owned(),
    }
}

/// "Address in use" and its kin at start, naming the variable and the address.
fn listen_failed(
    variable: &'static str,
    address: SocketAddr,
    error: std::io::Error,
) -> StartupError {
    let message = match error.kind() {
        std::io::ErrorKind::AddrInUse => format!("{address} is already in use"),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{address} is not an address of this machine")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("{address}: permission denied (ports below 1024 need privileges)")
        }
        _ => format!("cannot listen on {address}: {error}"),
    };
    StartupError::Setting { variable, message }
}

impl Backends {
    /// Everything in one database. Budgets live in this process (there is no shared store to
    /// keep them in); lockouts live in the database, so they survive a restart, every instance
    /// shares them and the command line sees them.
    fn on_database<S>(store: Arc<S>) -> Self
    where
        S: UserStore
            + SessionStore
            + KeyStore
            + AuditStore
            + LockoutStore
            + MailStore
            + MfaStore
            + Health
            + 'static,
    {
        Self {
            users: store.clone(),
            sessions: store.clone(),
            keys: store.clone(),
            audit: store.clone(),
            limiter: Arc::new(MemoryRateLimiter::new()),
            lockouts: store.clone(),
            mail: store.clone(),
            mfa: store.clone(),
            health: store,
            sealer: Sealer::default(),
            audit_head_key: None,
            migrations_applied: 0,
        }
    }
}

/// Builds the use cases on the backends, reading the time from `clock`.
pub async fn build_auth(
    settings: &Settings,
    backends: &Backends,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<AuthService, StartupError> {
    let access = AccessTokens::load_with_clock(
        AccessTokenSettings {
            secret: settings.tokens.secret.clone(),
            issuer: settings.tokens.issuer.clone(),
            audience: settings.tokens.audience.clone(),
            client_id: settings.tokens.client_id.clone(),
            ttl: settings.tokens.access_ttl,
            leeway: settings.tokens.leeway,
            publish_ahead: settings.tokens.key_publish_ahead,
            rotate_every: settings.tokens.key_rotate_every,
        },
        backends.keys.as_ref(),
        clock.clone(),
    )
    .await?;
    let successor_key =
        backends.keys.secret("refresh_successor_key", &tokens::random_bytes::<32>()).await?;
    let factors_key =
        backends.keys.secret("second_factor_key", &tokens::random_bytes::<32>()).await?;
    let factors = SecondFactors {
        store: backends.mfa.clone(),
        sealer: backends.sealer.clone(),
        key: secrecy::SecretSlice::from(factors_key),
        webauthn: relying_party(settings),
        issuer: settings.tokens.issuer.clone(),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stores = AuthStores {
        users: backends.users.clone(),
        sessions: backends.sessions.clone(),
        limiter: backends.limiter.clone(),
        lockouts: backends.lockouts.clone(),
        audit: Audit::new(backends.audit.clone(), metrics.clone())
            .with_head_key(backends.audit_head_key),
        outbox: Outbox::new(
            backends.mail.clone(),
            backends.sealer.clone(),
            clock.clone(),
            metrics.clone(),
        ),
        clock,
        factors,
    };
    Ok(AuthService::new(
        stores,
        PasswordHasher::new(settings.argon2, cores, metrics.clone())?,
        Arc::new(access),
        SuccessorKey::new(successor_key),
        AuthSettings {
            refresh_token_ttl: settings.tokens.refresh_ttl,
            refresh_reuse_grace: settings.tokens.refresh_reuse_grace,
            password_policy: settings.accounts.password_policy,
            limits: Limits {
                ip: settings.limits.ip,
                account: settings.limits.account,
                reads: settings.limits.reads,
                mail: settings.limits.mail,
            },
            lockout: lockout_policy(settings),
            session_lifetime: settings.accounts.session_lifetime,
            max_sessions_per_user: settings.accounts.max_sessions_per_user,
            device_token_ttl: settings.accounts.device_token_ttl,
            mail: MailFlows {
                verification: settings.mail.verification,
                email_token_ttl: settings.mail.email_token_ttl,
                password_reset_ttl: settings.mail.password_reset_ttl,
            },
        },
        Templates::new(&settings.tokens.issuer, &settings.mail),
        metrics,
    ))
}

/// Seals again, in the background, every TOTP secret still in clear or under the previous
/// master key, so that a rotation completes without waiting for each user's next login.
fn spawn_reseal(auth: Arc<AuthService>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match auth.reseal_totp_secrets().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "sealed TOTP secrets under the current master key"),
            Err(error) => tracing::warn!(%error, "could not seal TOTP secrets again"),
        }
    })
}

/// The passkey relying party the settings describe (checked when they were read). Subdomains
/// and other ports are not allowed: the origins must be listed as they are.
fn relying_party(settings: &Settings) -> webauthn_rs_core::WebauthnCore {
    let rp = &settings.webauthn;
    webauthn_rs_core::WebauthnCore::new_unsafe_experts_only(
        &rp.rp_name,
        &rp.rp_id,
        rp.origins.clone(),
        crate::auth::passkeys::CEREMONY_TTL,
        Some(false),
        Some(false),
    )
}

/// The mail sender of this instance, on the transport the settings name.
fn spawn_mail_sender(
    settings: &Settings,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<tokio::task::JoinHandle<()>, StartupError> {
    let config =
        |message: String| StartupError::Config { variable: "PORTCULLIS_SMTP_URL", message };
    if settings.mail.smtp_url.is_none() {
        // Messages go to files in the data directory (also on PostgreSQL): make it private.
        files::create_data_dir(&settings.storage.data_dir)?;
    }
    let transport =
        Transport::new(settings.mail.smtp_url.as_deref(), &settings.storage.data_dir.join("mail"))
            .map_err(config)?;
    let from = settings.mail.from.parse().map_err(|_| StartupError::Config {
        variable: "PORTCULLIS_MAIL_FROM",
        message: "is not a mailbox".to_owned(),
    })?;
    let sender = SenderSettings {
        from,
        retry_for: settings.mail.retry_for,
        retry_max_delay: settings.mail.retry_max_delay,
    };
    Ok(spawn_sender(outbox, transport, sender, clock, metrics))
}

/// The lockout rule the settings describe.
fn lockout_policy(settings: &Settings) -> LockoutPolicy {
    LockoutPolicy {
        threshold: settings.lockout.threshold,
        window: settings.lockout.window,
        duration: settings.lockout.duration,
        max_failures: settings.lockout.max_failures,
        memory: FAILURE_MEMORY,
    }
}

/// The metrics registry, or a startup error.
pub fn new_metrics() -> Result<Arc<Metrics>, StartupError> {
    Metrics::new()
        .map(Arc::new)
        .map_err(|e| StartupError::Auth(crate::auth::AuthError::Internal(e.to_string())))
}

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
        let auth =
            Arc::new(build_auth(&settings, &backends, metrics.clone(), clock.clone()).await?);
        let summary = StartSummary {
            migrations_applied: backends.migrations_applied,
            signing_key_generated: keys_before == Some(0)
                && signing_keys().await.is_some_and(|n| n > 0),
            ..StartSummary::of(&settings)
        };
        let mut tasks = vec![
            spawn_reseal(auth.clone()),
            spawn_key_reload(auth.clone(), backends.keys.clone()),
            spawn_head_signing(auth.clone(), clock.clone()),
            spawn_purge(&backends, &settings, clock.clone()),
            spawn_mail_sender(&settings, auth.outbox().clone(), metrics.clone(), clock)?,
        ];
        if let Some(tls) = &tls {
            tasks.push(crate::http::tls::spawn_reload_on_sighup(tls.clone()));
        }
        let proxies = TrustedProxies {
            networks: Arc::new(settings.http.trusted_proxies.clone()),
            header: settings.http.client_ip_header,
        };
        let state = AppState {
            auth,
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

/// Signs the audit chain's head every `HEAD_SIGN_INTERVAL` (when a master key is configured),
/// from the start, also when no event came: a heartbeat, so that a newest signature that stopped
/// being renewed shows a trail cut at its end (see `Audit::verify`).
fn spawn_head_signing(
    auth: Arc<AuthService>,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(crate::audit::HEAD_SIGN_INTERVAL);
        loop {
            interval.tick().await;
            if let Err(error) = auth.audit().sign_head(clock.now()).await {
                // Without new signatures `audit verify` fails two heartbeats on: say it loudly.
                tracing::error!(error = error.with_causes(), "could not sign the audit head");
            }
        }
    })
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

/// Every hour: deletes sessions a day after they expired or were revoked, with their refresh
/// tokens, failure counters whose window and lock have passed, and devices unused for
/// `DEVICE_TOKEN_TTL`.
fn spawn_purge(
    backends: &Backends,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    let (sessions, lockouts, users, mail, mfa) = (
        backends.sessions.clone(),
        backends.lockouts.clone(),
        backends.users.clone(),
        backends.mail.clone(),
        backends.mfa.clone(),
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
