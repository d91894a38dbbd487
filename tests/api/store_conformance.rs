//! One conformance suite per store trait, run against every backend that implements it: the
//! embedded ones always (SQLite, the in-process budgets), PostgreSQL and Redis where they run.
//! A backend that passes is interchangeable with the others; a new one (Redis Cluster) is added
//! to the lists in `backends` and nothing else.
//!
//! Time is injected: every call takes the time from a `ManualClock` that the test moves, so
//! expiry, grace, refill and lock durations are tested without sleeping.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use portcullis::audit::Audit;
use portcullis::domain::audit::chain::HeadSignature;
use portcullis::domain::audit::{AuditEvent, EventType, Outcome};
use portcullis::domain::{
    Amr, AttemptGate, Clock, Email, LockoutPolicy, ManualClock, Rate, RequestContext, Role,
    SessionId, SignatureAlg, Timestamp, UserId,
};
use portcullis::metrics::Metrics;
use portcullis::store::{
    AdminGuard, AuditStore, ChallengePurpose, ChallengeRecord, ClientCursor, ClientRecord,
    ClientStore, KeyStore, LockKey, LockoutStore, MailStore, MfaStore, NewEmailToken, NewSession,
    NewUser, PasskeyRecord, QueuedMail, RateLimitStore, Rotation, SessionCursor, SessionKind,
    SessionStore, SigningKeyRecord, StoreError, Taken, TicketKind, TokenHash, TokenPurpose,
    UserStore,
};

mod backends {
    //! The backends under test, each on fresh storage that is deleted when its owner drops.

    use std::sync::Arc;

    use portcullis::store::memory::MemoryRateLimiter;
    use portcullis::store::redis::RedisStore;
    use portcullis::store::sql::SqlStore;
    use portcullis::store::{
        GrantStore, LockoutStore, RateLimitStore, SessionStore, TicketStore, UserStore,
    };

    use super::common;

    /// Holds what a backend needs to stay alive and cleans it up on drop.
    pub struct Owner(#[allow(dead_code)] Vec<common::StorageOwner>);

    async fn postgres_up() -> bool {
        common::servers_answer("the PostgreSQL backends", true, false).await
    }

    async fn redis_up() -> bool {
        common::servers_answer("the Redis backends", false, true).await
    }

    async fn sqlite() -> (SqlStore, common::StorageOwner) {
        let (storage, owner) = common::new_embedded_storage().await;
        let store = SqlStore::open_file(&storage.data_dir.join("conformance.db")).await.unwrap();
        store.migrate().await.unwrap();
        (store, owner)
    }

    async fn postgres() -> (SqlStore, common::StorageOwner) {
        let (storage, owner) = common::new_postgres_storage().await;
        let store = SqlStore::connect(storage.database_url.as_deref().unwrap()).await.unwrap();
        store.migrate().await.unwrap();
        (store, owner)
    }

    async fn redis() -> (RedisStore, common::StorageOwner) {
        redis_at(&common::redis_url()).await
    }

    async fn redis_at(url: &str) -> (RedisStore, common::StorageOwner) {
        let (storage, owner) = common::new_redis_storage().await;
        let store = RedisStore::connect(url, storage.redis_prefix.as_deref().unwrap()).unwrap();
        (store, owner)
    }

    /// Redis stores: the server where it runs, and the cluster where the suite has one.
    pub async fn redis_stores() -> Vec<(&'static str, RedisStore, common::StorageOwner)> {
        let mut all = Vec::new();
        if redis_up().await {
            let (store, owner) = redis().await;
            all.push(("redis", store, owner));
        }
        if let Some(url) = common::cluster_for("the Redis Cluster backends") {
            let (store, owner) = redis_at(&url).await;
            all.push(("redis-cluster", store, owner));
        }
        all
    }

    /// The SQL stores, which implement every database trait.
    pub async fn sql() -> Vec<(&'static str, Arc<SqlStore>, Owner)> {
        let (store, owner) = sqlite().await;
        let mut all = vec![("sqlite", Arc::new(store), Owner(vec![owner]))];
        if postgres_up().await {
            let (store, owner) = postgres().await;
            all.push(("postgres", Arc::new(store), Owner(vec![owner])));
        }
        all
    }

    /// A session store, named, with a user store for its users and the owner of both.
    pub type SessionBackend = (&'static str, Arc<dyn SessionStore>, Arc<dyn UserStore>, Owner);
    pub type GrantBackend = (&'static str, Arc<dyn GrantStore>, Arc<dyn UserStore>, Owner);

    /// Session stores, each with a user store that can hold the sessions' users (the SQL
    /// schema requires them; Redis takes any user id, so the embedded database serves).
    pub async fn sessions() -> Vec<SessionBackend> {
        let mut all: Vec<SessionBackend> = Vec::new();
        for (name, store, owner) in sql().await {
            all.push((name, store.clone(), store, owner));
        }
        for (name, store, owner) in redis_stores().await {
            let (users, users_owner) = sqlite().await;
            all.push((name, Arc::new(store), Arc::new(users), Owner(vec![owner, users_owner])));
        }
        all
    }

    /// Grant stores: wherever sessions live, each with the users its SQL rows refer to.
    pub async fn grants() -> Vec<GrantBackend> {
        let mut all: Vec<GrantBackend> = Vec::new();
        for (name, store, owner) in sql().await {
            all.push((name, store.clone(), store, owner));
        }
        for (name, store, owner) in redis_stores().await {
            let (users, users_owner) = sqlite().await;
            all.push((name, Arc::new(store), Arc::new(users), Owner(vec![owner, users_owner])));
        }
        all
    }

    /// Ticket stores: wherever sessions live.
    pub async fn tickets() -> Vec<(&'static str, Arc<dyn TicketStore>, Owner)> {
        let mut all: Vec<(&'static str, Arc<dyn TicketStore>, Owner)> = Vec::new();
        for (name, store, owner) in sql().await {
            all.push((name, store, owner));
        }
        for (name, store, owner) in redis_stores().await {
            all.push((name, Arc::new(store), Owner(vec![owner])));
        }
        all
    }

    pub async fn lockouts() -> Vec<(&'static str, Arc<dyn LockoutStore>, Owner)> {
        let mut all: Vec<(&'static str, Arc<dyn LockoutStore>, Owner)> = Vec::new();
        for (name, store, owner) in sql().await {
            all.push((name, store, owner));
        }
        for (name, store, owner) in redis_stores().await {
            all.push((name, Arc::new(store), Owner(vec![owner])));
        }
        all
    }

    pub async fn limiters() -> Vec<(&'static str, Arc<dyn RateLimitStore>, Owner)> {
        let mut all: Vec<(&'static str, Arc<dyn RateLimitStore>, Owner)> =
            vec![("memory", Arc::new(MemoryRateLimiter::new()), Owner(Vec::new()))];
        for (name, store, owner) in redis_stores().await {
            all.push((name, Arc::new(store), Owner(vec![owner])));
        }
        all
    }
}

fn at(clock: &ManualClock, ahead: Duration) -> Timestamp {
    clock.now() + chrono::Duration::from_std(ahead).unwrap()
}

/// A time as the stores keep it: to the millisecond.
fn in_millis(time: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap()
}

fn token(byte: u8) -> TokenHash {
    TokenHash([byte; 32])
}

fn random_token() -> TokenHash {
    let mut bytes = [0; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    TokenHash(bytes)
}

async fn new_user(users: &dyn UserStore, clock: &ManualClock) -> UserId {
    let id = UserId::new();
    let user = NewUser {
        id,
        email: Email::parse(&format!("{id}@example.com")).unwrap(),
        password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        roles: vec![Role::User],
        created_at: clock.now(),
    };
    users.insert_user(&user).await.unwrap();
    id
}

/// A session of `user` created now, whose refresh token is `refresh`, living for `lifetime`.
async fn new_session(
    sessions: &dyn SessionStore,
    clock: &ManualClock,
    user: UserId,
    refresh: &TokenHash,
    lifetime: Duration,
) -> SessionId {
    let id = SessionId::new();
    let session = NewSession {
        id,
        user_id: user,
        refresh_token: refresh.clone(),
        created_at: clock.now(),
        expires_at: at(clock, lifetime),
        ends_at: at(clock, DAY * 30),
        device: None,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("conformance".into()),
        amr: Amr::PASSWORD,
        kind: SessionKind::Api,
    };
    sessions.create_session(&session, 100).await.unwrap();
    id
}

const DAY: Duration = Duration::from_secs(86_400);

// ---- SessionStore ----------------------------------------------------------------------------

#[tokio::test]
async fn of_many_concurrent_rotations_of_one_token_exactly_one_wins() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let first = random_token();
        new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let successors: Vec<TokenHash> = (0..16).map(|_| random_token()).collect();
        let now = clock.now();
        let outcomes = join_all(successors.iter().map(|successor| {
            let sessions = sessions.clone();
            let first = first.clone();
            let successor = successor.clone();
            async move {
                sessions
                    .rotate_refresh_token(
                        Some(user),
                        &first,
                        &successor,
                        now,
                        now + chrono::Duration::days(1),
                        Duration::ZERO,
                    )
                    .await
                    .unwrap()
            }
        }))
        .await;
        let rotated = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated { .. })).count();
        assert_eq!(rotated, 1, "{name}: {outcomes:?}");
        // A loser finds the token rotated and revokes the session (on PostgreSQL several may, before
        // they see each other's revocation); the later ones find the session revoked.
        let reused = outcomes.iter().filter(|o| matches!(o, Rotation::Reused { .. })).count();
        let invalid = outcomes.iter().filter(|o| **o == Rotation::Invalid).count();
        assert!(reused >= 1 && reused + invalid == 15, "{name}: {outcomes:?}");
        let session = match outcomes.iter().find(|o| matches!(o, Rotation::Rotated { .. })) {
            Some(Rotation::Rotated { session, .. }) => *session,
            _ => unreachable!(),
        };
        assert!(
            sessions.live_session(user, session, now).await.unwrap().is_none(),
            "{name}: revoked"
        );
    }
}

#[tokio::test]
async fn within_the_grace_the_same_successor_is_handed_out_and_after_it_the_session_is_revoked() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second) = (random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let login_at = in_millis(clock.now());
        let grace = Duration::from_secs(10);
        let expiry = at(&clock, DAY);
        let rotated = sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await
            .unwrap();
        assert_eq!(
            rotated,
            Rotation::Rotated { session, user, amr: Amr::PASSWORD, login_at },
            "{name}"
        );
        clock.advance(Duration::from_secs(9));
        let again = sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await
            .unwrap();
        assert_eq!(
            again,
            Rotation::Grace { session, user, amr: Amr::PASSWORD, login_at },
            "{name}: within the grace"
        );
        let other = random_token();
        let different = sessions
            .rotate_refresh_token(Some(user), &first, &other, clock.now(), expiry, grace)
            .await;
        assert_eq!(
            different.unwrap(),
            Rotation::Reused { session, user },
            "{name}: another successor is reuse"
        );
        assert!(
            sessions.live_session(user, session, clock.now()).await.unwrap().is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn grace_ends_when_it_has_passed_or_the_successor_was_rotated() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second, third) = (random_token(), random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let grace = Duration::from_secs(10);
        let expiry = at(&clock, DAY);
        sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await
            .unwrap();
        sessions
            .rotate_refresh_token(Some(user), &second, &third, clock.now(), expiry, grace)
            .await
            .unwrap();
        let late = sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await;
        assert_eq!(
            late.unwrap(),
            Rotation::Reused { session, user },
            "{name}: its successor is no longer current"
        );

        let user = new_user(users.as_ref(), &clock).await;
        let (first, second) = (random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await
            .unwrap();
        clock.advance(grace);
        let late = sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, grace)
            .await;
        assert_eq!(late.unwrap(), Rotation::Reused { session, user }, "{name}: the grace passed");
    }
}

/// Without a grace, a reuse is a reuse even when its request read the clock before the rotation
/// it lost to was stamped (instances racing on one token: the loser's `now` can be earlier).
#[tokio::test]
async fn without_a_grace_a_reuse_stamped_before_the_rotation_is_still_a_reuse() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second) = (random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let expiry = at(&clock, DAY);
        let earlier = clock.now();
        clock.advance(Duration::from_millis(3));
        sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, Duration::ZERO)
            .await
            .unwrap();
        let lost = sessions
            .rotate_refresh_token(Some(user), &first, &second, earlier, expiry, Duration::ZERO)
            .await;
        assert_eq!(lost.unwrap(), Rotation::Reused { session, user }, "{name}");
    }
}

