//! Audit appends per second on PostgreSQL: every append takes the chain's head row, so appends
//! from every instance queue on one row lock. This measures how many appends per second that
//! allows, from one instance and from two (two pools on one scratch database, as two instances
//! would have), with 32 concurrent writers for a bounded time each.
//!
//! Run with `cargo bench --bench audit` while PostgreSQL answers on 127.0.0.1:5432 (user
//! `postgres`); the scratch database is removed afterwards. Results are in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::domain::audit::{AuditEvent, EventType, Outcome};
use portcullis::domain::{Clock, RequestContext, SystemClock, UserId};
use portcullis::store::AuditStore;
use portcullis::store::sql::SqlStore;

const WRITERS: usize = 32;
const DURATION: Duration = Duration::from_secs(5);
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let name = format!("portcullis_bench_audit_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#)).execute(&admin).await.unwrap();
    let url = format!("{POSTGRES}/{name}");
    let first = Arc::new(SqlStore::connect(&url).await.unwrap());
    first.migrate().await.unwrap();
    let second = Arc::new(SqlStore::connect(&url).await.unwrap());

    println!(
        "instances  appends/s   p50 ms   p99 ms  ({WRITERS} writers, {} s)",
        DURATION.as_secs()
    );
    run("one", std::slice::from_ref(&first)).await;
    run("two", &[first.clone(), second.clone()]).await;

    drop((first, second));
    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
    sqlx::query(&drop).execute(&admin).await.unwrap();
}

async fn run(label: &str, instances: &[Arc<SqlStore>]) {
    let deadline = Instant::now() + DURATION;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = instances[i % instances.len()].clone();
            tokio::spawn(async move {
                let context = RequestContext {
                    ip: Some("192.0.2.1".parse().unwrap()),
                    user_agent: Some("bench".into()),
                    request_id: Some(format!("bench-{i}")),
                    from_page: false,
                };
                let user = UserId::new();
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let event = AuditEvent::new(
                        EventType::Login,
                        Outcome::Success,
                        &context,
                        SystemClock.now(),
                    )
                    .user(user);
                    let start = Instant::now();
                    store.append(std::slice::from_ref(&event)).await.unwrap();
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "{label:<9} {:>10.0} {:>8.2} {:>8.2}",
        latencies.len() as f64 / DURATION.as_secs_f64(),
        percentile(0.5),
        percentile(0.99)
    );
}
