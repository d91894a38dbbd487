//! Faults under load: while several clients log in, refresh, read `/me` and log out, PostgreSQL
//! or Redis goes away for about a second (a TCP relay in front of it is cut: its connections are
//! dropped and new ones refused) and comes back. Throughout, the service answers only what the
//! contract allows: successes, the expected 401s, and 503 problem details with `Retry-After`;
//! never another 5xx, never a hang. Afterwards it is ready again without a restart, every success
//! a client saw has its event in the audit trail (matched by request id), and every session a
//! client logged out stays dead.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{PASSWORD, Relay, TestApp, TestResult, str_of};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

/// Concurrent clients, each with its own account.
const CLIENTS: usize = 8;
/// How long the clients loop, outage included.
const LOAD_FOR: Duration = Duration::from_secs(5);
/// When the backend goes away, after the load started, and for how long.
const CUT_AFTER: Duration = Duration::from_millis(1500);
const OUTAGE: Duration = Duration::from_secs(1);
/// A bound on each client's requests, whatever the speed of the machine.
const MAX_REQUESTS_PER_CLIENT: usize = 1000;
/// No request may take longer: a backend that is gone is answered, not waited for.
const REQUEST_BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Backend {
    Postgres,
    Redis,
}

/// A client's live session and how far it is in its cycle of operations.
struct Session {
    access: String,
    refresh: String,
    step: usize,
    /// A refresh or logout of this session answered 503: the action may have happened (the
    /// service writes the action, then its event, and fails the request if the event cannot be
    /// written), so a later 401 is an answer the client must accept.
    uncertain: bool,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// (audit event type, request id) of every success that must be in the trail.
    successes: Vec<(&'static str, String)>,
    /// Every session the client logged out with a 2xx: (access token, refresh token).
    revoked: Vec<(String, String)>,
    unavailable: usize,
    ok: usize,
    /// When the last success came, and the longest wait for an answer.
    last_ok: Option<Instant>,
    slowest: Duration,
    /// Answers the contract does not allow here, described.
    unexpected: Vec<String>,
}

/// An answer that passed the generic checks: its status, request id and JSON body (if any).
struct Answer {
    status: StatusCode,
    request_id: String,
    body: Value,
}

impl Seen {
    /// Sends `request` and checks what any answer must satisfy: an answer at all, within the
    /// bound; no 5xx but 503; every 503 a `service_unavailable` problem with `Retry-After`.
    /// Returns `None` (and notes why) for an answer that fails them.
    async fn send(&mut self, what: &str, request: RequestBuilder) -> Option<Answer> {
        let sent = Instant::now();
        let response = match request.timeout(REQUEST_BOUND).send().await {
            Ok(response) => response,
            Err(error) => {
                self.unexpected.push(format!("{what}: no answer: {error}"));
                return None;
            }
        };
        let status = response.status();
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let request_id = header("x-request-id").unwrap_or_default();
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let text = response.text().await.unwrap_or_default();
        self.slowest = self.slowest.max(sent.elapsed());
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            self.unavailable += 1;
            let waits = retry_after.and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1);
            let problem = content_type == "application/problem+json"
                && body["code"] == "service_unavailable"
                && body["status"] == 503
                && body["request_id"] == request_id.as_str();
            if !(waits && problem) {
                self.unexpected
                    .push(format!("{what}: a 503 without Retry-After or problem: {text}"));
                return None;
            }
        } else if status.is_server_error() {
            self.unexpected.push(format!("{what}: {status}: {text}"));
            return None;
        } else if status.is_success() {
            self.ok += 1;
            self.last_ok = Some(Instant::now());
        }
        Some(Answer { status, request_id, body })
    }

    fn unexpected(&mut self, what: &str, answer: &Answer) {
        self.unexpected.push(format!("{what}: {}: {}", answer.status, answer.body));
    }
}