#[tokio::test]
async fn a_reused_token_revokes_its_session_and_leaves_other_sessions_alone() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second, other) = (random_token(), random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let bystander = new_session(sessions.as_ref(), &clock, user, &other, DAY).await;
        let expiry = at(&clock, DAY);
        let zero = Duration::ZERO;
        sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, zero)
            .await
            .unwrap();
        let replay = random_token();
        let reused = sessions
            .rotate_refresh_token(Some(user), &first, &replay, clock.now(), expiry, zero)
            .await
            .unwrap();
        assert_eq!(reused, Rotation::Reused { session, user }, "{name}");
        let successor = sessions
            .rotate_refresh_token(Some(user), &second, &replay, clock.now(), expiry, zero)
            .await
            .unwrap();
        assert_eq!(successor, Rotation::Invalid, "{name}: the successor died with its session");
        assert!(
            sessions.live_session(user, session, clock.now()).await.unwrap().is_none(),
            "{name}"
        );
        assert!(
            sessions.live_session(user, bystander, clock.now()).await.unwrap().is_some(),
            "{name}"
        );
        assert!(
            sessions
                .session_of_refresh_token(Some(user), &other, clock.now())
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn an_expired_session_and_an_unknown_token_are_invalid() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let first = random_token();
        let session =
            new_session(sessions.as_ref(), &clock, user, &first, Duration::from_secs(60)).await;
        let record = sessions.live_session(user, session, clock.now()).await.unwrap().unwrap();
        assert_eq!((record.id, record.user_id), (session, user), "{name}");
        assert_eq!(record.created_at, clock.now(), "{name}: times round-trip exactly");
        assert_eq!(record.ip.as_deref(), Some("192.0.2.1"), "{name}");
        let found =
            sessions.session_of_refresh_token(Some(user), &first, clock.now()).await.unwrap();
        assert_eq!(found.map(|s| s.id), Some(session), "{name}");

        clock.advance(Duration::from_secs(60));
        let now = clock.now();
        assert!(sessions.live_session(user, session, now).await.unwrap().is_none(), "{name}");
        assert!(
            sessions.session_of_refresh_token(Some(user), &first, now).await.unwrap().is_none(),
            "{name}"
        );
        let expiry = at(&clock, DAY);
        let next = random_token();
        let rotated =
            sessions.rotate_refresh_token(Some(user), &first, &next, now, expiry, Duration::ZERO);
        assert_eq!(rotated.await.unwrap(), Rotation::Invalid, "{name}");
        let (unknown, next) = (token(7), token(8));
        let unknown =
            sessions.rotate_refresh_token(Some(user), &unknown, &next, now, expiry, Duration::ZERO);
        assert_eq!(unknown.await.unwrap(), Rotation::Invalid, "{name}");
    }
}

#[tokio::test]
async fn a_rotation_extends_the_session_to_the_new_expiry() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second) = (random_token(), random_token());
        let session =
            new_session(sessions.as_ref(), &clock, user, &first, Duration::from_secs(60)).await;
        clock.advance(Duration::from_secs(30));
        let expiry = at(&clock, Duration::from_secs(60));
        sessions
            .rotate_refresh_token(Some(user), &first, &second, clock.now(), expiry, Duration::ZERO)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(45));
        let record = sessions.live_session(user, session, clock.now()).await.unwrap();
        let record = record.unwrap_or_else(|| panic!("{name}: the rotation extended the session"));
        assert_eq!(record.last_used_at, at(&clock, Duration::ZERO) - chrono::Duration::seconds(45));
    }
}

#[tokio::test]
async fn a_session_never_outlives_its_end_and_remembers_its_device() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let (first, second, phone) = (random_token(), random_token(), random_token());
        let id = SessionId::new();
        let session = NewSession {
            id,
            user_id: user,
            refresh_token: first.clone(),
            created_at: clock.now(),
            expires_at: at(&clock, Duration::from_secs(60)),
            ends_at: at(&clock, Duration::from_secs(90)),
            device: Some(phone.clone()),
            ip: None,
            user_agent: None,
            amr: Amr::passkey(true),
            kind: SessionKind::Grant {
                client_id: "wiki".into(),
                scope: "openid email".into(),
                parent: Some(SessionId::new()),
                auth_time: clock.now() - chrono::Duration::minutes(5),
            },
        };
        sessions.create_session(&session, 100).await.unwrap();
        let record = sessions.live_session(user, id, clock.now()).await.unwrap().unwrap();
        assert_eq!(record.device, Some(phone), "{name}");
        assert_eq!(record.amr, Amr::passkey(true), "{name}: what the login proved");
        assert_eq!(record.kind, session.kind, "{name}: the client's grant, scope and parent");
        clock.advance(Duration::from_secs(50));
        let expiry = at(&clock, Duration::from_secs(60));
        let rotated = sessions.rotate_refresh_token(
            Some(user),
            &first,
            &second,
            clock.now(),
            expiry,
            Duration::ZERO,
        );
        assert!(matches!(rotated.await.unwrap(), Rotation::Rotated { .. }), "{name}");
        clock.advance(Duration::from_secs(39));
        assert!(sessions.live_session(user, id, clock.now()).await.unwrap().is_some(), "{name}");
        clock.advance(Duration::from_secs(1));
        assert!(
            sessions.live_session(user, id, clock.now()).await.unwrap().is_none(),
            "{name}: ended"
        );
        let next = random_token();
        let late = sessions.rotate_refresh_token(
            Some(user),
            &second,
            &next,
            clock.now(),
            expiry,
            Duration::ZERO,
        );
        assert_eq!(late.await.unwrap(), Rotation::Invalid, "{name}");
    }
}

#[tokio::test]
async fn revoking_one_session_is_for_its_owner_only() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let (owner, stranger) =
            (new_user(users.as_ref(), &clock).await, new_user(users.as_ref(), &clock).await);
        let session = new_session(sessions.as_ref(), &clock, owner, &random_token(), DAY).await;
        let now = clock.now();
        assert!(!sessions.revoke_session(stranger, session, now).await.unwrap(), "{name}");
        assert!(sessions.live_session(owner, session, now).await.unwrap().is_some(), "{name}");
        assert!(sessions.revoke_session(owner, session, now).await.unwrap(), "{name}");
        assert!(!sessions.revoke_session(owner, session, now).await.unwrap(), "{name}: twice");
        assert!(sessions.live_session(owner, session, now).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn a_token_or_session_asked_for_under_another_owner_is_not_found() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let (user, stranger) =
            (new_user(users.as_ref(), &clock).await, new_user(users.as_ref(), &clock).await);
        let (first, second) = (random_token(), random_token());
        let session = new_session(sessions.as_ref(), &clock, user, &first, DAY).await;
        let login_at = in_millis(clock.now());
        let (now, expiry, zero) = (clock.now(), at(&clock, DAY), Duration::ZERO);
        let wrong =
            sessions.rotate_refresh_token(Some(stranger), &first, &second, now, expiry, zero);
        assert_eq!(wrong.await.unwrap(), Rotation::Invalid, "{name}");
        assert!(sessions.live_session(stranger, session, now).await.unwrap().is_none(), "{name}");
        let found = sessions.session_of_refresh_token(Some(stranger), &first, now).await.unwrap();
        assert!(found.is_none(), "{name}");
        let right = sessions.rotate_refresh_token(Some(user), &first, &second, now, expiry, zero);
        assert_eq!(
            right.await.unwrap(),
            Rotation::Rotated { session, user, amr: Amr::PASSWORD, login_at },
            "{name}: the wrong owner spent nothing and revoked nothing"
        );
    }
}

