//! Load benchmark: starts the real server in-process on the embedded store and drives it over
//! HTTP on 127.0.0.1 from concurrent clients, for a bounded time per scenario.
//!
//! Run with `cargo bench --bench http` for the embedded backends, or with
//! `PORTCULLIS_BENCH_BACKEND=postgres-redis` for PostgreSQL and Redis on 127.0.0.1 (a scratch
//! database and key prefix, removed afterwards); `PORTCULLIS_BENCH_REDIS` names another Redis,
//! such as a cluster (`redis+cluster://…`, for example from `scripts/redis-cluster start DIR`). Results are recorded in BENCHMARKS.md. Each
//! scenario prints requests per second and the median and 99th-percentile latency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/api/common/passkey.rs"]
mod passkey;

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis::config::Settings;
use portcullis::startup::Application;
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const DURATION: Duration = Duration::from_secs(5);
const PASSWORD: &str = "Correct-Horse-42";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // OWASP Argon2id parameters, as in production; budgets large enough not to interfere.
    let shared = Shared::create().await;
    let (base, _dir) = start(
        shared.as_ref(),
        &[
            ("PORTCULLIS_RATE_LIMIT_IP", "100000000/min"),
            ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "100000000/min"),
            ("PORTCULLIS_RATE_LIMIT_READS", "100000000/min"),
        ],
    )
    .await;
    // A second server whose budget is spent at once: what a flood of refused logins costs.
    let limited_shared = Shared::create().await;
    let (limited, _limited_dir) =
        start(limited_shared.as_ref(), &[("PORTCULLIS_RATE_LIMIT_IP", "1/h")]).await;
    let client = reqwest::Client::new();

    for i in 0..CLIENTS {
        let body = json!({ "email": format!("bench{i}@example.com"), "password": PASSWORD });
        client.post(format!("{base}/v1/auth/register")).json(&body).send().await.unwrap();
    }
    println!(
        "scenario            req/s   p50 ms   p99 ms   errors  ({CLIENTS} clients, {} s each, {})",
        DURATION.as_secs(),
        if shared.is_some() {
            format!("PostgreSQL and {}", redis_url())
        } else {
            "embedded".into()
        }
    );

    run("GET /healthz", &client, |c, _| c.get(format!("{base}/healthz"))).await;
    let tokens = login_all(&client, &base).await;
    run("GET /v1/auth/me", &client, |c, i| {
        c.get(format!("{base}/v1/auth/me")).bearer_auth(tokens[i].0.clone())
    })
    .await;
    // Each refresh client follows its own rotation chain.
    let chains: Vec<std::sync::Mutex<String>> =
        tokens.iter().map(|t| std::sync::Mutex::new(t.1.clone())).collect();
    run_refresh(&client, &base, &chains).await;
    run("POST /v1/auth/login", &client, |c, i| {
        c.post(format!("{base}/v1/auth/login"))
            .json(&json!({ "email": format!("bench{i}@example.com"), "password": PASSWORD }))
    })
    .await;
    // The same login with a second factor: a password and a TOTP code (two requests, one hash),
    // and a passkey (two requests, no hash). A TOTP code works once per account and step, so
    // each TOTP login is of an account of its own.
    let totp = enrol_totp_accounts(&client, &base).await;
    run_flows("login + TOTP", |i, round| {
        let (client, base, totp) = (&client, &base, &totp);
        async move {
            let (email, secret) =
                totp.get(i * TOTP_ROUNDS + round).filter(|_| round < TOTP_ROUNDS)?;
            Some(login_with_totp(client, base, email, secret).await)
        }
    })
    .await;
    let passkeys = register_passkeys(&client, &base).await;
    run_flows("login, passkey", |i, _| {
        let (client, base, passkeys) = (&client, &base, &passkeys);
        async move { Some(login_with_passkey(client, base, &passkeys[i]).await) }
    })
    .await;
    run("login, over budget", &client, |c, i| {
        c.post(format!("{limited}/v1/auth/login"))
            .json(&json!({ "email": format!("bench{i}@example.com"), "password": PASSWORD }))
    })
    .await;
    for shared in [shared, limited_shared].iter().flatten() {
        shared.remove().await;
    }
}

/// PostgreSQL and Redis for this run, when asked for: a scratch database and key prefix.
struct Shared {
    database: String,
    prefix: String,
}

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

