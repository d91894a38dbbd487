//! The one place that chooses backends: the database the settings name (the embedded SQLite
//! file by default), and Redis for sessions, budgets and lockouts when `REDIS_URL` is set.

use std::sync::Arc;

use crate::audit::HeadKeys;
use crate::config::{DatabaseUrl, Settings};
use crate::crypto::{SealedKeys, Sealer};
use crate::store::memory::MemoryRateLimiter;
use crate::store::redis::RedisStore;
use crate::store::sql::SqlStore;
use crate::store::{
    AuditStore, ClientStore, GrantStore, Health, KeyStore, LockoutStore, MailStore, MfaStore,
    RateLimitStore, SessionStore, StoreError, TicketStore, UserStore,
};

use super::errors::{StartupError, database_failed, root_cause, without_password};
use super::{files, summary};

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
    /// OAuth clients, in the database.
    pub clients: Arc<dyn ClientStore>,
    /// The single-use tickets of OAuth authorizations in progress, where the sessions live.
    pub tickets: Arc<dyn TicketStore>,
    /// The apps each user has authorised, where the sessions live.
    pub grants: Arc<dyn GrantStore>,
    /// Seals queued mail under the master key.
    pub sealer: Sealer,
    /// Sign the audit chain's head and check its signatures: derived from the master key.
    pub audit_head_keys: HeadKeys,
    /// How many database migrations opening these backends applied.
    pub migrations_applied: usize,
}

/// Opens the backends the settings name, applying migrations first when `migrate` is set: the
/// database for users, keys and the audit trail, and, with `REDIS_URL`, Redis for sessions,
/// budgets and lockouts.
pub async fn open_backends(settings: &Settings, migrate: bool) -> Result<Backends, StartupError> {
    let mut backends = open_database(settings, migrate).await?;
    let sealer = files::sealer(settings)?;
    backends.audit_head_keys = HeadKeys::from_sealer(&sealer)?;
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
                tickets: redis.clone(),
                grants: redis.clone(),
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
            + ClientStore
            + TicketStore
            + GrantStore
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
            clients: store.clone(),
            tickets: store.clone(),
            grants: store.clone(),
            health: store,
            sealer: Sealer::default(),
            audit_head_keys: HeadKeys::default(),
            migrations_applied: 0,
        }
    }
}