#[tokio::test]
async fn revoking_all_but_one_leaves_exactly_that_one() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let other_user = new_user(users.as_ref(), &clock).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(new_session(sessions.as_ref(), &clock, user, &random_token(), DAY).await);
            clock.advance(Duration::from_millis(5));
        }
        let unrelated =
            new_session(sessions.as_ref(), &clock, other_user, &random_token(), DAY).await;
        let now = clock.now();
        assert_eq!(
            sessions.revoke_sessions_of(user, Some(ids[1]), now).await.unwrap(),
            2,
            "{name}"
        );
        let left = sessions.sessions_of(user, now, None, 10).await.unwrap();
        assert_eq!(left.iter().map(|s| s.id).collect::<Vec<_>>(), vec![ids[1]], "{name}");
        assert_eq!(sessions.revoke_sessions_of(user, None, now).await.unwrap(), 1, "{name}");
        assert!(sessions.sessions_of(user, now, None, 10).await.unwrap().is_empty(), "{name}");
        assert!(
            sessions.live_session(other_user, unrelated, now).await.unwrap().is_some(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_count_of_sessions_is_the_live_ones_of_that_user_alone() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let other_user = new_user(users.as_ref(), &clock).await;
        assert_eq!(sessions.count_sessions(user, clock.now()).await.unwrap(), 0, "{name}");
        for _ in 0..3 {
            new_session(sessions.as_ref(), &clock, user, &random_token(), DAY).await;
        }
        let short = Duration::from_secs(60);
        new_session(sessions.as_ref(), &clock, user, &random_token(), short).await;
        let revoked = new_session(sessions.as_ref(), &clock, user, &random_token(), DAY).await;
        sessions.revoke_session(user, revoked, clock.now()).await.unwrap();
        new_session(sessions.as_ref(), &clock, other_user, &random_token(), DAY).await;
        assert_eq!(sessions.count_sessions(user, clock.now()).await.unwrap(), 4, "{name}");
        clock.advance(short);
        let now = clock.now();
        let listed = sessions.sessions_of(user, now, None, 10).await.unwrap().len() as u64;
        assert_eq!(sessions.count_sessions(user, now).await.unwrap(), 3, "{name}: expired");
        assert_eq!(listed, 3, "{name}: the count is what the list holds");
        assert_eq!(sessions.count_sessions(other_user, now).await.unwrap(), 1, "{name}");
    }
}

#[tokio::test]
async fn past_the_cap_a_new_session_ends_the_oldest() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let mut ids = Vec::new();
        let mut ended = 0;
        for _ in 0..5 {
            let id = SessionId::new();
            let session = NewSession {
                id,
                user_id: user,
                refresh_token: random_token(),
                created_at: clock.now(),
                expires_at: at(&clock, DAY),
                ends_at: at(&clock, DAY),
                device: None,
                ip: None,
                user_agent: None,
                amr: Amr::PASSWORD_AND_TOTP,
                kind: SessionKind::Api,
            };
            ended += sessions.create_session(&session, 3).await.unwrap();
            ids.push(id);
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(ended, 2, "{name}");
        let live = sessions.sessions_of(user, clock.now(), None, 10).await.unwrap();
        let live: Vec<SessionId> = live.iter().map(|s| s.id).collect();
        assert_eq!(live, vec![ids[4], ids[3], ids[2]], "{name}: the newest three, newest first");
        assert!(
            sessions.live_session(user, ids[0], clock.now()).await.unwrap().is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn sessions_come_in_pages_newest_first_without_gaps_or_repeats() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(new_session(sessions.as_ref(), &clock, user, &random_token(), DAY).await);
            // Two sessions share each millisecond: the id breaks the tie.
            if i % 2 == 1 {
                clock.advance(Duration::from_millis(3));
            }
        }
        let now = clock.now();
        let mut seen = Vec::new();
        let mut cursor: Option<SessionCursor> = None;
        loop {
            let page = sessions.sessions_of(user, now, cursor.as_ref(), 3).await.unwrap();
            assert!(page.len() <= 3, "{name}");
            let Some(last) = page.last() else { break };
            cursor = Some(SessionCursor { created_at: last.created_at, id: last.id });
            seen.extend(page.iter().map(|s| s.id));
        }
        let mut expected = ids.clone();
        expected.sort_by_key(|id| std::cmp::Reverse(id.to_string()));
        let created = |id: &SessionId| ids.iter().position(|i| i == id).unwrap() / 2;
        expected.sort_by_key(|id| std::cmp::Reverse(created(id)));
        assert_eq!(seen, expected, "{name}");
    }
}

#[tokio::test]
async fn purging_keeps_live_sessions_and_forgets_long_dead_ones() {
    for (name, sessions, users, _owner) in backends::sessions().await {
        let clock = ManualClock::new();
        let user = new_user(users.as_ref(), &clock).await;
        let live = new_session(sessions.as_ref(), &clock, user, &random_token(), DAY * 5).await;
        let dying = random_token();
        let expired =
            new_session(sessions.as_ref(), &clock, user, &dying, Duration::from_secs(60)).await;
        let revoked = new_session(sessions.as_ref(), &clock, user, &random_token(), DAY * 5).await;
        sessions.revoke_session(user, revoked, clock.now()).await.unwrap();
        clock.advance(DAY * 2);
        sessions.purge_sessions(clock.now(), DAY).await.unwrap();
        let now = clock.now();
        assert!(sessions.live_session(user, live, now).await.unwrap().is_some(), "{name}");
        assert!(sessions.live_session(user, expired, now).await.unwrap().is_none(), "{name}");
        assert!(sessions.live_session(user, revoked, now).await.unwrap().is_none(), "{name}");
        let expiry = at(&clock, DAY);
        let next = random_token();
        let rotation =
            sessions.rotate_refresh_token(Some(user), &dying, &next, now, expiry, Duration::ZERO);
        assert_eq!(rotation.await.unwrap(), Rotation::Invalid, "{name}");
    }
}

#[tokio::test]
async fn sql_purging_deletes_exactly_the_long_dead_sessions() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        new_session(store.as_ref(), &clock, user, &random_token(), DAY * 5).await;
        new_session(store.as_ref(), &clock, user, &random_token(), Duration::from_secs(60)).await;
        let revoked = new_session(store.as_ref(), &clock, user, &random_token(), DAY * 5).await;
        store.revoke_session(user, revoked, clock.now()).await.unwrap();
        clock.advance(DAY * 2);
        assert_eq!(store.purge_sessions(clock.now(), DAY).await.unwrap(), 2, "{name}");
    }
}

// ---- UserStore ------------------------------------------------------------------------------

#[tokio::test]
async fn an_email_is_taken_once_and_users_read_back_as_written() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let id = new_user(store.as_ref(), &clock).await;
        let user = store.user_by_id(id).await.unwrap().unwrap();
        assert_eq!(user.email.as_str(), format!("{id}@example.com"), "{name}");
        assert_eq!(user.roles, vec![Role::User], "{name}");
        assert_eq!(user.created_at, clock.now(), "{name}");
        let by_email = store.user_by_email(&user.email).await.unwrap().unwrap();
        assert_eq!(by_email.id, id, "{name}");
        let twin = NewUser {
            id: UserId::new(),
            email: user.email.clone(),
            password_hash: "x".into(),
            roles: vec![Role::User, Role::Admin],
            created_at: clock.now(),
        };
        assert!(matches!(store.insert_user(&twin).await, Err(StoreError::Conflict)), "{name}");
        store.set_password_hash(id, "new-hash").await.unwrap();
        assert_eq!(store.user_by_id(id).await.unwrap().unwrap().password_hash, "new-hash");
        assert!(store.user_by_id(UserId::new()).await.unwrap().is_none(), "{name}");
    }
}

async fn new_admin(users: &dyn UserStore, clock: &ManualClock) -> UserId {
    let id = new_user(users, clock).await;
    assert_eq!(users.set_roles(id, &[Role::User, Role::Admin]).await.unwrap(), AdminGuard::Done);
    id
}

#[tokio::test]
async fn no_change_takes_the_last_enabled_admin_away() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let users = store.as_ref();
        // Without any admin, accounts change freely.
        let plain = new_user(users, &clock).await;
        assert_eq!(users.set_disabled(plain, true).await.unwrap(), AdminGuard::Done, "{name}");
        assert!(!users.is_last_admin(plain).await.unwrap(), "{name}");
        assert_eq!(users.delete_user(plain).await.unwrap(), AdminGuard::Done, "{name}");
        assert_eq!(users.delete_user(plain).await.unwrap(), AdminGuard::NoAccount, "{name}");
        assert_eq!(users.set_roles(plain, &[]).await.unwrap(), AdminGuard::NoAccount, "{name}");
        assert_eq!(users.set_disabled(plain, true).await.unwrap(), AdminGuard::NoAccount);

        let (a, b) = (new_admin(users, &clock).await, new_admin(users, &clock).await);
        assert!(!users.is_last_admin(a).await.unwrap(), "{name}");
        assert_eq!(users.set_disabled(a, true).await.unwrap(), AdminGuard::Done, "{name}");
        assert!(users.is_last_admin(b).await.unwrap(), "{name}: a disabled admin does not count");
        for refused in [
            users.set_roles(b, &[Role::User]).await,
            users.set_disabled(b, true).await,
            users.delete_user(b).await,
        ] {
            assert_eq!(refused.unwrap(), AdminGuard::LastAdmin, "{name}");
        }
        let kept = users.user_by_id(b).await.unwrap().unwrap();
        assert_eq!((kept.roles, kept.disabled), (vec![Role::User, Role::Admin], false), "{name}");
        // Changes that keep it an enabled admin go through.
        assert_eq!(users.set_roles(b, &[Role::Admin]).await.unwrap(), AdminGuard::Done);
        assert_eq!(users.set_disabled(b, false).await.unwrap(), AdminGuard::Done);
        assert_eq!(users.set_disabled(a, false).await.unwrap(), AdminGuard::Done, "{name}");

        // Two admins taken away at once: exactly one change wins, round after round.
        for round in 0..20 {
            let (first, second) = match round % 3 {
                0 => tokio::join!(users.set_roles(a, &[Role::User]), users.set_roles(b, &[])),
                1 => tokio::join!(users.set_disabled(a, true), users.set_roles(b, &[Role::User])),
                _ => tokio::join!(users.set_disabled(a, true), users.set_disabled(b, true)),
            };
            let outcomes = [first.unwrap(), second.unwrap()];
            let won = outcomes.iter().filter(|o| **o == AdminGuard::Done).count();
            assert_eq!(won, 1, "{name}, round {round}: {outcomes:?}");
            assert!(outcomes.contains(&AdminGuard::LastAdmin), "{name}, round {round}");
            for id in [a, b] {
                users.set_roles(id, &[Role::User, Role::Admin]).await.unwrap();
                users.set_disabled(id, false).await.unwrap();
            }
        }
        let (first, second) = tokio::join!(users.delete_user(a), users.delete_user(b));
        let mut outcomes = [first.unwrap(), second.unwrap()];
        outcomes.sort_by_key(|o| *o == AdminGuard::LastAdmin);
        assert_eq!(outcomes, [AdminGuard::Done, AdminGuard::LastAdmin], "{name}");
    }
}

