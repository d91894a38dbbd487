//! Store behaviour that HTTP cannot reach in a test's time, on every backend that implements it
//! (each test runs on all of them, whichever pair the HTTP suite runs against): purging old
//! sessions, and the lockout gate's edges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chrono::Utc;
use portcullis::domain::{Email, Role, SessionId, UserId};
use portcullis::store::postgres::PostgresStore;
use portcullis::store::redis::RedisStore;
use portcullis::store::sqlite::SqliteStore;
use portcullis::store::{
    AttemptGate, LockoutPolicy, LockoutStore, NewSession, NewUser, Rotation, SessionStore,
    TokenHash, UserStore,
};

/// The SQL stores, which hold users and sessions together.
trait SqlStores: UserStore + SessionStore {}
impl<T: UserStore + SessionStore> SqlStores for T {}

/// Each SQL backend on a fresh database, with the owners that delete them.
async fn sql_stores() -> Vec<(&'static str, Box<dyn SqlStores>, common::StorageOwner)> {
    let (embedded, embedded_owner) = common::new_storage().await;
    let sqlite = SqliteStore::open_file(&embedded.data_dir.join("test.db")).await.unwrap();
    sqlite.migrate().await.unwrap();
    let (storage, owner) = common::new_postgres_storage().await;
    let postgres = PostgresStore::connect(storage.database_url.as_deref().unwrap()).await.unwrap();
    postgres.migrate().await.unwrap();
    vec![("sqlite", Box::new(sqlite), embedded_owner), ("postgres", Box::new(postgres), owner)]
}

