//! The admin listing on a million accounts on PostgreSQL: seeds a scratch database with
//! 1,000,000 accounts (one `INSERT … SELECT` over `generate_series`, not through the API: this
//! is a fixture, not a measurement), then times, one request after another, the store's query
//! and the HTTP endpoint (which adds each account's lock and live sessions) for: the newest page
//! of 50, a page deep down the cursor chain, a selective prefix (a handful of matches) and a
//! broad one (a tenth of all accounts).
//!
//! Run with `cargo bench --bench accounts` while PostgreSQL answers on 127.0.0.1:5432 (user
//! `postgres`); the scratch database is removed afterwards. Results are in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use portcullis::config::Settings;
use portcullis::startup::Application;
use portcullis::store::sql::SqlStore;
use portcullis::store::{UserCursor, UserStore};
use serde_json::{Value, json};

const ACCOUNTS: i64 = 1_000_000;
const ROUNDS: usize = 30;
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const PASSWORD: &str = "Correct-Horse-42";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let name = format!("portcullis_bench_accounts_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&admin).await.unwrap();
    let url = format!("{POSTGRES}/{name}");
    let store = SqlStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();

    let seeding = Instant::now();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // One millisecond apart, ids from the md5 of n, and addresses that owe nothing to the order
    // of creation (12 hex digits of another md5, as real addresses owe nothing to it); no
    // password.
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, roles, created_at)
         SELECT md5(n::text)::uuid::text, left(md5('address ' || n), 12) || '@example.com', '!',
                'user', 1700000000000 + n
         FROM generate_series(1, $1) AS n",
    )
    .bind(ACCOUNTS)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE users").execute(&pool).await.unwrap();
    println!("seeded {ACCOUNTS} accounts in {:.1} s", seeding.elapsed().as_secs_f64());

    // A cursor half-way down: the account created 500,000 ms after the first.
    let middle: (String,) =
        sqlx::query_as("SELECT id FROM users WHERE created_at = 1700000000000 + 500000")
            .fetch_one(&pool)
            .await
            .unwrap();
    let deep = UserCursor {
        created_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + 500_000).unwrap(),
        id: portcullis::domain::UserId::parse(&middle.0).unwrap(),
    };

    println!("query (store)                            rows   p50 ms   p99 ms  ({ROUNDS} rounds)");
    let cases: [(&str, Option<&str>, Option<&UserCursor>); 4] = [
        ("newest page of 50", None, None),
        ("page of 50 at row 500,000", None, Some(&deep)),
        ("prefix abcd (a few matches)", Some("abcd"), None),
        ("prefix a (a sixteenth of all)", Some("a"), None),
    ];
    for (label, prefix, after) in cases {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            found = store.list_users(prefix, after, 50).await.unwrap().len();
            times.push(started.elapsed());
        }
        report(label, found, &mut times);
    }

    // The endpoint, with an admin of its own on the same database.
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("PORTCULLIS_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("PORTCULLIS_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("PORTCULLIS_DATABASE_URL".to_owned(), url.clone()),
        ("PORTCULLIS_LOG".to_owned(), "error".to_owned()),
        ("PORTCULLIS_RATE_LIMIT_READS".to_owned(), "100000/min".to_owned()),
    ];
    let app = Application::build(Settings::load(None, env).unwrap(), true).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run(std::future::pending()));
    let client = reqwest::Client::new();
    let credentials = json!({ "email": "root@example.com", "password": PASSWORD });
    client.post(format!("{base}/v1/auth/register")).json(&credentials).send().await.unwrap();
    sqlx::query("UPDATE users SET roles = 'user,admin' WHERE email = 'root@example.com'")
        .execute(&pool)
        .await
        .unwrap();
    let pair: Value = client
        .post(format!("{base}/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = pair["access_token"].as_str().unwrap().to_owned();
    println!("GET /v1/admin/users                      rows   p50 ms   p99 ms  ({ROUNDS} rounds)");
    for (label, query) in [
        ("newest page of 50", "limit=50"),
        ("prefix abcd", "limit=50&email=abcd"),
        ("prefix a", "limit=50&email=a"),
    ] {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let page: Value = client
                .get(format!("{base}/v1/admin/users?{query}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            times.push(started.elapsed());
            found = page["users"].as_array().map_or(0, Vec::len);
        }
        report(label, found, &mut times);
    }

    drop((store, pool));
    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    sqlx::query(&drop).execute(&admin).await.unwrap();
}

fn report(label: &str, found: usize, times: &mut [Duration]) {
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!("{label:<38}{found:>7}{:>9.2}{:>9.2}", pick(0.5), pick(0.99));
}