#[tokio::test]
async fn devices_are_known_to_their_user_until_unused_for_the_ttl_or_pushed_out() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let (user, stranger) =
            (new_user(store.as_ref(), &clock).await, new_user(store.as_ref(), &clock).await);
        let start = clock.now();
        let phone = random_token();
        store.remember_device(user, &phone, clock.now(), 3).await.unwrap();
        assert!(store.is_known_device(user, &phone, start).await.unwrap(), "{name}");
        assert!(!store.is_known_device(stranger, &phone, start).await.unwrap(), "{name}");
        // A stranger cannot take the device over.
        store.remember_device(stranger, &phone, clock.now(), 3).await.unwrap();
        assert!(store.is_known_device(user, &phone, start).await.unwrap(), "{name}");
        assert!(!store.is_known_device(stranger, &phone, start).await.unwrap(), "{name}");

        clock.advance(DAY);
        let used_since = clock.now();
        assert!(!store.is_known_device(user, &phone, used_since).await.unwrap(), "{name}: stale");
        store.remember_device(user, &phone, clock.now(), 3).await.unwrap();
        assert!(store.is_known_device(user, &phone, used_since).await.unwrap(), "{name}: used");

        let newer: Vec<TokenHash> = (0..3).map(|_| random_token()).collect();
        for device in &newer {
            clock.advance(Duration::from_secs(1));
            store.remember_device(user, device, clock.now(), 3).await.unwrap();
        }
        assert!(!store.is_known_device(user, &phone, start).await.unwrap(), "{name}: pushed out");
        for device in &newer {
            assert!(store.is_known_device(user, device, start).await.unwrap(), "{name}");
        }
        let purged = store.purge_devices(at(&clock, Duration::ZERO) - chrono::Duration::seconds(1));
        assert_eq!(purged.await.unwrap(), 1, "{name}: the one used before the last second");
        assert!(!store.is_known_device(user, &newer[0], start).await.unwrap(), "{name}");
        assert!(store.is_known_device(user, &newer[1], start).await.unwrap(), "{name}");
        assert_eq!(store.forget_devices(user, Some(&newer[2])).await.unwrap(), 1, "{name}");
        assert!(!store.is_known_device(user, &newer[1], start).await.unwrap(), "{name}");
        assert!(store.is_known_device(user, &newer[2], start).await.unwrap(), "{name}: kept");
        assert_eq!(store.forget_devices(user, None).await.unwrap(), 1, "{name}");
    }
}

// ---- RateLimitStore -------------------------------------------------------------------------

const TEN_PER_MINUTE: Rate = Rate { count: 10, period: Duration::from_secs(60) };

#[tokio::test]
async fn concurrent_requests_never_take_more_than_the_burst() {
    for (name, limiter, _owner) in backends::limiters().await {
        let clock = ManualClock::new();
        let now = clock.now();
        let key = format!("ip:{}", uuid::Uuid::new_v4());
        let decisions = join_all((0..50).map(|_| {
            let limiter = limiter.clone();
            let key = key.clone();
            async move { limiter.take(&key, TEN_PER_MINUTE, now).await.unwrap() }
        }))
        .await;
        assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 10, "{name}");
        for refused in decisions.iter().filter(|d| !d.allowed) {
            assert_eq!(refused.remaining, 0, "{name}");
            assert_eq!(refused.retry_after, Duration::from_secs(6), "{name}");
            assert_eq!(refused.limit, 10, "{name}");
        }
    }
}

#[tokio::test]
async fn a_budget_refills_one_request_per_interval_and_says_when() {
    for (name, limiter, _owner) in backends::limiters().await {
        let clock = ManualClock::new();
        let key = format!("account:{}", uuid::Uuid::new_v4());
        for expected_remaining in (0..10).rev() {
            let decision = limiter.take(&key, TEN_PER_MINUTE, clock.now()).await.unwrap();
            assert!(decision.allowed, "{name}");
            assert_eq!(decision.remaining, expected_remaining, "{name}");
        }
        clock.advance(Duration::from_secs(2));
        let refused = limiter.take(&key, TEN_PER_MINUTE, clock.now()).await.unwrap();
        assert!(!refused.allowed, "{name}");
        assert_eq!(refused.retry_after, Duration::from_secs(4), "{name}");
        clock.advance(Duration::from_secs(4));
        assert!(limiter.take(&key, TEN_PER_MINUTE, clock.now()).await.unwrap().allowed, "{name}");
        assert!(!limiter.take(&key, TEN_PER_MINUTE, clock.now()).await.unwrap().allowed, "{name}");
        clock.advance(Duration::from_secs(60));
        let full = limiter.take(&key, TEN_PER_MINUTE, clock.now()).await.unwrap();
        assert_eq!((full.allowed, full.remaining), (true, 9), "{name}: a full period refills all");
        let other = limiter.take("another key", TEN_PER_MINUTE, clock.now()).await.unwrap();
        assert!(other.allowed, "{name}: keys have separate budgets");
    }
}

// ---- LockoutStore ---------------------------------------------------------------------------

const POLICY: LockoutPolicy = LockoutPolicy {
    threshold: 3,
    window: Duration::from_secs(60),
    duration: Duration::from_secs(600),
    max_failures: 100,
    memory: DAY,
};

#[tokio::test]
async fn the_gate_locks_at_the_threshold_and_counts_afresh_after_the_lock() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        let now = clock.now();
        let mut gates = Vec::new();
        for _ in 0..4 {
            gates.push(
                store
                    .begin_attempt(&LockKey::subject("email:a@example.com"), POLICY, now)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(gates[0], AttemptGate::Proceed { locks: false }, "{name}");
        assert_eq!(gates[1], AttemptGate::Proceed { locks: false }, "{name}");
        assert_eq!(gates[2], AttemptGate::Proceed { locks: true }, "{name}");
        let locked = AttemptGate::Locked { retry_after: Duration::from_secs(600) };
        assert_eq!(gates[3], locked, "{name}");
        let locked_for =
            store.locked_for(&LockKey::subject("email:a@example.com"), now).await.unwrap();
        assert_eq!(locked_for, Some(Duration::from_secs(600)), "{name}");
        clock.advance(Duration::from_secs(100));
        let locked_for =
            store.locked_for(&LockKey::subject("email:a@example.com"), clock.now()).await.unwrap();
        assert_eq!(locked_for, Some(Duration::from_secs(500)), "{name}");
        clock.advance(Duration::from_secs(501));
        let gate = store
            .begin_attempt(&LockKey::subject("email:a@example.com"), POLICY, clock.now())
            .await
            .unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}");
        store.clear(&LockKey::subject("email:a@example.com")).await.unwrap();
        assert_eq!(
            store.locked_for(&LockKey::subject("email:a@example.com"), now).await.unwrap(),
            None,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_released_attempt_keeps_the_failures_before_it_and_lifts_only_its_own_lock() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        let key = &LockKey::subject("email:second-step@example.com");
        let now = clock.now();
        let gate = |store: Arc<dyn LockoutStore>| async move {
            store.begin_attempt(key, POLICY, now).await.unwrap()
        };
        assert_eq!(gate(store.clone()).await, AttemptGate::Proceed { locks: false }, "{name}");
        // A right password that still needs its second factor: counted, then taken back.
        assert_eq!(gate(store.clone()).await, AttemptGate::Proceed { locks: false }, "{name}");
        store.release_attempt(key, POLICY, now).await.unwrap();
        assert_eq!(gate(store.clone()).await, AttemptGate::Proceed { locks: false }, "{name}");
        // The third failure engages the lock in advance; taking it back lifts the lock again.
        assert_eq!(gate(store.clone()).await, AttemptGate::Proceed { locks: true }, "{name}");
        store.release_attempt(key, POLICY, now).await.unwrap();
        assert_eq!(store.locked_for(key, now).await.unwrap(), None, "{name}: lifted");
        assert_eq!(gate(store.clone()).await, AttemptGate::Proceed { locks: true }, "{name}");
        assert!(store.locked_for(key, now).await.unwrap().is_some(), "{name}: a real failure");
        // Taking back what was never counted changes nothing.
        let other = &LockKey::member("device:x", "never-counted");
        store.release_attempt(other, POLICY, now).await.unwrap();
        assert_eq!(store.locked_for(other, now).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn consecutive_failures_past_the_maximum_lock_until_cleared() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        let policy = LockoutPolicy { max_failures: 7, ..POLICY };
        let key = &LockKey::subject("email:patient@example.com");
        for round in 0..2 {
            for _ in 0..3 {
                let gate = store.begin_attempt(key, policy, clock.now()).await.unwrap();
                assert!(matches!(gate, AttemptGate::Proceed { .. }), "{name}: round {round}");
            }
            let gate = store.begin_attempt(key, policy, clock.now()).await.unwrap();
            assert!(matches!(gate, AttemptGate::Locked { .. }), "{name}: round {round}");
            clock.advance(Duration::from_secs(601));
        }
        // The seventh failure without a success locks for good: expired locks do not restart
        // this count.
        let gate = store.begin_attempt(key, policy, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: true }, "{name}");
        clock.advance(DAY * 365);
        let gate = store.begin_attempt(key, policy, clock.now()).await.unwrap();
        assert!(
            matches!(gate, AttemptGate::Locked { retry_after } if retry_after > DAY * 365 * 1000),
            "{name}: {gate:?}"
        );
        store.purge_lockouts(clock.now(), policy).await.unwrap();
        assert!(store.locked_for(key, clock.now()).await.unwrap().is_some(), "{name}: kept");
        store.clear(key).await.unwrap();
        let gate = store.begin_attempt(key, policy, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}: an unlock lifts it");
    }
}

#[tokio::test]
async fn consecutive_failures_are_forgotten_after_the_memory() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        let policy = LockoutPolicy { max_failures: 2, ..POLICY };
        store.begin_attempt(&LockKey::subject("k"), policy, clock.now()).await.unwrap();
        clock.advance(DAY);
        let gate = store.begin_attempt(&LockKey::subject("k"), policy, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}: a day apart");
        let gate = store.begin_attempt(&LockKey::subject("k"), policy, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: true }, "{name}: two in a row");
    }
}