/// One client: until `deadline` (or its request bound), logs in, then cycles `/me`, refresh,
/// `/me`, and a logout raced by a refresh of the same session, then logs in again.
async fn run_client(app_url: String, email: String, deadline: Instant) -> Seen {
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{app_url}{path}");
    let mut seen = Seen::default();
    let mut session: Option<Session> = None;
    let mut requests = 0;
    while Instant::now() < deadline && requests < MAX_REQUESTS_PER_CLIENT {
        requests += 1;
        let Some(mut s) = session.take() else {
            let login = client
                .post(url("/v1/auth/login"))
                .json(&json!({ "email": email, "password": PASSWORD }));
            let Some(answer) = seen.send("login", login).await else { continue };
            match answer.status {
                StatusCode::OK => {
                    seen.successes.push(("login", answer.request_id));
                    session = Some(Session {
                        access: str_of(&answer.body, "access_token").to_owned(),
                        refresh: str_of(&answer.body, "refresh_token").to_owned(),
                        step: 0,
                        uncertain: false,
                    });
                }
                StatusCode::SERVICE_UNAVAILABLE => {}
                _ => seen.unexpected("login", &answer),
            }
            continue;
        };
        s.step += 1;
        match s.step % 4 {
            1 | 3 => {
                let me = client.get(url("/v1/auth/me")).bearer_auth(&s.access);
                let Some(answer) = seen.send("me", me).await else {
                    session = Some(s);
                    continue;
                };
                match answer.status {
                    StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE => session = Some(s),
                    // The session ended in an action whose answer was lost: log in again.
                    StatusCode::UNAUTHORIZED if s.uncertain => {}
                    _ => {
                        seen.unexpected("me", &answer);
                        session = Some(s);
                    }
                }
            }
            2 => {
                let refresh = client
                    .post(url("/v1/auth/refresh"))
                    .json(&json!({ "refresh_token": s.refresh }));
                let Some(answer) = seen.send("refresh", refresh).await else {
                    session = Some(s);
                    continue;
                };
                match answer.status {
                    StatusCode::OK => {
                        seen.successes.push(("token_refresh", answer.request_id));
                        s.access = str_of(&answer.body, "access_token").to_owned();
                        s.refresh = str_of(&answer.body, "refresh_token").to_owned();
                        s.uncertain = false;
                        session = Some(s);
                    }
                    // Retried later with the same token: the reuse grace hands back the same
                    // successor if the rotation happened.
                    StatusCode::SERVICE_UNAVAILABLE => {
                        s.uncertain = true;
                        session = Some(s);
                    }
                    StatusCode::UNAUTHORIZED if s.uncertain => {}
                    _ => {
                        seen.unexpected("refresh", &answer);
                        session = Some(s);
                    }
                }
            }
            _ => session = log_out_racing_a_refresh(&client, &app_url, &mut seen, s).await,
        }
    }
    seen
}

/// Logs `s` out while a refresh of the same session runs: whichever lands first, once the logout
/// succeeded no token of the session may work again. Returns the session if it may live on.
async fn log_out_racing_a_refresh(
    client: &reqwest::Client,
    app_url: &str,
    seen: &mut Seen,
    mut s: Session,
) -> Option<Session> {
    let logout = client.post(format!("{app_url}/v1/auth/logout")).bearer_auth(&s.access);
    let refresh = client
        .post(format!("{app_url}/v1/auth/refresh"))
        .json(&json!({ "refresh_token": s.refresh }));
    let mut other = Seen::default();
    let (logout, refresh) =
        tokio::join!(seen.send("logout", logout), other.send("refresh", refresh));
    seen.unavailable += other.unavailable;
    seen.ok += other.ok;
    seen.last_ok = seen.last_ok.max(other.last_ok);
    seen.slowest = seen.slowest.max(other.slowest);
    seen.unexpected.append(&mut other.unexpected);
    let refreshed = match refresh {
        Some(answer) if answer.status == StatusCode::OK => {
            seen.successes.push(("token_refresh", answer.request_id));
            Some((
                str_of(&answer.body, "access_token").to_owned(),
                str_of(&answer.body, "refresh_token").to_owned(),
            ))
        }
        // A refresh that lost the race to the logout.
        Some(answer)
            if matches!(
                answer.status,
                StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
            ) =>
        {
            None
        }
        Some(answer) => {
            seen.unexpected("refresh racing a logout", &answer);
            None
        }
        None => None,
    };
    let Some(logout) = logout else { return Some(s) };
    match logout.status {
        StatusCode::NO_CONTENT => {
            seen.successes.push(("logout", logout.request_id));
            seen.revoked.push((s.access, s.refresh));
            seen.revoked.extend(refreshed);
            None
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            if let Some((access, refresh)) = refreshed {
                (s.access, s.refresh) = (access, refresh);
            }
            s.uncertain = true;
            Some(s)
        }
        StatusCode::UNAUTHORIZED if s.uncertain => None,
        _ => {
            seen.unexpected("logout", &logout);
            Some(s)
        }
    }
}

/// An app on a fresh PostgreSQL database and Redis prefix, with `backend` behind a relay.
async fn app_behind_relay(backend: Backend) -> (TestApp, Relay) {
    let (mut storage, owner) = common::new_postgres_storage().await;
    match backend {
        Backend::Postgres => {
            let direct = storage.database_url.clone().unwrap();
            let relay = Relay::start(common::address_of(&direct, 5432));
            storage.database_url = Some(common::with_address(&direct, &relay.address.to_string()));
            (common::spawn_owning(storage, owner, &[]).await, relay)
        }
        Backend::Redis => {
            let redis = common::redis_url();
            let relay = Relay::start(common::address_of(&redis, 6379));
            let through = common::with_address(&redis, &relay.address.to_string());
            let vars = [("PORTCULLIS_REDIS_URL", through.as_str())];
            (common::spawn_owning(storage, owner, &vars).await, relay)
        }
    }
}