impl Shared {
    async fn create() -> Option<Self> {
        if std::env::var("PORTCULLIS_BENCH_BACKEND").ok()? != "postgres-redis" {
            return None;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("portcullis_bench_{id}");
        let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.unwrap();
        Some(Self { database, prefix: format!("bench:{id}:") })
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PORTCULLIS_DATABASE_URL".into(), format!("{POSTGRES}/{}", self.database)),
            ("PORTCULLIS_REDIS_URL".into(), redis_url()),
            ("PORTCULLIS_REDIS_PREFIX".into(), self.prefix.clone()),
        ]
    }

    async fn remove(&self) {
        let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        sqlx::query(&drop).execute(&admin).await.unwrap();
        // A cluster's keys are spread over its nodes, and a multi-key DEL must stay in one slot.
        let url = redis_url();
        let nodes: Vec<String> = match url.strip_prefix("redis+cluster://") {
            Some(seeds) => seeds.split(',').map(|s| format!("redis://{s}")).collect(),
            None => vec![url],
        };
        for node in nodes {
            let client = redis::Client::open(node).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query_async(&mut connection)
                .await
                .unwrap();
            for key in keys {
                let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut connection).await.unwrap();
            }
        }
    }
}

fn redis_url() -> String {
    std::env::var("PORTCULLIS_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn start(shared: Option<&Shared>, vars: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("PORTCULLIS_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("PORTCULLIS_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("PORTCULLIS_LOG".to_owned(), "error".to_owned()),
    ];
    env.extend(shared.map(Shared::env).unwrap_or_default());
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load(None, env).unwrap();
    let app = Application::build(settings, true).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run(std::future::pending()));
    (base, dir)
}