#[tokio::test]
async fn parallel_attempts_get_at_most_the_threshold_of_checks() {
    for (name, store, _owner) in backends::lockouts().await {
        let now = ManualClock::new().now();
        let gates = join_all((0..20).map(|_| {
            let store = store.clone();
            async move {
                store
                    .begin_attempt(&LockKey::subject("email:p@example.com"), POLICY, now)
                    .await
                    .unwrap()
            }
        }))
        .await;
        let proceeded = gates.iter().filter(|g| matches!(g, AttemptGate::Proceed { .. })).count();
        assert_eq!(proceeded, 3, "{name}: {gates:?}");
        let locking = gates.iter().filter(|g| **g == AttemptGate::Proceed { locks: true }).count();
        assert_eq!(locking, 1, "{name}: one attempt engaged the lock");
    }
}

#[tokio::test]
async fn failures_outside_the_window_start_a_new_count() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        store.begin_attempt(&LockKey::subject("k"), POLICY, clock.now()).await.unwrap();
        store.begin_attempt(&LockKey::subject("k"), POLICY, clock.now()).await.unwrap();
        clock.advance(Duration::from_secs(61));
        let gate = store.begin_attempt(&LockKey::subject("k"), POLICY, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}: the window passed");
        let gate = store.begin_attempt(&LockKey::subject("k"), POLICY, clock.now()).await.unwrap();
        assert_eq!(gate, AttemptGate::Proceed { locks: false }, "{name}: two in this window");
    }
}

#[tokio::test]
async fn purging_lockouts_keeps_running_locks() {
    for (name, store, _owner) in backends::lockouts().await {
        let clock = ManualClock::new();
        for _ in 0..3 {
            store
                .begin_attempt(&LockKey::subject("email:a@example.com"), POLICY, clock.now())
                .await
                .unwrap();
        }
        store
            .begin_attempt(&LockKey::subject("email:b@example.com"), POLICY, clock.now())
            .await
            .unwrap();
        clock.advance(Duration::from_secs(120));
        store.purge_lockouts(clock.now(), POLICY).await.unwrap();
        let locked =
            store.locked_for(&LockKey::subject("email:a@example.com"), clock.now()).await.unwrap();
        assert!(locked.is_some(), "{name}");
    }
}

#[tokio::test]
async fn clearing_a_group_lifts_every_device_lock_of_a_user_and_no_other() {
    for (name, store, _owner) in backends::lockouts().await {
        let now = ManualClock::new().now();
        let policy = LockoutPolicy { threshold: 1, ..POLICY };
        let keys = [
            LockKey::member("device:u1", "a"),
            LockKey::member("device:u1", "b"),
            LockKey::member("device:u10", "c"),
            LockKey::member("device:u1*", "d"),
            LockKey::subject("device:u1"),
        ];
        for key in &keys {
            store.begin_attempt(key, policy, now).await.unwrap();
        }
        assert_eq!(store.clear_group("device:u1").await.unwrap(), 3, "{name}");
        for key in &keys[..2] {
            assert_eq!(store.locked_for(key, now).await.unwrap(), None, "{name}: {key:?}");
        }
        assert!(store.locked_for(&keys[2], now).await.unwrap().is_some(), "{name}");
        assert!(store.locked_for(&keys[3], now).await.unwrap().is_some(), "{name}");
        assert_eq!(store.clear_group("device:u1*").await.unwrap(), 1, "{name}: globs are literal");
        assert_eq!(store.clear_group("device:u1").await.unwrap(), 0, "{name}: nothing left");
        let again = store.begin_attempt(&keys[0], policy, now).await.unwrap();
        assert_eq!(again, AttemptGate::Proceed { locks: true }, "{name}: counted afresh");
    }
}

// ---- The Redis key layout -------------------------------------------------------------------

/// A plain connection to every Redis server that holds keys of `name`'s store: the server, or
/// each master of the cluster.
async fn redis_nodes(name: &str) -> Vec<redis::aio::MultiplexedConnection> {
    let urls = match name {
        "redis-cluster" => common::cluster_nodes(&common::redis_cluster_url().unwrap()),
        _ => vec![common::redis_url()],
    };
    let mut nodes = Vec::new();
    for url in urls {
        let client = redis::Client::open(url).unwrap();
        nodes.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    nodes
}

#[tokio::test]
async fn on_redis_every_key_carries_the_prefix_and_users_spread_over_the_masters() {
    for (name, store, owner) in backends::redis_stores().await {
        let store = Arc::new(store);
        let clock = ManualClock::new();
        for i in 0..30 {
            let user = UserId::new();
            new_session(store.as_ref(), &clock, user, &random_token(), DAY).await;
            let key = LockKey::member(format!("device:{user}"), "phone");
            LockoutStore::begin_attempt(store.as_ref(), &key, POLICY, clock.now()).await.unwrap();
            let budget = format!("ip:192.0.2.{i}");
            store.take(&budget, TEN_PER_MINUTE, clock.now()).await.unwrap();
        }
        let prefix = owner_prefix(&owner);
        let mut per_node = Vec::new();
        for mut node in redis_nodes(name).await {
            per_node.push(common::redis_keys(&mut node, &prefix).await.len());
        }
        // 30 sessions and refresh tokens, 30 counters and member lists, 30 budgets.
        assert_eq!(per_node.iter().sum::<usize>(), 150, "{name}: {per_node:?}");
        assert!(per_node.iter().all(|n| *n > 0), "{name}: every master holds some: {per_node:?}");
    }
}

#[tokio::test]
async fn on_redis_expired_sessions_leave_the_users_hash() {
    for (name, store, owner) in backends::redis_stores().await {
        let clock = ManualClock::new();
        let user = UserId::new();
        for _ in 0..5 {
            new_session(&store, &clock, user, &random_token(), Duration::from_secs(60)).await;
        }
        clock.advance(Duration::from_secs(61));
        new_session(&store, &clock, user, &random_token(), DAY).await;
        let key = format!("{}{{{user}}}:sessions", owner_prefix(&owner));
        let mut held = 0;
        // The master that holds the key answers; the others redirect (MOVED).
        for mut node in redis_nodes(name).await {
            if let Ok(len) = redis::cmd("HLEN").arg(&key).query_async::<i64>(&mut node).await {
                held = len;
            }
        }
        assert_eq!(held, 1, "{name}: only the live session is left");
    }
}

fn owner_prefix(owner: &common::StorageOwner) -> String {
    owner.redis_prefix().unwrap().to_owned()
}

// ---- MailStore ------------------------------------------------------------------------------

fn mail(clock: &ManualClock, text: &str) -> QueuedMail {
    QueuedMail {
        id: uuid::Uuid::now_v7().to_string(),
        created_at: clock.now(),
        attempts: 0,
        message: text.as_bytes().to_vec(),
    }
}

fn mail_token(user: UserId, purpose: TokenPurpose, clock: &ManualClock) -> NewEmailToken {
    NewEmailToken {
        hash: random_token(),
        user,
        purpose,
        address: Email::parse(&format!("{user}@example.com")).unwrap(),
        created_at: clock.now(),
        expires_at: at(clock, Duration::from_secs(60)),
        epoch: 0,
    }
}

#[tokio::test]
async fn a_mail_token_works_only_while_the_account_is_at_its_credential_epoch() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        let early = mail_token(user, TokenPurpose::ChangeEmail, &clock);
        let reset = mail_token(user, TokenPurpose::Reset, &clock);
        store.issue_token(&early, false, &mail(&clock, "change")).await.unwrap();
        store.issue_token(&reset, false, &mail(&clock, "reset")).await.unwrap();
        store.bump_credential_epoch(user).await.unwrap();
        let now = clock.now();
        for (token, purpose) in [(&early, TokenPurpose::ChangeEmail), (&reset, TokenPurpose::Reset)]
        {
            assert_eq!(store.peek_token(&token.hash, purpose, now).await.unwrap(), None, "{name}");
            assert_eq!(store.spend_token(&token.hash, purpose, now).await.unwrap(), None, "{name}");
        }
        let record = store.user_by_id(user).await.unwrap().unwrap();
        assert_eq!(record.credential_epoch, 1, "{name}");
        // A token issued at the new epoch works.
        let late = NewEmailToken { epoch: 1, ..mail_token(user, TokenPurpose::Reset, &clock) };
        store.issue_token(&late, false, &mail(&clock, "late")).await.unwrap();
        let spent = store.spend_token(&late.hash, TokenPurpose::Reset, now).await.unwrap();
        assert_eq!(spent.map(|t| t.user), Some(user), "{name}");
    }
}

#[tokio::test]
async fn a_mail_token_is_spent_once_for_its_purpose_only_and_expires() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        let token = mail_token(user, TokenPurpose::Reset, &clock);
        store.issue_token(&token, false, &mail(&clock, "reset")).await.unwrap();
        let now = clock.now();
        let wrong = store.spend_token(&token.hash, TokenPurpose::Verify, now).await.unwrap();
        assert_eq!(wrong, None, "{name}: another purpose spends nothing");
        let peeked = store.peek_token(&token.hash, TokenPurpose::Reset, now).await.unwrap();
        assert_eq!(peeked.map(|t| t.user), Some(user), "{name}");
        let spends =
            join_all((0..8).map(|_| store.spend_token(&token.hash, TokenPurpose::Reset, now)));
        let won = spends.await.into_iter().filter(|s| matches!(s, Ok(Some(_)))).count();
        assert_eq!(won, 1, "{name}: of concurrent spends exactly one wins");

        let late = mail_token(user, TokenPurpose::Verify, &clock);
        store.issue_token(&late, false, &mail(&clock, "verify")).await.unwrap();
        clock.advance(Duration::from_secs(60));
        let expired = store.spend_token(&late.hash, TokenPurpose::Verify, clock.now()).await;
        assert_eq!(expired.unwrap(), None, "{name}: expired");
        clock.advance(DAY * 2);
        assert!(store.purge_tokens(clock.now(), DAY).await.unwrap() >= 2, "{name}: purged");
    }
}