/// The (type, request id) of every successful event in the trail.
async fn trail(app: &TestApp) -> HashSet<(String, String)> {
    let pool = app.storage.db().await;
    let rows = sqlx::query(
        "SELECT type, request_id FROM audit_events WHERE outcome = 'success' \
         AND request_id IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    rows.iter().map(|row| (row.get("type"), row.get("request_id"))).collect()
}

async fn faults_under_load(backend: Backend) -> TestResult {
    if !common::servers_answer("faults under load", true, true).await {
        return Ok(());
    }
    let (app, mut relay) = app_behind_relay(backend).await;
    let emails: Vec<String> = (0..CLIENTS).map(|i| format!("client{i}@example.com")).collect();
    for email in &emails {
        assert_eq!(app.register(email, PASSWORD).await.status(), StatusCode::CREATED);
    }

    let deadline = Instant::now() + LOAD_FOR;
    let clients: Vec<_> = emails
        .iter()
        .map(|email| tokio::spawn(run_client(app.url(""), email.clone(), deadline)))
        .collect();
    tokio::time::sleep(CUT_AFTER).await;
    relay.cut().await;
    // The cut is real: readiness sees it at once, and says when to come back.
    let ready = app.client.get(app.url("/readyz")).send().await?;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{backend:?} cut");
    assert_eq!(ready.headers()["retry-after"], "1");
    common::assert_problem(ready, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    tokio::time::sleep(OUTAGE).await;
    relay.restore();
    let restored = Instant::now();

    let mut seen = Vec::new();
    for client in clients {
        // A panic in a client task fails the test here.
        seen.push(client.await?);
    }
    let unexpected: Vec<&String> = seen.iter().flat_map(|s| &s.unexpected).collect();
    assert!(unexpected.is_empty(), "{backend:?}: answers outside the contract: {unexpected:#?}");
    let unavailable: usize = seen.iter().map(|s| s.unavailable).sum();
    let ok: usize = seen.iter().map(|s| s.ok).sum();
    let slowest = seen.iter().map(|s| s.slowest).max().unwrap_or_default();
    let back = seen.iter().filter(|s| s.last_ok.is_some_and(|at| at > restored)).count();
    eprintln!(
        "{backend:?}: {ok} successes and {unavailable} 503s under load; slowest answer \
         {slowest:?}; {back} of {CLIENTS} clients succeeded again before the load ended"
    );
    assert!(unavailable > 0, "{backend:?}: the outage was not seen");
    assert!(ok > 0, "{backend:?}: nothing succeeded");

    // Recovered without a restart: ready again, and every client can sign in and read /me.
    assert_eq!(common::wait_until_ready(&app).await, StatusCode::OK, "{backend:?} recovered");
    for email in &emails {
        let pair = app.logged_in(email, PASSWORD).await;
        let me = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
        assert_eq!(me.status(), StatusCode::OK, "{backend:?}: {email} after recovery");
    }

    // No audit event lost for a request that succeeded.
    let trail = trail(&app).await;
    let lost: Vec<_> = seen
        .iter()
        .flat_map(|s| &s.successes)
        .filter(|(kind, request_id)| !trail.contains(&(kind.to_string(), request_id.clone())))
        .collect();
    let successes: usize = seen.iter().map(|s| s.successes.len()).sum();
    assert!(successes > 0);
    assert!(lost.is_empty(), "{backend:?}: successes without their event: {lost:?}");

    // No session resurrected after a revocation.
    let revoked: Vec<&(String, String)> = seen.iter().flat_map(|s| &s.revoked).collect();
    assert!(!revoked.is_empty(), "{backend:?}: no client logged out");
    for (access, refresh) in revoked {
        let me = app.get("/v1/auth/me", access).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "{backend:?}: a logged-out access token");
        let again = app.refresh(refresh).await;
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "{backend:?}: a logged-out refresh");
    }

    // The trail is still one unbroken chain.
    assert_eq!(
        common::run_cli(&app, &["audit", "verify"]).await,
        Some(0),
        "{backend:?}: audit verify"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_loses_no_event_and_resurrects_no_session() -> TestResult {
    faults_under_load(Backend::Redis).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_under_load_loses_no_event_and_resurrects_no_session() -> TestResult {
    faults_under_load(Backend::Postgres).await
}