async fn login_all(client: &reqwest::Client, base: &str) -> Vec<(String, String)> {
    let mut tokens = Vec::new();
    for i in 0..CLIENTS {
        let body = json!({ "email": format!("bench{i}@example.com"), "password": PASSWORD });
        let pair: Value = client
            .post(format!("{base}/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push((
            pair["access_token"].as_str().unwrap().to_owned(),
            pair["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    tokens
}

async fn run<F>(name: &str, client: &reqwest::Client, request: F)
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Sync,
{
    let deadline = Instant::now() + DURATION;
    let started = Instant::now();
    let results = futures::future::join_all((0..CLIENTS).map(|i| {
        let request = &request;
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                match request(client, i).send().await {
                    Ok(r) if r.status().is_success() || r.status() == 429 => {
                        latencies.push(t.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }
    }))
    .await;
    report(name, started.elapsed(), results);
}

/// TOTP logins each client makes (each of an account of its own).
const TOTP_ROUNDS: usize = 8;
/// Where the passkey ceremonies say they come from: the default `WEBAUTHN_ORIGINS`.
const ORIGIN: &str = "http://localhost:8080";

async fn post(client: &reqwest::Client, url: String, body: Value, bearer: Option<&str>) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The TOTP code of this moment for a base32 secret, as an authenticator app computes it.
fn totp_code(secret: &[u8], ahead_steps: u64) -> String {
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, 30, secret.to_vec());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    totp.generate((now.as_secs() / 30 + ahead_steps).saturating_sub(1) * 30)
}

/// Accounts with TOTP on, `TOTP_ROUNDS` per client: (email, secret).
async fn enrol_totp_accounts(client: &reqwest::Client, base: &str) -> Vec<(String, Vec<u8>)> {
    let mut accounts = Vec::new();
    for n in 0..CLIENTS * TOTP_ROUNDS {
        let email = format!("totp{n}@example.com");
        let credentials = json!({ "email": email, "password": PASSWORD });
        post(client, format!("{base}/v1/auth/register"), credentials.clone(), None).await;
        let pair = post(client, format!("{base}/v1/auth/login"), credentials, None).await;
        let access = pair["access_token"].as_str().unwrap();
        let body = json!({ "password": PASSWORD });
        let enrolment = post(client, format!("{base}/v1/auth/mfa/totp"), body, Some(access)).await;
        let secret = totp_rs::Secret::Encoded(enrolment["secret"].as_str().unwrap().to_owned())
            .to_bytes()
            .unwrap();
        // The step before this one confirms, so that this one is still free for the login.
        let body = json!({ "code": totp_code(&secret, 0) });
        let url = format!("{base}/v1/auth/mfa/totp/confirm");
        assert!(post(client, url, body, Some(access)).await["recovery_codes"].is_array());
        accounts.push((email, secret));
    }
    accounts
}

async fn login_with_totp(client: &reqwest::Client, base: &str, email: &str, secret: &[u8]) -> bool {
    let credentials = json!({ "email": email, "password": PASSWORD });
    let first = post(client, format!("{base}/v1/auth/login"), credentials, None).await;
    let Some(token) = first["mfa_token"].as_str() else { return false };
    let body = json!({ "mfa_token": token, "code": totp_code(secret, 1) });
    let pair = post(client, format!("{base}/v1/auth/login/mfa"), body, None).await;
    pair["access_token"].is_string()
}

/// One account with one passkey per client, and the authenticator that holds it.
async fn register_passkeys(
    client: &reqwest::Client,
    base: &str,
) -> Vec<Mutex<passkey::Authenticator>> {
    let mut all = Vec::new();
    for i in 0..CLIENTS {
        let credentials =
            json!({ "email": format!("passkey{i}@example.com"), "password": PASSWORD });
        post(client, format!("{base}/v1/auth/register"), credentials.clone(), None).await;
        let pair = post(client, format!("{base}/v1/auth/login"), credentials, None).await;
        let access = pair["access_token"].as_str().unwrap();
        let url = format!("{base}/v1/auth/passkeys/register/options");
        let options = post(client, url, json!({ "password": PASSWORD }), Some(access)).await;
        let mut authenticator = passkey::Authenticator::new();
        let credential = authenticator.register(&options["publicKey"], ORIGIN);
        let body = json!({ "challenge_id": options["challenge_id"], "credential": credential });
        let added = post(client, format!("{base}/v1/auth/passkeys"), body, Some(access)).await;
        assert!(added["id"].is_string(), "{added}");
        all.push(Mutex::new(authenticator));
    }
    all
}

async fn login_with_passkey(
    client: &reqwest::Client,
    base: &str,
    authenticator: &Mutex<passkey::Authenticator>,
) -> bool {
    let options = post(client, format!("{base}/v1/auth/passkeys/login/options"), json!({}), None);
    let options = options.await;
    let assertion = authenticator.lock().unwrap().assert(&options["publicKey"], ORIGIN);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": assertion });
    let pair = post(client, format!("{base}/v1/auth/passkeys/login"), body, None).await;
    pair["access_token"].is_string()
}

/// Like `run`, for a flow of several requests: `flow(client, round)` answers whether it
/// succeeded, or `None` once that client has nothing more to do.
async fn run_flows<F, Fut>(name: &str, flow: F)
where
    F: Fn(usize, usize) -> Fut + Sync,
    Fut: Future<Output = Option<bool>>,
{
    let deadline = Instant::now() + DURATION;
    let started = Instant::now();
    let results = futures::future::join_all((0..CLIENTS).map(|i| {
        let flow = &flow;
        async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            for round in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match flow(i, round).await {
                    None => break,
                    Some(true) => latencies.push(t.elapsed()),
                    Some(false) => errors += 1,
                }
            }
            (latencies, errors)
        }
    }))
    .await;
    report(name, started.elapsed(), results);
}

async fn run_refresh(client: &reqwest::Client, base: &str, chains: &[std::sync::Mutex<String>]) {
    let deadline = Instant::now() + DURATION;
    let started = Instant::now();
    let results = futures::future::join_all(chains.iter().map(|chain| async move {
        let mut latencies = Vec::new();
        let mut errors = 0usize;
        while Instant::now() < deadline {
            let token = chain.lock().unwrap().clone();
            let t = Instant::now();
            let response = client
                .post(format!("{base}/v1/auth/refresh"))
                .json(&json!({ "refresh_token": token }))
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    let pair: Value = r.json().await.unwrap();
                    latencies.push(t.elapsed());
                    *chain.lock().unwrap() = pair["refresh_token"].as_str().unwrap().to_owned();
                }
                _ => errors += 1,
            }
        }
        (latencies, errors)
    }))
    .await;
    report("POST /v1/auth/refresh", started.elapsed(), results);
}

fn report(name: &str, elapsed: Duration, results: Vec<(Vec<Duration>, usize)>) {
    let errors: usize = results.iter().map(|r| r.1).sum();
    let mut all: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    println!("{name:<20}{rate:>8.0}{:>9.2}{:>9.2}{errors:>9}", pick(0.5), pick(0.99));
}