#[tokio::test]
async fn a_new_token_can_void_the_older_ones_of_its_purpose() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        let (first, verify) = (
            mail_token(user, TokenPurpose::Reset, &clock),
            mail_token(user, TokenPurpose::Verify, &clock),
        );
        store.issue_token(&first, false, &mail(&clock, "1")).await.unwrap();
        store.issue_token(&verify, false, &mail(&clock, "v")).await.unwrap();
        let second = mail_token(user, TokenPurpose::Reset, &clock);
        store.issue_token(&second, true, &mail(&clock, "2")).await.unwrap();
        let now = clock.now();
        assert_eq!(store.peek_token(&first.hash, TokenPurpose::Reset, now).await.unwrap(), None);
        assert!(store.peek_token(&second.hash, TokenPurpose::Reset, now).await.unwrap().is_some());
        let other = store.peek_token(&verify.hash, TokenPurpose::Verify, now).await.unwrap();
        assert!(other.is_some(), "{name}: other purposes keep their tokens");
        assert_eq!(store.void_tokens(user, TokenPurpose::Reset, now).await.unwrap(), 1, "{name}");
        assert_eq!(store.peek_token(&second.hash, TokenPurpose::Reset, now).await.unwrap(), None);
    }
}

#[tokio::test]
async fn concurrent_senders_claim_each_message_once_until_its_lease_ends() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        for i in 0..20 {
            store.queue_mail(&mail(&clock, &format!("m{i}"))).await.unwrap();
        }
        let now = clock.now();
        let lease = Duration::from_secs(60);
        // Concurrent claims may each get fewer than they ask for, never a message twice.
        let claims = join_all((0..4).map(|_| store.claim_mail(now, lease, 8))).await;
        let mut ids: Vec<String> =
            claims.into_iter().flat_map(|c| c.unwrap()).map(|m| m.id).collect();
        loop {
            let more = store.claim_mail(now, lease, 8).await.unwrap();
            if more.is_empty() {
                break;
            }
            ids.extend(more.into_iter().map(|m| m.id));
        }
        let claimed = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!((claimed, ids.len()), (20, 20), "{name}: every message claimed, once");
        assert!(store.claim_mail(now, lease, 50).await.unwrap().is_empty(), "{name}: leased");

        store.defer_mail(&ids[0], at(&clock, Duration::from_secs(5))).await.unwrap();
        store.remove_mail(&ids[1]).await.unwrap();
        clock.advance(Duration::from_secs(5));
        let again = store.claim_mail(clock.now(), lease, 50).await.unwrap();
        assert_eq!(again.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![ids[0].as_str()]);
        assert_eq!(again[0].attempts, 2, "{name}: each claim counts a try");
        clock.advance(lease);
        let state = store.outbox_state().await.unwrap();
        assert_eq!(state.waiting, 19, "{name}");
        assert_eq!(store.claim_mail(clock.now(), lease, 50).await.unwrap().len(), 19, "{name}");
    }
}

// ---- KeyStore -------------------------------------------------------------------------------

#[tokio::test]
async fn instances_starting_together_agree_on_one_first_key_of_each_algorithm_and_one_secret() {
    for (name, store, _owner) in backends::sql().await {
        let now = ManualClock::new().now();
        join_all((0..16u8).map(|i| {
            let store = store.clone();
            let alg = if i % 2 == 0 { SignatureAlg::EdDsa } else { SignatureAlg::Rs256 };
            async move {
                let key = SigningKeyRecord {
                    kid: format!("kid-{i}"),
                    alg,
                    private_key: vec![i; 32],
                    created_at: now,
                    signs_at: now,
                };
                store.insert_first_signing_key(&key).await.unwrap();
            }
        }))
        .await;
        let keys = store.signing_keys().await.unwrap();
        assert_eq!(keys.len(), 2, "{name}: one of each algorithm");
        for alg in SignatureAlg::ALL {
            let first = keys.iter().find(|k| k.alg == alg).unwrap();
            let i = first.kid[4..].parse::<u8>().unwrap();
            assert_eq!(first.private_key, vec![i; 32], "{name}");
            assert_eq!(i % 2 == 0, alg == SignatureAlg::EdDsa, "{name}: stored with its algorithm");
        }

        let secrets = join_all((0..8u8).map(|i| {
            let store = store.clone();
            async move { store.secret("successor key", &[i; 32]).await.unwrap() }
        }))
        .await;
        assert!(secrets.iter().all(|s| s == &secrets[0]), "{name}: {secrets:?}");
        assert_eq!(store.secret("successor key", &[99; 32]).await.unwrap(), secrets[0], "{name}");

        let later = SigningKeyRecord {
            kid: "kid-later".into(),
            alg: SignatureAlg::Rs256,
            private_key: vec![7; 32],
            created_at: now + chrono::Duration::seconds(1),
            signs_at: now + chrono::Duration::seconds(1),
        };
        store.insert_signing_key(&later).await.unwrap();
        let keys = store.signing_keys().await.unwrap();
        assert_eq!(keys.iter().map(|k| k.kid.as_str()).next(), Some("kid-later"), "{name}");
        assert_eq!(keys[0].alg, SignatureAlg::Rs256, "{name}");
        assert_eq!(keys.len(), 3, "{name}");
    }
}

// ---- TicketStore ----------------------------------------------------------------------------

#[tokio::test]
async fn of_many_concurrent_takes_of_one_ticket_exactly_one_is_first() {
    for (name, store, _owner) in backends::tickets().await {
        let clock = ManualClock::new();
        let key = random_token();
        let keep_until = at(&clock, Duration::from_secs(120));
        let now = clock.now();
        store.put_ticket(TicketKind::Code, &key, b"the grant", keep_until, now).await.unwrap();
        let takes = join_all((0..16).map(|_| {
            let (store, key, now) = (store.clone(), TokenHash(key.0), clock.now());
            async move { store.take_ticket(TicketKind::Code, &key, now).await.unwrap() }
        }))
        .await;
        let first = takes.iter().filter(|t| matches!(t, Taken::First(_))).count();
        let again = takes.iter().filter(|t| matches!(t, Taken::Again(_))).count();
        assert_eq!((first, again), (1, 15), "{name}: {takes:?}");
        assert!(takes.iter().all(|t| match t {
            Taken::First(v) | Taken::Again(v) => v == b"the grant",
            Taken::Missing => false,
        }));
        // A replay later on is still known as one, with what the first take got.
        let replay = store.take_ticket(TicketKind::Code, &key, clock.now()).await.unwrap();
        assert_eq!(replay, Taken::Again(b"the grant".to_vec()), "{name}");
    }
}

#[tokio::test]
async fn a_ticket_is_kept_until_its_time_under_its_kind_and_never_stored_twice() {
    for (name, store, _owner) in backends::tickets().await {
        let clock = ManualClock::new();
        let key = random_token();
        let keep_until = at(&clock, Duration::from_secs(60));
        let now = clock.now();
        let put = |value: &'static [u8], keep_until, now| {
            store.put_ticket(TicketKind::PushedRequest, &key, value, keep_until, now)
        };
        put(b"request", keep_until, now).await.unwrap();
        let twice = put(b"other", keep_until, now).await;
        assert!(matches!(twice, Err(StoreError::Conflict)), "{name}: {twice:?}");
        for kind in [TicketKind::Code, TicketKind::Interaction] {
            let other = store.take_ticket(kind, &key, clock.now()).await.unwrap();
            assert_eq!(other, Taken::Missing, "{name}: kinds do not mix");
        }
        let stranger = random_token();
        let unknown = store.take_ticket(TicketKind::PushedRequest, &stranger, clock.now());
        assert_eq!(unknown.await.unwrap(), Taken::Missing, "{name}");

        clock.advance(Duration::from_secs(60));
        let late = store.take_ticket(TicketKind::PushedRequest, &key, clock.now()).await.unwrap();
        assert_eq!(late, Taken::Missing, "{name}: past its time");
        store.purge_tickets(clock.now()).await.unwrap();
        // Forgotten: the same key may be stored again.
        put(b"new", at(&clock, Duration::from_secs(60)), clock.now()).await.unwrap();
        let taken = store.take_ticket(TicketKind::PushedRequest, &key, clock.now()).await.unwrap();
        assert_eq!(taken, Taken::First(b"new".to_vec()), "{name}");
    }
}

#[tokio::test]
async fn a_ticket_reads_while_kept_and_untaken_and_a_read_takes_nothing() {
    for (name, store, _owner) in backends::tickets().await {
        let clock = ManualClock::new();
        let key = random_token();
        let kind = TicketKind::Browser;
        store
            .put_ticket(kind, &key, b"signed in", at(&clock, Duration::from_secs(60)), clock.now())
            .await
            .unwrap();
        for _ in 0..2 {
            let read = store.read_ticket(kind, &key, clock.now()).await.unwrap();
            assert_eq!(read.as_deref(), Some(&b"signed in"[..]), "{name}");
        }
        let other = store.read_ticket(TicketKind::Code, &key, clock.now()).await.unwrap();
        assert_eq!(other, None, "{name}: kinds do not mix");
        clock.advance(Duration::from_secs(59));
        assert!(store.read_ticket(kind, &key, clock.now()).await.unwrap().is_some(), "{name}");
        let taken = store.take_ticket(kind, &key, clock.now()).await.unwrap();
        assert_eq!(taken, Taken::First(b"signed in".to_vec()), "{name}: reads took nothing");
        assert_eq!(store.read_ticket(kind, &key, clock.now()).await.unwrap(), None, "{name}");

        let late = random_token();
        store
            .put_ticket(kind, &late, b"x", at(&clock, Duration::from_secs(1)), clock.now())
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.read_ticket(kind, &late, clock.now()).await.unwrap(), None, "{name}");
    }
}

// ---- GrantStore -----------------------------------------------------------------------------

