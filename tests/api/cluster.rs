//! portcullis on a Redis Cluster of the test's own (three masters from `scripts/redis-cluster`,
//! beside the suite's shared one, so that stopping a master or moving a slot touches no other
//! test): a master that goes away gives 503 for what needs it and `/readyz` 503, the service
//! recovers by itself when the master is back, nothing revoked comes back, and a slot moved to
//! another master mid-traffic (ASK, then MOVED) is followed without a restart.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestApp, TestResult, assert_problem, str_of, wait_until_ready};
use reqwest::{Method, StatusCode};

/// A cluster in a temporary directory, stopped (by PID) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    /// Starts one, or `None` (the test skips) where Redis is not installed outside CI.
    fn start(test: &str) -> Option<Cluster> {
        if !common::redis_server_installed(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let output = script(&["start", &dir.path().display().to_string()]);
        let url = String::from_utf8(output).unwrap().trim().to_owned();
        Some(Cluster { dir, url })
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn kill(&self, port: u16) {
        script(&["kill", &self.path(), &port.to_string()]);
    }

    fn revive(&self, port: u16) {
        script(&["revive", &self.path(), &port.to_string()]);
    }

    fn ports(&self) -> Vec<u16> {
        let ports = std::fs::read_to_string(self.dir.path().join("ports")).unwrap();
        ports.split_whitespace().map(|p| p.parse().unwrap()).collect()
    }

    async fn node(&self, port: u16) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// The masters as (node id, port, slot ranges).
    async fn masters(&self) -> Vec<(String, u16, Vec<(u16, u16)>)> {
        let mut node = self.node(self.ports()[0]).await;
        let nodes: String =
            redis::cmd("CLUSTER").arg("NODES").query_async(&mut node).await.unwrap();
        nodes
            .lines()
            .filter(|line| line.contains("master"))
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                let ranges = fields[8..]
                    .iter()
                    .filter(|r| !r.starts_with('['))
                    .map(|r| match r.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (r.parse().unwrap(), r.parse().unwrap()),
                    })
                    .collect();
                (fields[0].to_owned(), port, ranges)
            })
            .collect()
    }

    /// The slot of a user's keys, and the master (id, port) that serves it.
    async fn home_of(&self, user: &str) -> (u16, String, u16) {
        let mut node = self.node(self.ports()[0]).await;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{user}}}"))
            .query_async(&mut node)
            .await
            .unwrap();
        let masters = self.masters().await;
        let (id, port, _) = masters
            .iter()
            .find(|(_, _, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .unwrap();
        (slot, id.clone(), *port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script_path()).args(["stop", &self.path()]).status();
    }
}

fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster")
}

fn script(args: &[&str]) -> Vec<u8> {
    let output = Command::new(script_path()).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// An app on a fresh PostgreSQL database and the cluster, or `None` where they are not here.
async fn app_on(cluster: &Cluster) -> TestApp {
    let (storage, owner) = common::new_postgres_storage().await;
    let vars = [("PORTCULLIS_REDIS_URL", cluster.url.as_str())];
    common::spawn_owning(storage, owner, &vars).await
}

async fn user_id(app: &TestApp, access: &str) -> String {
    let me = common::ok_json(app.get("/v1/auth/me", access).await).await;
    str_of(&me, "id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_goes_away_gives_503_and_the_service_recovers_without_resurrecting()
-> TestResult {
    let test = "a master that goes away";
    if !common::servers_answer(test, true, false).await {
        return Ok(());
    }
    let Some(cluster) = Cluster::start(test) else { return Ok(()) };
    let app = app_on(&cluster).await;
    let kept = app.signed_in("erin@example.com").await;
    let ended = app.logged_in("erin@example.com", common::PASSWORD).await;
    let ended_access = str_of(&ended, "access_token");
    let logout = app.request(Method::POST, "/v1/auth/logout", Some(ended_access), None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let user = user_id(&app, str_of(&kept, "access_token")).await;
    let (_, _, home) = cluster.home_of(&user).await;

    cluster.kill(home);
    let started = Instant::now();
    let me = app.get("/v1/auth/me", str_of(&kept, "access_token")).await;
    assert_eq!(me.headers()["retry-after"], "1");
    assert_problem(me, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let refresh = app.refresh(str_of(&kept, "refresh_token")).await;
    assert_problem(refresh, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert!(started.elapsed() < Duration::from_secs(10), "answered within seconds");
    let ready = app.client.get(app.url("/readyz")).send().await?;
    assert_problem(ready, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    cluster.revive(home);
    assert_eq!(wait_until_ready(&app).await, StatusCode::OK, "recovered without a restart");
    // The ended session stays ended. (This master kept nothing on disk, so the live session
    // went with it: its owner signs in again.)
    let me = app.get("/v1/auth/me", ended_access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let again = app.logged_in("erin@example.com", common::PASSWORD).await;
    assert_eq!(
        app.get("/v1/auth/me", str_of(&again, "access_token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.refresh(str_of(&again, "refresh_token")).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_master_mid_traffic_is_followed() -> TestResult {
    let test = "a slot moved mid-traffic";
    if !common::servers_answer(test, true, false).await {
        return Ok(());
    }
    let Some(cluster) = Cluster::start(test) else { return Ok(()) };
    let app = app_on(&cluster).await;
    let pair = app.signed_in("fay@example.com").await;
    let user = user_id(&app, str_of(&pair, "access_token")).await;
    let (slot, source_id, source) = cluster.home_of(&user).await;
    let masters = cluster.masters().await;
    let (target_id, target, _) = masters.iter().find(|(id, _, _)| *id != source_id).unwrap();
    let (mut from, mut to) = (cluster.node(source).await, cluster.node(*target).await);
    let setslot = |state: &str, id: &str| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
        cmd
    };

    // Mid-migration: the slot is importing on the target and migrating on the source, and a
    // session created now may land on either side (ASK redirections).
    setslot("IMPORTING", &source_id).query_async::<()>(&mut to).await?;
    setslot("MIGRATING", target_id).query_async::<()>(&mut from).await?;
    let mut answers = Vec::new();
    answers.push(app.get("/v1/auth/me", str_of(&pair, "access_token")).await.status());
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query_async(&mut from)
        .await?;
    assert!(!keys.is_empty(), "the user's keys are in the slot");
    redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(*target)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys)
        .query_async::<()>(&mut from)
        .await?;
    answers.push(app.get("/v1/auth/me", str_of(&pair, "access_token")).await.status());
    for port in cluster.ports() {
        let mut node = cluster.node(port).await;
        setslot("NODE", target_id).query_async::<()>(&mut node).await?;
    }
    for status in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "mid-migration a request succeeds or asks to be retried: {status}"
        );
    }

    // Moved (MOVED): every operation on the user's keys follows the slot to its new master.
    let (_, _, home) = cluster.home_of(&user).await;
    assert_eq!(home, *target);
    assert_eq!(
        app.get("/v1/auth/me", str_of(&pair, "access_token")).await.status(),
        StatusCode::OK
    );
    let next = app.refreshed(str_of(&pair, "refresh_token")).await;
    let replay = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "token_reused").await;
    let me = app.get("/v1/auth/me", str_of(&next, "access_token")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the reuse ended the moved session");
    Ok(())
}
