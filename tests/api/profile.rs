//! The user's name: set and cleared by the user (`PATCH /v1/auth/me`) and by an admin
//! (`PATCH /v1/admin/users/{id}`), shown in the user object, refused when it is empty, too long
//! or holds characters that are not shown as themselves.

use crate::common;

use common::{PASSWORD, TestApp, assert_problem, ok_json, str_of};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

async fn patch_me(app: &TestApp, token: &str, body: Value) -> Response {
    app.request(Method::PATCH, "/v1/auth/me", Some(token), Some(body)).await
}

#[tokio::test]
async fn a_user_sets_keeps_and_clears_their_name() {
    let app = common::spawn().await;
    let registered: Value = app.register("ada@example.com", PASSWORD).await.json().await.unwrap();
    assert_eq!(registered["name"], Value::Null, "no name until one is given: {registered}");
    let pair = app.logged_in("ada@example.com", PASSWORD).await;
    let token = str_of(&pair, "access_token");

    let named = ok_json(patch_me(&app, token, json!({"name": "  Ada Lovelace "})).await).await;
    assert_eq!(named["name"], "Ada Lovelace", "trimmed: {named}");
    assert_eq!(named["email"], "ada@example.com");
    let me = ok_json(app.get("/v1/auth/me", token).await).await;
    assert_eq!(me["name"], "Ada Lovelace");
    let kept = ok_json(patch_me(&app, token, json!({})).await).await;
    assert_eq!(kept["name"], "Ada Lovelace", "absent: left as it is");
    let other_script = "Ада Лавлейс 👩‍💻";
    let named = ok_json(patch_me(&app, token, json!({"name": other_script})).await).await;
    assert_eq!(named["name"], other_script);
    let cleared = ok_json(patch_me(&app, token, json!({"name": null})).await).await;
    assert_eq!(cleared["name"], Value::Null);

    let long = "a".repeat(201);
    for bad in ["", "   ", long.as_str(), "Ada\u{202e}ecalevoL", "Ada\u{200b}", "Ada\nLovelace"] {
        let response = patch_me(&app, token, json!({"name": bad})).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let exactly = "a".repeat(200);
    let named = ok_json(patch_me(&app, token, json!({"name": exactly})).await).await;
    assert_eq!(named["name"], exactly.as_str());
    let response =
        app.request(Method::PATCH, "/v1/auth/me", None, Some(json!({"name": "x"}))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_names_an_account_and_the_trail_says_so() {
    let app = common::spawn().await;
    common::create_admin(&app, "root@example.com").await;
    let admin = app.logged_in("root@example.com", PASSWORD).await;
    let admin = str_of(&admin, "access_token").to_owned();
    let user: Value = app.register("grace@example.com", PASSWORD).await.json().await.unwrap();
    let path = format!("/v1/admin/users/{}", str_of(&user, "id"));
    let change = |body: Value| app.request(Method::PATCH, &path, Some(&admin), Some(body));
    let named = ok_json(change(json!({"name": "Grace Hopper"})).await).await;
    assert_eq!(named["name"], "Grace Hopper");
    assert_eq!(named["disabled"], false, "the admin user object: {named}");
    let response = change(json!({"name": "\u{202e}"})).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let cleared = ok_json(change(json!({"name": null})).await).await;
    assert_eq!(cleared["name"], Value::Null);

    let trail = ok_json(app.get("/v1/admin/audit?type=user_updated", &admin).await).await;
    let details: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["detail"].as_str())
        .collect();
    assert!(details.iter().any(|d| d.contains("name set")), "{trail}");
    assert!(details.iter().any(|d| d.contains("name cleared")), "{trail}");
}