/// Each lockout backend on fresh storage.
async fn lockout_stores() -> Vec<(&'static str, Box<dyn LockoutStore>, common::StorageOwner)> {
    let mut stores: Vec<(&'static str, Box<dyn LockoutStore>, common::StorageOwner)> = Vec::new();
    let (embedded, owner) = common::new_storage().await;
    let sqlite = SqliteStore::open_file(&embedded.data_dir.join("test.db")).await.unwrap();
    sqlite.migrate().await.unwrap();
    stores.push(("sqlite", Box::new(sqlite), owner));
    let (storage, owner) = common::new_postgres_storage().await;
    let prefix = storage.redis_prefix.clone().unwrap();
    // The Redis keys live under that storage's prefix and are deleted with it.
    let redis = RedisStore::connect(&common::redis_url(), &prefix).await.unwrap();
    stores.push(("redis", Box::new(redis), owner));
    let (storage, owner) = common::new_postgres_storage().await;
    let postgres = PostgresStore::connect(storage.database_url.as_deref().unwrap()).await.unwrap();
    postgres.migrate().await.unwrap();
    stores.push(("postgres", Box::new(postgres), owner));
    stores
}

async fn user(store: &dyn SqlStores) -> UserId {
    let id = UserId::new();
    let user = NewUser {
        id,
        email: Email::parse(&format!("{id}@example.com")).unwrap(),
        password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        roles: vec![Role::User],
        created_at: Utc::now(),
    };
    store.insert_user(&user).await.unwrap();
    id
}

async fn session(store: &dyn SqlStores, user: UserId, days_left: i64, token: u8) -> SessionId {
    let now = Utc::now();
    let id = SessionId::new();
    let session = NewSession {
        id,
        user_id: user,
        refresh_token: TokenHash([token; 32]),
        created_at: now - chrono::Duration::days(30),
        expires_at: now + chrono::Duration::days(days_left),
        ip: None,
        user_agent: None,
    };
    store.create_session(&session).await.unwrap();
    id
}

#[tokio::test]
async fn purging_removes_sessions_long_expired_or_revoked_and_keeps_the_rest() {
    for (name, store, _owner) in sql_stores().await {
        let store = store.as_ref();
        let user = user(store).await;
        let live = session(store, user, 5, 1).await;
        let expired = session(store, user, -3, 2).await;
        let revoked = session(store, user, 5, 3).await;
        let now = Utc::now();
        store.revoke_session(user, revoked, now - chrono::Duration::days(2)).await.unwrap();
        let purged = store.purge_sessions(now, Duration::from_secs(86_400)).await.unwrap();
        assert_eq!(purged, 2, "{name}");
        assert!(store.live_session(live, now).await.unwrap().is_some(), "{name}");
        assert!(store.live_session(expired, now).await.unwrap().is_none(), "{name}");
        // The purged sessions' refresh tokens went with them.
        let rotation = store
            .rotate_refresh_token(
                &TokenHash([2; 32]),
                &TokenHash([9; 32]),
                now,
                now,
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Invalid, "{name}");
    }
}

const POLICY: LockoutPolicy = LockoutPolicy {
    threshold: 3,
    window: Duration::from_secs(60),
    duration: Duration::from_secs(600),
};

#[tokio::test]
async fn the_gate_locks_at_the_threshold_and_counts_afresh_after_the_lock() {
    for (name, store, _owner) in lockout_stores().await {
        let now = Utc::now();
        let mut gates = Vec::new();
        for _ in 0..4 {
            gates.push(store.begin_attempt("email:a@example.com", POLICY, now).await.unwrap());
        }
        assert_eq!(gates[0], AttemptGate::Proceed { locks: false }, "{name}");
        assert_eq!(gates[1], AttemptGate::Proceed { locks: false }, "{name}");
        assert_eq!(gates[2], AttemptGate::Proceed { locks: true }, "{name}");
        assert_eq!(
            gates[3],
            AttemptGate::Locked { retry_after: Duration::from_secs(600) },
            "{name}"
        );
        assert_eq!(
            store.locked_for("email:a@example.com", now).await.unwrap(),
            Some(Duration::from_secs(600)),
            "{name}"
        );
        let after = now + chrono::Duration::seconds(601);
        let gate = store.begin_attempt("email:a@example.com", POLICY, after).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}");
        store.clear("email:a@example.com").await.unwrap();
        assert_eq!(store.locked_for("email:a@example.com", now).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn failures_outside_the_window_start_a_new_count() {
    for (name, store, _owner) in lockout_stores().await {
        let now = Utc::now();
        store.begin_attempt("k", POLICY, now).await.unwrap();
        store.begin_attempt("k", POLICY, now).await.unwrap();
        let later = now + chrono::Duration::seconds(61);
        let gate = store.begin_attempt("k", POLICY, later).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}: the window passed");
    }
}

#[tokio::test]
async fn sql_purging_keeps_running_locks() {
    for (name, store, _owner) in lockout_stores().await.into_iter().filter(|s| s.0 != "redis") {
        let now = Utc::now();
        for _ in 0..3 {
            store.begin_attempt("email:a@example.com", POLICY, now).await.unwrap();
        }
        store.begin_attempt("email:b@example.com", POLICY, now).await.unwrap();
        let later = now + chrono::Duration::seconds(120);
        assert_eq!(store.purge_lockouts(later, POLICY.window).await.unwrap(), 1, "{name}");
        assert!(store.locked_for("email:a@example.com", later).await.unwrap().is_some(), "{name}");
    }
}

#[tokio::test]
async fn clearing_by_prefix_lifts_every_device_lock_of_a_user() {
    for (name, store, _owner) in lockout_stores().await {
        let now = Utc::now();
        let policy = LockoutPolicy { threshold: 1, ..POLICY };
        for key in ["device:u1:a", "device:u1:b", "device:u10:c", "device:u1*:d"] {
            store.begin_attempt(key, policy, now).await.unwrap();
        }
        assert_eq!(store.clear_prefix("device:u1:").await.unwrap(), 2, "{name}");
        assert!(store.locked_for("device:u10:c", now).await.unwrap().is_some(), "{name}");
        assert_eq!(
            store.clear_prefix("device:u1*:").await.unwrap(),
            1,
            "{name}: globs are literal"
        );
    }
}