#[tokio::test]
async fn a_grant_merges_its_scopes_keeps_its_first_time_and_is_forgotten_once() {
    for (name, store, users, _owner) in backends::grants().await {
        let clock = ManualClock::new();
        let (ada, bob) =
            (new_user(users.as_ref(), &clock).await, new_user(users.as_ref(), &clock).await);
        let scopes = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(store.grant(ada, "wiki").await.unwrap(), None, "{name}");
        let first = clock.now();
        store.put_grant(ada, "wiki", &scopes(&["openid", "email"]), first).await.unwrap();
        clock.advance(Duration::from_secs(60));
        store.put_grant(ada, "wiki", &scopes(&["email", "profile"]), clock.now()).await.unwrap();
        store.put_grant(ada, "grafana", &scopes(&["openid"]), clock.now()).await.unwrap();
        store.put_grant(bob, "wiki", &scopes(&["openid"]), clock.now()).await.unwrap();
        let grant = store.grant(ada, "wiki").await.unwrap().unwrap();
        assert_eq!(grant.scopes, scopes(&["openid", "email", "profile"]), "{name}");
        assert_eq!(grant.created_at.timestamp_millis(), first.timestamp_millis(), "{name}");
        assert_eq!(grant.last_used_at.timestamp_millis(), clock.now().timestamp_millis(), "{name}");
        clock.advance(Duration::from_secs(60));
        store.use_grant(ada, "wiki", clock.now()).await.unwrap();
        let used = store.grant(ada, "wiki").await.unwrap().unwrap();
        assert_eq!(used.last_used_at.timestamp_millis(), clock.now().timestamp_millis(), "{name}");
        let listed: Vec<String> =
            store.grants_of(ada).await.unwrap().into_iter().map(|g| g.client_id).collect();
        assert_eq!(listed, ["wiki", "grafana"], "{name}: oldest first, only ada's");
        assert!(store.delete_grant(ada, "wiki").await.unwrap(), "{name}");
        assert!(!store.delete_grant(ada, "wiki").await.unwrap(), "{name}: once");
        assert_eq!(store.grant(ada, "wiki").await.unwrap(), None, "{name}");
        assert!(store.grant(bob, "wiki").await.unwrap().is_some(), "{name}: bob's stays");
        store.delete_grants_of(ada).await.unwrap();
        assert!(store.grants_of(ada).await.unwrap().is_empty(), "{name}: ada's all go");
        assert!(store.grant(bob, "wiki").await.unwrap().is_some(), "{name}: bob's stays still");
    }
}

// ---- AuditStore -----------------------------------------------------------------------------

/// Batches of every size the store splits into statements (1, 4, 16, 64 rows and their sums),
/// appended at once from several tasks: each batch is consecutive links in its own order, and
/// the chain as a whole is valid.
#[tokio::test]
async fn batches_append_as_consecutive_links() {
    for (name, store, _owner) in backends::sql().await {
        let clock = Arc::new(ManualClock::new());
        let sizes = [1usize, 7, 22, 85];
        let users: Vec<UserId> = sizes.iter().map(|_| UserId::new()).collect();
        join_all(sizes.iter().zip(&users).map(|(&size, &user)| {
            let store = store.clone();
            let clock = clock.clone();
            async move {
                let context = RequestContext::default();
                let events: Vec<AuditEvent> = (0..size)
                    .map(|i| {
                        AuditEvent::new(
                            EventType::TokenRefresh,
                            Outcome::Success,
                            &context,
                            clock.now(),
                        )
                        .user(user)
                        .detail(format!("{i}"))
                    })
                    .collect();
                store.append(&events).await.unwrap();
            }
        }))
        .await;
        store.append(&[]).await.unwrap();
        let audit = Audit::new(store.clone(), Arc::new(Metrics::new().unwrap()));
        let report = audit.verify(clock.now()).await.unwrap();
        assert_eq!(report.problems, Vec::<String>::new(), "{name}");
        assert_eq!((report.events, report.head_seq), (115, 115), "{name}");
        for (&size, &user) in sizes.iter().zip(&users) {
            let filter = portcullis::domain::audit::AuditFilter {
                user: Some(user),
                limit: 100,
                ..Default::default()
            };
            let mut found = store.query(&filter).await.unwrap();
            found.reverse();
            assert_eq!(found.len(), size, "{name}");
            let first = found[0].0;
            for (i, (seq, event)) in found.iter().enumerate() {
                assert_eq!(*seq, first + i as i64, "{name}: a batch is consecutive");
                assert_eq!(event.detail.as_deref(), Some(i.to_string().as_str()), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn appends_from_many_tasks_form_one_valid_chain() {
    for (name, store, _owner) in backends::sql().await {
        let clock = Arc::new(ManualClock::new());
        let user = UserId::new();
        join_all((0..40).map(|i| {
            let store = store.clone();
            let clock = clock.clone();
            async move {
                let context = RequestContext {
                    ip: Some("192.0.2.7".parse().unwrap()),
                    user_agent: Some(format!("agent {i}")),
                    request_id: Some(format!("req-{i}")),
                    from_page: false,
                };
                let kind = if i % 2 == 0 { EventType::Login } else { EventType::LoginFailed };
                let event = AuditEvent::new(kind, Outcome::Success, &context, clock.now())
                    .user(user)
                    .detail(format!("event {i}"));
                store.append(std::slice::from_ref(&event)).await.unwrap();
            }
        }))
        .await;
        let audit = Audit::new(store.clone(), Arc::new(Metrics::new().unwrap()));
        let report = audit.verify(clock.now()).await.unwrap();
        assert_eq!(report.problems, Vec::<String>::new(), "{name}");
        assert_eq!((report.events, report.head_seq), (40, 40), "{name}");

        let filter = portcullis::domain::audit::AuditFilter {
            user: Some(user),
            kind: Some(EventType::LoginFailed),
            limit: 100,
            ..Default::default()
        };
        let found = store.query(&filter).await.unwrap();
        assert_eq!(found.len(), 20, "{name}");
        assert!(found.windows(2).all(|w| w[0].0 > w[1].0), "{name}: newest first");
        let before = portcullis::domain::audit::AuditFilter { before: Some(found[9].0), ..filter };
        assert_eq!(store.query(&before).await.unwrap().len(), 10, "{name}");
        assert_eq!(store.unchained().await.unwrap(), 0, "{name}");
    }
}

/// A stand-in head signature (the store does not check signatures), linked to `previous`.
fn head_signature(seq: i64, byte: u8, previous: &[u8], at: Timestamp) -> HeadSignature {
    HeadSignature {
        seq,
        hash: vec![byte; 32],
        signature: vec![byte; 32],
        signed_at: at,
        previous: Some(previous.to_vec()),
    }
}

#[tokio::test]
async fn a_head_signature_follows_only_the_newest_and_a_heartbeat_takes_its_place() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let genesis = [0; 32];
        let first = head_signature(10, 1, &genesis, clock.now());
        assert!(store.add_head_signature(&first, None).await.unwrap(), "{name}: the first");
        let second = head_signature(20, 2, &first.signature, clock.now());
        assert!(!store.add_head_signature(&second, None).await.unwrap(), "{name}: not the newest");
        assert!(store.add_head_signature(&second, Some(&first.signature)).await.unwrap(), "{name}");
        let older = head_signature(15, 5, &first.signature, clock.now());
        let refused = store.add_head_signature(&older, Some(&second.signature)).await.unwrap();
        assert!(!refused, "{name}: an older position");

        clock.advance(Duration::from_secs(60));
        let heartbeat = head_signature(20, 4, &first.signature, clock.now());
        assert!(store.add_head_signature(&heartbeat, Some(&second.signature)).await.unwrap());
        let stale = head_signature(30, 3, &second.signature, clock.now());
        let refused = store.add_head_signature(&stale, Some(&second.signature)).await.unwrap();
        assert!(!refused, "{name}: a link to a signature a heartbeat replaced");
        assert_eq!(store.newest_head_signature().await.unwrap(), Some(heartbeat.clone()), "{name}");
        let all = store.head_signatures(-1, 10).await.unwrap();
        assert_eq!(all, vec![first.clone(), heartbeat.clone()], "{name}: one per position");
        assert_eq!(store.head_signatures(10, 10).await.unwrap(), vec![heartbeat], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_signers_racing_keep_one_chain() {
    for (name, store, _owner) in backends::sql().await {
        let clock = Arc::new(ManualClock::new());
        join_all((0..16u8).map(|i| {
            let store = store.clone();
            let clock = clock.clone();
            async move {
                // Each signer retries a few times, as `Audit::sign_head` does.
                for _ in 0..3 {
                    let newest = store.newest_head_signature().await.unwrap();
                    let seq = newest.as_ref().map_or(0, |n| n.seq) + 1;
                    let previous = newest.as_ref().map_or(vec![0; 32], |n| n.signature.clone());
                    let signed = head_signature(seq, i + 1, &previous, clock.now());
                    let seen = newest.as_ref().map(|n| &n.signature[..]);
                    if store.add_head_signature(&signed, seen).await.unwrap() {
                        return;
                    }
                }
            }
        }))
        .await;
        let all = store.head_signatures(-1, 100).await.unwrap();
        assert!(!all.is_empty(), "{name}");
        let mut previous = vec![0; 32];
        for signature in &all {
            assert_eq!(signature.previous.as_ref(), Some(&previous), "{name}: one chain");
            previous = signature.signature.clone();
        }
    }
}

// ---- Schema ---------------------------------------------------------------------------------

#[tokio::test]
async fn both_migration_folders_give_the_same_tables_and_columns() {
    let mut schemas = Vec::new();
    for (name, store, _owner) in backends::sql().await {
        schemas.push((name, store.columns().await.unwrap()));
    }
    let (first, columns) = &schemas[0];
    assert!(columns.len() > 30, "{first}: {columns:?}");
    for (name, other) in &schemas[1..] {
        assert_eq!(other, columns, "{name} differs from {first}");
    }
}

// ---- MfaStore --------------------------------------------------------------------------------

fn passkey(user: UserId, credential_id: &[u8], clock: &ManualClock) -> PasskeyRecord {
    PasskeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        user,
        credential_id: credential_id.to_vec(),
        name: "laptop".into(),
        credential: "{}".into(),
        sign_count: 0,
        created_at: clock.now(),
        last_used_at: None,
    }
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_only_after_confirmation() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        assert!(store.start_totp(user, b"sealed-1", clock.now()).await.unwrap(), "{name}");
        assert!(store.start_totp(user, b"sealed-2", clock.now()).await.unwrap(), "{name}: again");
        let pending = store.totp(user).await.unwrap().unwrap();
        assert_eq!((pending.secret.as_slice(), pending.confirmed), (&b"sealed-2"[..], false));
        assert!(!store.accept_totp_step(user, 10).await.unwrap(), "{name}: not confirmed yet");
        let found = store.user_by_id(user).await.unwrap().unwrap();
        assert!(!found.factors.totp, "{name}: a pending enrolment is no factor");
        let codes = [random_token(), random_token()];
        assert!(store.confirm_totp(user, 10, &codes, clock.now()).await.unwrap(), "{name}");
        assert!(!store.confirm_totp(user, 11, &codes, clock.now()).await.unwrap(), "{name}");
        assert!(!store.start_totp(user, b"sealed-3", clock.now()).await.unwrap(), "{name}");
        assert!(store.user_by_id(user).await.unwrap().unwrap().factors.totp, "{name}");
        assert!(!store.accept_totp_step(user, 10).await.unwrap(), "{name}: the confirm step");
        assert!(!store.accept_totp_step(user, 9).await.unwrap(), "{name}: an earlier step");
        let accepts = join_all((0..8).map(|_| store.accept_totp_step(user, 11))).await;
        let won = accepts.into_iter().filter(|a| matches!(a, Ok(true))).count();
        assert_eq!(won, 1, "{name}: of concurrent uses of one step exactly one wins");
        assert!(store.remove_totp(user).await.unwrap(), "{name}");
        assert!(store.totp(user).await.unwrap().is_none(), "{name}");
        let code = store.use_recovery_code(user, &codes[0], clock.now()).await.unwrap();
        assert!(!code, "{name}: the recovery codes went with it");
        assert!(!store.remove_totp(user).await.unwrap(), "{name}: nothing left");
    }
}

#[tokio::test]
async fn a_recovery_code_is_used_once_and_replaced_codes_stop_working() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let (user, other) =
            (new_user(store.as_ref(), &clock).await, new_user(store.as_ref(), &clock).await);
        let codes = [random_token(), random_token()];
        store.start_totp(user, b"s", clock.now()).await.unwrap();
        store.confirm_totp(user, 1, &codes, clock.now()).await.unwrap();
        let now = clock.now();
        assert!(!store.use_recovery_code(other, &codes[0], now).await.unwrap(), "{name}: not hers");
        let uses = join_all((0..8).map(|_| store.use_recovery_code(user, &codes[0], now))).await;
        let won = uses.into_iter().filter(|u| matches!(u, Ok(true))).count();
        assert_eq!(won, 1, "{name}: of concurrent uses exactly one wins");
        let fresh = [random_token()];
        store.replace_recovery_codes(user, &fresh).await.unwrap();
        assert!(!store.use_recovery_code(user, &codes[1], now).await.unwrap(), "{name}: void");
        assert!(store.use_recovery_code(user, &fresh[0], now).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn a_passkey_belongs_to_one_user_and_its_counter_only_grows() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let (user, other) =
            (new_user(store.as_ref(), &clock).await, new_user(store.as_ref(), &clock).await);
        let key = passkey(user, b"credential-1", &clock);
        store.add_passkey(&key).await.unwrap();
        let taken = store.add_passkey(&passkey(other, b"credential-1", &clock)).await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{name}: one credential, one owner");
        let found = store.passkey_by_credential(b"credential-1").await.unwrap().unwrap();
        assert_eq!((found.user, found.name.as_str()), (user, "laptop"), "{name}");
        assert!(store.user_by_id(user).await.unwrap().unwrap().factors.passkeys, "{name}");
        assert!(store.passkeys_of(other).await.unwrap().is_empty(), "{name}");

        let now = clock.now();
        assert!(store.record_passkey_use(&key.id, "{}", 0, now).await.unwrap(), "{name}: 0, 0");
        assert!(store.record_passkey_use(&key.id, "{}", 5, now).await.unwrap(), "{name}");
        assert!(!store.record_passkey_use(&key.id, "{}", 5, now).await.unwrap(), "{name}: same");
        assert!(!store.record_passkey_use(&key.id, "{}", 4, now).await.unwrap(), "{name}: lower");
        assert!(!store.record_passkey_use(&key.id, "{}", 0, now).await.unwrap(), "{name}: to 0");
        let uses = join_all((0..8).map(|_| store.record_passkey_use(&key.id, "{}", 9, now))).await;
        let won = uses.into_iter().filter(|u| matches!(u, Ok(true))).count();
        assert_eq!(won, 1, "{name}: one counter value, one winner");
        let used = store.passkeys_of(user).await.unwrap();
        assert_eq!((used[0].sign_count, used[0].last_used_at), (9, Some(now)), "{name}");

        assert!(!store.remove_passkey(other, &key.id).await.unwrap(), "{name}: not hers");
        store.add_passkey(&passkey(user, b"credential-2", &clock)).await.unwrap();
        store.start_totp(user, b"s", clock.now()).await.unwrap();
        store.confirm_totp(user, 1, &[random_token()], clock.now()).await.unwrap();
        assert!(store.remove_passkey(user, &key.id).await.unwrap(), "{name}");
        assert_eq!(store.remove_factors(user).await.unwrap(), 2, "{name}: a passkey and TOTP");
        let factors = store.user_by_id(user).await.unwrap().unwrap().factors;
        assert!(!factors.totp && !factors.passkeys, "{name}: {factors:?}");
    }
}

#[tokio::test]
async fn a_challenge_is_taken_once_for_its_purpose_only_and_expires() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let user = new_user(store.as_ref(), &clock).await;
        let (id, late) = (random_token(), random_token());
        let record = ChallengeRecord { user: Some(user), state: b"state".to_vec() };
        let purpose = ChallengePurpose::MfaLogin;
        store
            .put_challenge(&id, purpose, &record, at(&clock, Duration::from_secs(300)))
            .await
            .unwrap();
        store
            .put_challenge(&late, purpose, &record, at(&clock, Duration::from_secs(1)))
            .await
            .unwrap();
        let now = clock.now();
        let other = store.take_challenge(&id, ChallengePurpose::PasskeyLogin, now).await.unwrap();
        assert!(other.is_none(), "{name}: another purpose takes nothing");
        let peeked = store.peek_challenge(&id, purpose, now).await.unwrap().unwrap();
        assert_eq!((peeked.user, peeked.state.as_slice()), (Some(user), &b"state"[..]), "{name}");
        let takes = join_all((0..8).map(|_| store.take_challenge(&id, purpose, now))).await;
        let won = takes.into_iter().filter(|t| matches!(t, Ok(Some(_)))).count();
        assert_eq!(won, 1, "{name}: of concurrent takes exactly one wins");
        assert!(store.peek_challenge(&id, purpose, now).await.unwrap().is_none(), "{name}");
        clock.advance(Duration::from_secs(1));
        assert!(store.take_challenge(&late, purpose, clock.now()).await.unwrap().is_none());
        assert_eq!(store.purge_challenges(clock.now()).await.unwrap(), 1, "{name}: purged");
        let later = random_token();
        store.put_challenge(&later, purpose, &record, at(&clock, DAY)).await.unwrap();
        assert_eq!(store.drop_challenges(user).await.unwrap(), 1, "{name}: the user's dropped");
        assert!(store.peek_challenge(&later, purpose, clock.now()).await.unwrap().is_none());
    }
}

// ---- ClientStore ------------------------------------------------------------------------------

fn client(id: &str, clock: &ManualClock) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        registration: format!(r#"{{"name":"{id}"}}"#),
        secret_hash: Some(format!("sha256:{id}")),
        previous_secret: None,
        from_file: false,
        created_at: in_millis(clock.now()),
    }
}

