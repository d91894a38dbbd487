//! Store behaviour that HTTP cannot reach in a test's time, on whichever backend the suite runs
//! against: purging old sessions and failure counters, and the lockout gate's edges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::Utc;
use portcullis::domain::{Email, Role, SessionId, UserId};
use portcullis::store::postgres::PostgresStore;
use portcullis::store::sqlite::SqliteStore;
use portcullis::store::{
    AttemptGate, LockoutPolicy, LockoutStore, NewSession, NewUser, SessionStore, TokenHash,
    UserStore,
};

mod common;

/// The store traits these tests use, on one backend.
trait Stores: UserStore + SessionStore + LockoutStore {}
impl<T: UserStore + SessionStore + LockoutStore> Stores for T {}

/// A migrated store on a fresh database of the backend under test, and the owner that deletes
/// that database when the test ends.
async fn store() -> (Box<dyn Stores>, common::StorageOwner) {
    let (storage, owner) = common::new_storage().await;
    let store: Box<dyn Stores> = match &storage.database_url {
        Some(url) => {
            let store = PostgresStore::connect(url).await.unwrap();
            store.migrate().await.unwrap();
            Box::new(store)
        }
        None => {
            let store = SqliteStore::open_file(&storage.data_dir.join("test.db")).await.unwrap();
            store.migrate().await.unwrap();
            Box::new(store)
        }
    };
    (store, owner)
}

async fn user(store: &dyn Stores) -> UserId {
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

async fn session(store: &dyn Stores, user: UserId, days_left: i64, token: u8) -> SessionId {
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
    let (store, _app) = store().await;
    let store = store.as_ref();
    let user = user(store).await;
    let live = session(store, user, 5, 1).await;
    let expired = session(store, user, -3, 2).await;
    let revoked = session(store, user, 5, 3).await;
    let now = Utc::now();
    store.revoke_session(user, revoked, now - chrono::Duration::days(2)).await.unwrap();
    let purged = store.purge_sessions(now, Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(purged, 2);
    assert!(store.live_session(live, now).await.unwrap().is_some());
    assert!(store.live_session(expired, now).await.unwrap().is_none());
    // The purged sessions' refresh tokens went with them.
    let rotation = store
        .rotate_refresh_token(&TokenHash([2; 32]), &TokenHash([9; 32]), now, now, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rotation, portcullis::store::Rotation::Invalid);
}

const POLICY: LockoutPolicy = LockoutPolicy {
    threshold: 3,
    window: Duration::from_secs(60),
    duration: Duration::from_secs(600),
};

#[tokio::test]
async fn the_gate_locks_at_the_threshold_and_purging_keeps_running_locks() {
    let (store, _app) = store().await;
    let store = store.as_ref();
    let now = Utc::now();
    let gates: Vec<AttemptGate> = {
        let mut gates = Vec::new();
        for _ in 0..4 {
            gates.push(store.begin_attempt("email:a@example.com", POLICY, now).await.unwrap());
        }
        gates
    };
    assert_eq!(gates[0], AttemptGate::Proceed { locks: false });
    assert_eq!(gates[1], AttemptGate::Proceed { locks: false });
    assert_eq!(gates[2], AttemptGate::Proceed { locks: true });
    assert_eq!(gates[3], AttemptGate::Locked { retry_after: Duration::from_secs(600) });
    assert_eq!(
        store.locked_for("email:a@example.com", now).await.unwrap(),
        Some(Duration::from_secs(600))
    );

    store.begin_attempt("email:b@example.com", POLICY, now).await.unwrap();
    let later = now + chrono::Duration::seconds(120);
    assert_eq!(store.purge_lockouts(later, POLICY.window).await.unwrap(), 1, "b's window passed");
    assert!(store.locked_for("email:a@example.com", later).await.unwrap().is_some());

    // After the lock, counting starts afresh.
    let after = now + chrono::Duration::seconds(601);
    let gate = store.begin_attempt("email:a@example.com", POLICY, after).await.unwrap();
    assert_eq!(gate, AttemptGate::Proceed { locks: false });
}

#[tokio::test]
async fn clearing_by_prefix_lifts_every_device_lock_of_a_user() {
    let (store, _app) = store().await;
    let store = store.as_ref();
    let now = Utc::now();
    let policy = LockoutPolicy { threshold: 1, ..POLICY };
    for key in ["device:u1:a", "device:u1:b", "device:u10:c"] {
        store.begin_attempt(key, policy, now).await.unwrap();
    }
    assert_eq!(store.clear_prefix("device:u1:").await.unwrap(), 2);
    assert!(store.locked_for("device:u10:c", now).await.unwrap().is_some());
}
