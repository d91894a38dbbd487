//! Every security event is written to the trail with who, from where, and which request.

use crate::common;

use common::{PASSWORD, TestResult, assert_problem, spawn, str_of};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;

#[derive(Debug)]
struct Event {
    kind: String,
    user_id: Option<String>,
    email: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    outcome: String,
}

async fn events(app: &common::TestApp) -> Vec<Event> {
    let pool = app.storage.db().await;
    let rows =
        sqlx::query("SELECT * FROM audit_events ORDER BY seq").fetch_all(&pool).await.unwrap();
    rows.iter()
        .map(|row| Event {
            kind: row.get("type"),
            user_id: row.get("user_id"),
            email: row.get("email"),
            ip: row.get("ip"),
            user_agent: row.get("user_agent"),
            request_id: row.get("request_id"),
            outcome: row.get("outcome"),
        })
        .collect()
}

#[tokio::test]
async fn a_failed_login_is_recorded_with_its_request() -> TestResult {
    let app = spawn().await;
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("user-agent", "probe/1.0")
        .json(&json!({ "email": "Nobody@Example.com", "password": "Wrong-Pass-1" }))
        .send()
        .await?;
    let request_id = response.headers()["x-request-id"].to_str()?.to_owned();
    let events = events(&app).await;
    let event = events.iter().find(|e| e.kind == "login_failed").expect("a login_failed event");
    assert_eq!(event.email.as_deref(), Some("nobody@example.com"));
    assert_eq!(event.user_id, None);
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.user_agent.as_deref(), Some("probe/1.0"));
    assert_eq!(event.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(event.outcome, "failure");
    Ok(())
}

#[tokio::test]
async fn the_whole_flow_leaves_one_event_per_security_action() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let next: serde_json::Value = app.refresh(str_of(&pair, "refresh_token")).await.json().await?;
    app.refresh(str_of(&pair, "refresh_token")).await;
    let again: serde_json::Value = app.login("alice@example.com", PASSWORD).await.json().await?;
    let change = json!({ "current_password": PASSWORD, "new_password": "Brand-New-Pass-9" });
    app.request(
        Method::POST,
        "/v1/auth/password",
        Some(str_of(&again, "access_token")),
        Some(change),
    )
    .await;
    app.request(Method::POST, "/v1/auth/logout", Some(str_of(&again, "access_token")), None).await;
    let kinds: Vec<String> = events(&app).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "registration",
            "login",
            "token_refresh",
            "token_reused",
            "login",
            "password_change",
            "logout"
        ]
    );
    drop(next);
    let user_ids: Vec<Option<String>> = events(&app).await.into_iter().map(|e| e.user_id).collect();
    assert!(user_ids.iter().all(|u| u.is_some() && *u == user_ids[0]));
    Ok(())
}

#[tokio::test]
async fn a_lockout_and_its_unlock_are_recorded_for_the_user() -> TestResult {
    let app = common::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "2")]).await;
    let user: serde_json::Value = app.register("mia@example.com", PASSWORD).await.json().await?;
    for _ in 0..2 {
        app.login("mia@example.com", "Wrong-Pass-1").await;
    }
    app.login("mia@example.com", PASSWORD).await;
    assert_eq!(
        common::run_cli(&app, &["user", "unlock", "--email", "mia@example.com"]).await,
        Some(0)
    );
    let events = events(&app).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["registration", "login_failed", "login_failed", "lockout", "login_failed", "unlock"]
    );
    let unlock = events.last().unwrap();
    assert_eq!(unlock.user_id.as_deref(), user["id"].as_str());
    Ok(())
}

#[tokio::test]
async fn a_spent_budget_is_recorded_once_per_period_not_per_refusal() -> TestResult {
    let app = common::spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_ACCOUNT", "2/min"),
        ("PORTCULLIS_RATE_LIMIT_READS", "1/min"),
    ])
    .await;
    let pair = app.signed_in("nia@example.com").await;
    for _ in 0..5 {
        assert_eq!(app.login("nia@example.com", PASSWORD).await.status(), 429);
    }
    let token = str_of(&pair, "access_token");
    for _ in 0..4 {
        app.get("/v1/auth/me", token).await;
    }
    let limited: Vec<Event> =
        events(&app).await.into_iter().filter(|e| e.kind == "rate_limited").collect();
    assert_eq!(limited.len(), 2, "{limited:?}");
    assert_eq!(limited[0].email.as_deref(), Some("nia@example.com"));
    assert_eq!(limited[0].outcome, "failure");
    let user_id = events(&app).await.into_iter().find(|e| e.kind == "login").unwrap().user_id;
    assert_eq!(limited[1].user_id, user_id, "the reads budget names its user");
    Ok(())
}

#[tokio::test]
async fn a_request_whose_event_cannot_be_written_fails_and_leaves_no_success_unrecorded()
-> TestResult {
    let app = spawn().await;
    assert_eq!(app.register("trail@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let db = app.storage.db().await;
    let block = if common::on_postgres() {
        vec![
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'trail down'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    } else {
        vec![
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'trail down'); END",
        ]
    };
    for sql in block {
        sqlx::query(sql).execute(&db).await?;
    }
    let refused = app.login("trail@example.com", PASSWORD).await;
    assert_problem(refused, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    sqlx::query("DROP TRIGGER refuse ON audit_events").execute(&db).await.ok();
    sqlx::query("DROP TRIGGER refuse").execute(&db).await.ok();
    let pair = common::ok_json(app.login("trail@example.com", PASSWORD).await).await;
    assert!(pair["access_token"].is_string());
    let logins: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE type = 'login'")
        .fetch_one(&db)
        .await?;
    assert_eq!(logins, 1, "only the login that succeeded is in the trail");
    Ok(())
}