#[tokio::test]
async fn a_client_is_stored_whole_changed_and_deleted_once() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let grafana = client("grafana", &clock);
        store.insert_client(&grafana).await.unwrap();
        assert_eq!(store.client("grafana").await.unwrap(), Some(grafana.clone()), "{name}");
        assert!(store.client("GRAFANA").await.unwrap().is_none(), "{name}: ids are exact");
        let taken = store.insert_client(&client("grafana", &clock)).await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{name}: {taken:?}");
        assert!(store.update_client("grafana", r#"{"name":"prod"}"#).await.unwrap(), "{name}");
        let changed = store.client("grafana").await.unwrap().unwrap();
        assert_eq!(changed.registration, r#"{"name":"prod"}"#, "{name}");
        assert_eq!(changed.secret_hash, grafana.secret_hash, "{name}: the secret stays");
        assert!(!store.update_client("nobody", "{}").await.unwrap(), "{name}");
        let deletes = join_all((0..4).map(|_| store.delete_client("grafana"))).await;
        let won = deletes.into_iter().filter(|d| matches!(d, Ok(true))).count();
        assert_eq!(won, 1, "{name}: of concurrent deletions one finds the client");
        assert!(store.client("grafana").await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn a_rotation_keeps_the_previous_secret_only_when_asked() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        store.insert_client(&client("app", &clock)).await.unwrap();
        let until = in_millis(at(&clock, Duration::from_secs(3_600)));
        assert!(store.replace_client_secret("app", "sha256:two", Some(until)).await.unwrap());
        let kept = store.client("app").await.unwrap().unwrap();
        assert_eq!(kept.secret_hash.as_deref(), Some("sha256:two"), "{name}");
        assert_eq!(kept.previous_secret, Some(("sha256:app".to_owned(), until)), "{name}");
        assert!(store.replace_client_secret("app", "sha256:three", None).await.unwrap());
        let dropped = store.client("app").await.unwrap().unwrap();
        assert_eq!(dropped.secret_hash.as_deref(), Some("sha256:three"), "{name}");
        assert_eq!(dropped.previous_secret, None, "{name}: the old ones stop at once");
        assert!(!store.replace_client_secret("nobody", "x", None).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn clients_come_in_pages_newest_first_without_gaps_or_repeats() {
    for (name, store, _owner) in backends::sql().await {
        let clock = ManualClock::new();
        let mut ids = Vec::new();
        for n in 0..7 {
            // Two clients share each instant: the id breaks the tie.
            if n % 2 == 0 {
                clock.advance(Duration::from_secs(1));
            }
            let id = format!("client-{n}");
            store.insert_client(&client(&id, &clock)).await.unwrap();
            ids.push(id);
        }
        let mut seen = Vec::new();
        let mut after: Option<ClientCursor> = None;
        loop {
            let page = store.list_clients(after.as_ref(), 3).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(ClientCursor {
                created_at: last.created_at,
                client_id: last.client_id.clone(),
            });
            seen.extend(page.iter().map(|c| c.client_id.clone()));
        }
        ids.reverse();
        assert_eq!(seen, ids, "{name}");
    }
}
