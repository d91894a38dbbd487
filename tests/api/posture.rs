//! `GET /v1/admin/posture`: the weak settings the instance started with, for admins only.

use crate::common;

use common::{PASSWORD, TestResult, assert_problem, ok_json, spawn_with, str_of};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const WEAK: [(&str, &str); 2] = [
    ("PORTCULLIS_JWT_SECRET", "a-shared-secret-of-at-least-32-bytes"),
    ("PORTCULLIS_LOCKOUT_THRESHOLD", "50"),
];

#[tokio::test]
async fn an_admin_gets_the_findings_of_the_running_configuration() -> TestResult {
    let app = spawn_with(&WEAK).await;
    common::create_admin(&app, "root@example.com").await;
    let admin: Value = app.login("root@example.com", PASSWORD).await.json().await?;
    let body = ok_json(app.get("/v1/admin/posture", str_of(&admin, "access_token")).await).await;

    let findings = body["findings"].as_array().unwrap();
    let ids: Vec<&str> = findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    for id in ["jwt_hs256", "jwt_secret_short", "lockout_threshold_high", "argon2_below_owasp"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let lockout = findings.iter().find(|f| f["id"] == "lockout_threshold_high").unwrap();
    assert_eq!(lockout["variable"], "PORTCULLIS_LOCKOUT_THRESHOLD");
    assert_eq!(lockout["severity"], "medium");
    assert!(lockout["message"].as_str().unwrap().contains("50"));
    // Exactly what the one function computes from the same settings: nothing more, nothing less.
    let settings = common::settings_for(&app.storage, &WEAK);
    assert_eq!(body, serde_json::to_value(portcullis::config::posture(&settings))?);
    // It names variables, never a secret's value.
    assert!(!body.to_string().contains("a-shared-secret"));
    Ok(())
}

#[tokio::test]
async fn the_posture_is_for_admins_only() -> TestResult {
    let app = spawn_with(&WEAK).await;
    let user = app.signed_in("hana@example.com").await;
    let forbidden = app.get("/v1/admin/posture", str_of(&user, "access_token")).await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app.request(Method::GET, "/v1/admin/posture", None, None).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}
