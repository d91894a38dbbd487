//! Outbox benchmark on PostgreSQL: how fast requests can queue sealed messages (32 concurrent
//! writers), and how fast one sender, then two (two instances), deliver them to an SMTP server
//! on loopback (the tests' SMTP peer). A scratch database, dropped afterwards.
//!
//! Run with `cargo bench --bench mail` (PostgreSQL at 127.0.0.1:5432, user `postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/api/common/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::crypto::{MasterKey, Sealer};
use portcullis::domain::SystemClock;
use portcullis::mail::{Message, Outbox, SenderSettings, Transport, spawn_sender};
use portcullis::metrics::Metrics;
use portcullis::store::MailStore;
use portcullis::store::sql::SqlStore;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const MESSAGES: usize = 2_000;
const WRITERS: usize = 32;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let database = format!("portcullis_bench_mail_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.unwrap();
    println!("outbox on PostgreSQL: {MESSAGES} messages, {WRITERS} writers");
    for senders in [1, 2] {
        let store = Arc::new(SqlStore::connect(&format!("{POSTGRES}/{database}")).await.unwrap());
        store.migrate().await.unwrap();
        run(store, senders).await;
    }
    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    sqlx::query(&drop).execute(&admin).await.unwrap();
}

async fn run(store: Arc<SqlStore>, senders: usize) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let sealer = Sealer::new(Some(MasterKey::from_bytes([7; 32])), None).expect("a sealer");
    let outbox = Outbox::new(store.clone(), sealer, Arc::new(SystemClock), metrics.clone());
    let sink = smtp::SmtpSink::start(smtp::SinkOptions::default()).await;

    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let outbox = outbox.clone();
        writers.spawn(async move {
            for i in (w..MESSAGES).step_by(WRITERS) {
                let message = Message {
                    to: format!("bench{i}@example.com"),
                    subject: "portcullis: reset your password".to_owned(),
                    body: format!("http://localhost:8080/reset-password?token={i:043}"),
                };
                outbox.queue(&message).await.unwrap();
            }
        });
    }
    writers.join_all().await;
    let queued = started.elapsed();

    let url = format!("smtp://{}", sink.address);
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let transport = Transport::new(Some(&url), std::path::Path::new("unused")).unwrap();
            let settings = SenderSettings {
                from: "portcullis <no-reply@localhost>".parse().unwrap(),
                retry_for: Duration::from_secs(3_600),
                retry_max_delay: Duration::from_secs(5),
            };
            spawn_sender(
                outbox.clone(),
                transport,
                settings,
                Arc::new(SystemClock),
                metrics.clone(),
            )
        })
        .collect();
    let received = sink.wait_for(MESSAGES, Duration::from_secs(300)).await.len();
    let sent = started.elapsed();
    // Give a second delivery of any message the chance to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = sink.received().len();
    for task in tasks {
        task.abort();
    }
    let left = store.outbox_state().await.unwrap().waiting;
    println!(
        "{senders} sender(s): queued {:>6.0}/s ({:.2} s), sent {:>6.0}/s ({:.2} s), \
         delivered {received}, duplicates {}, left {left}",
        MESSAGES as f64 / queued.as_secs_f64(),
        queued.as_secs_f64(),
        MESSAGES as f64 / sent.as_secs_f64(),
        sent.as_secs_f64(),
        total.saturating_sub(MESSAGES),
    );
}
