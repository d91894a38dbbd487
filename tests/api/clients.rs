//! The OAuth client registry over the admin API: registering, reading, paging, changing,
//! rotating secrets and deleting, with the redirect URI rules that broke other providers.

use crate::common;

use common::{PASSWORD, TestApp, assert_problem, ok_json, spawn, str_of};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// An admin's access token, the admin created on the command line.
async fn admin_token(app: &TestApp) -> String {
    common::create_admin(app, "root@example.com").await;
    str_of(&app.logged_in("root@example.com", PASSWORD).await, "access_token").to_owned()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    app.request(method, path, Some(token), body).await
}

async fn register_client(app: &TestApp, token: &str, body: Value) -> Value {
    let response = call(app, Method::POST, "/v1/admin/clients", token, Some(body)).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn grafana() -> Value {
    json!({"name": "Grafana", "redirect_uris": ["https://grafana.example.com/login/generic_oauth"]})
}

#[tokio::test]
async fn a_confidential_client_gets_the_defaults_and_a_secret_shown_once() {
    let app = spawn().await;
    let token = admin_token(&app).await;
    let client = register_client(&app, &token, grafana()).await;
    let id = str_of(&client, "client_id").to_owned();
    let secret = str_of(&client, "client_secret");
    assert!(secret.len() >= 43, "256 bits: {secret}");
    assert_eq!(client["type"], "confidential");
    assert_eq!(client["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(client["scopes"], json!(["openid", "profile", "email", "offline_access"]));
    assert_eq!(client["require_pkce"], true);
    assert_eq!(client["consent"], "required");
    assert_eq!(client["id_token_signed_response_alg"], "RS256");
    assert!(client["created_at"].is_string());
    let read = ok_json(app.get(&format!("/v1/admin/clients/{id}"), &token).await).await;
    assert!(read.get("client_secret").is_none(), "the secret is shown once: {read}");
    let mut expected = client.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(read, expected);
    // Stored only as a hash: the secret is nowhere in the database.
    let db = app.storage.db().await;
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT registration, secret_hash FROM oauth_clients")
            .fetch_all(&db)
            .await
            .unwrap();
    db.close().await;
    assert_eq!(stored.len(), 1);
    assert!(!format!("{stored:?}").contains(secret), "{stored:?}");
}

#[tokio::test]
async fn a_public_client_has_no_secret_and_always_pkce() {
    let app = spawn().await;
    let token = admin_token(&app).await;
    let body = json!({
        "name": "Mobile", "type": "public",
        "redirect_uris": ["com.example.app:/callback", "http://127.0.0.1/cb"],
    });
    let client = register_client(&app, &token, body).await;
    assert!(client.get("client_secret").is_none(), "{client}");
    assert_eq!(client["require_pkce"], true);
    let id = str_of(&client, "client_id");
    let rotate =
        call(&app, Method::POST, &format!("/v1/admin/clients/{id}/secret"), &token, None).await;
    assert_problem(rotate, StatusCode::CONFLICT, "conflict").await;
    let no_pkce = json!({"name": "SPA", "type": "public", "require_pkce": false,
        "redirect_uris": ["https://spa.example.com/cb"]});
    let response = call(&app, Method::POST, "/v1/admin/clients", &token, Some(no_pkce)).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn loose_or_dangerous_redirect_uris_are_refused_at_registration() {
    let app = spawn().await;
    let token = admin_token(&app).await;
    for uri in [
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "http://grafana.example.com/cb",
        "https://*.example.com/cb",
        "https://grafana.example.com/cb#x",
        // Keycloak CVE-2026-7504 and CVE-2026-3872.
        "https://grafana.example.com@evil.example/cb",
        "https://grafana.example.com/cb/..;/admin",
        "com.example.app:/callback",
        "not a uri",
    ] {
        let body = json!({"name": "x", "redirect_uris": [uri]});
        let response = call(&app, Method::POST, "/v1/admin/clients", &token, Some(body)).await;
        let problem =
            assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(str_of(&problem, "detail").contains("redirect_uris"), "{uri}: {problem}");
    }
    for body in [
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}),
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "scopes": ["a b"]}),
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "secret": "mine"}),
        json!({"name": "", "redirect_uris": ["https://a.example/cb"]}),
    ] {
        let response =
            call(&app, Method::POST, "/v1/admin/clients", &token, Some(body.clone())).await;
        assert!(response.status().is_client_error(), "{body}: {}", response.status());
    }
    let list = ok_json(app.get("/v1/admin/clients", &token).await).await;
    assert_eq!(list["clients"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn clients_come_in_pages_newest_first() {
    let app = spawn().await;
    let token = admin_token(&app).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let body = json!({"name": format!("app {n}"), "redirect_uris": ["https://a.example/cb"]});
        ids.push(str_of(&register_client(&app, &token, body).await, "client_id").to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page =
            ok_json(app.get(&format!("/v1/admin/clients?limit=2&cursor={cursor}"), &token).await)
                .await;
        for client in page["clients"].as_array().unwrap() {
            assert!(client.get("client_secret").is_none());
            seen.push(str_of(client, "client_id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(seen_sorted, sorted, "every client once");
    let first = ok_json(app.get("/v1/admin/clients?limit=1", &token).await).await;
    assert_eq!(first["clients"][0]["client_id"], json!(ids[4]), "newest first");
    let response = app.get("/v1/admin/clients?limit=0", &token).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn a_client_is_changed_rotated_and_deleted_and_each_change_is_audited() {
    let app = spawn().await;
    let token = admin_token(&app).await;
    let client = register_client(&app, &token, grafana()).await;
    let id = str_of(&client, "client_id").to_owned();
    let path = format!("/v1/admin/clients/{id}");
    let change = json!({"name": "Grafana (prod)", "consent": "skip",
        "backchannel_logout_uri": "https://grafana.example.com/logout"});
    let changed = ok_json(call(&app, Method::PATCH, &path, &token, Some(change)).await).await;
    assert_eq!(changed["name"], "Grafana (prod)");
    assert_eq!(changed["consent"], "skip");
    assert_eq!(changed["redirect_uris"], client["redirect_uris"]);
    assert_eq!(changed["created_at"], client["created_at"]);
    let bad = json!({"redirect_uris": ["https://grafana.example.com@evil.example/"]});
    let response = call(&app, Method::PATCH, &path, &token, Some(bad)).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let retype = json!({"type": "public"});
    let response = call(&app, Method::PATCH, &path, &token, Some(retype)).await;
    assert!(response.status().is_client_error(), "the type stays");

    let secret_path = format!("{path}/secret");
    let rotated = ok_json(call(&app, Method::POST, &secret_path, &token, None).await).await;
    let secret = str_of(&rotated, "client_secret");
    assert!(secret.len() >= 43 && secret != str_of(&client, "client_secret"));
    let keep = json!({"keep_previous_for": "24h"});
    ok_json(call(&app, Method::POST, &secret_path, &token, Some(keep)).await).await;
    for keep in [json!({"keep_previous_for": "31d"}), json!({"keep_previous_for": "soon"})] {
        let response = call(&app, Method::POST, &secret_path, &token, Some(keep)).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }

    let deleted = call(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path, &token).await, StatusCode::NOT_FOUND, "not_found").await;
    let again = call(&app, Method::DELETE, &path, &token, None).await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;

    let trail = ok_json(app.get("/v1/admin/audit?limit=50", &token).await).await;
    let kinds: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["client_id"] == id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "client_deleted",
            "client_secret_rotated",
            "client_secret_rotated",
            "client_updated",
            "client_created"
        ],
        "{trail}"
    );
    let events = trail["events"].as_array().unwrap();
    let others = events.iter().filter(|e| !e["type"].as_str().unwrap().starts_with("client_"));
    assert!(
        others.clone().all(|e| e.get("client_id").is_none()),
        "only where a client is concerned"
    );
    assert!(others.count() > 0, "{trail}");
}

#[tokio::test]
async fn only_admins_reach_the_client_registry() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let client = register_client(&app, &admin, grafana()).await;
    let id = str_of(&client, "client_id");
    let user = str_of(&app.signed_in("user@example.com").await, "access_token").to_owned();
    for (method, path) in [
        (Method::GET, "/v1/admin/clients".to_owned()),
        (Method::POST, "/v1/admin/clients".to_owned()),
        (Method::GET, format!("/v1/admin/clients/{id}")),
        (Method::PATCH, format!("/v1/admin/clients/{id}")),
        (Method::DELETE, format!("/v1/admin/clients/{id}")),
        (Method::POST, format!("/v1/admin/clients/{id}/secret")),
    ] {
        let body = (method == Method::POST || method == Method::PATCH).then(grafana);
        let response = call(&app, method.clone(), &path, &user, body.clone()).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        let response = app.request(method.clone(), &path, None, body).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    ok_json(app.get(&format!("/v1/admin/clients/{id}"), &admin).await).await;
}

/// An Argon2id PHC string, as an operator puts it in `CLIENTS_FILE`.
const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQxMjM0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

fn clients_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join("clients.toml");
    let text = format!(
        r#"
        [[client]]
        client_id = "grafana"
        name = "{name}"
        redirect_uris = ["https://grafana.example.com/login/generic_oauth"]
        client_secret_hash = "{PHC}"

        [[client]]
        client_id = "spa"
        name = "SPA"
        type = "public"
        redirect_uris = ["https://spa.example.com/cb"]
        "#
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn clients_file_clients_are_put_at_every_start_and_the_api_leaves_them_alone() {
    let (storage, _owner) = common::new_storage().await;
    let dir = tempfile::tempdir().unwrap();
    let path = clients_file(dir.path(), "Grafana");
    let file = path.display().to_string();
    let vars = [("PORTCULLIS_CLIENTS_FILE", file.as_str())];
    let mut app = common::spawn_in(&storage, &vars).await;
    let token = admin_token(&app).await;
    let from_file = ok_json(app.get("/v1/admin/clients/grafana", &token).await).await;
    assert_eq!(from_file["name"], "Grafana");
    assert_eq!(from_file["type"], "confidential");
    let spa = ok_json(app.get("/v1/admin/clients/spa", &token).await).await;
    assert_eq!(spa["type"], "public");
    for (method, path, body) in [
        (Method::PATCH, "/v1/admin/clients/grafana", Some(json!({"name": "changed"}))),
        (Method::POST, "/v1/admin/clients/grafana/secret", None),
        (Method::DELETE, "/v1/admin/clients/spa", None),
    ] {
        let response = call(&app, method, path, &token, body).await;
        assert_problem(response, StatusCode::CONFLICT, "conflict").await;
    }
    let api_client = register_client(&app, &token, grafana()).await;
    app.stop().await;

    // The file changed: the next start updates its client and keeps when it was created.
    clients_file(dir.path(), "Grafana (prod)");
    let mut app = common::spawn_in(&storage, &vars).await;
    let token =
        str_of(&app.logged_in("root@example.com", PASSWORD).await, "access_token").to_owned();
    let updated = ok_json(app.get("/v1/admin/clients/grafana", &token).await).await;
    assert_eq!(updated["name"], "Grafana (prod)");
    assert_eq!(updated["created_at"], from_file["created_at"]);
    app.stop().await;

    // A file may not take over a client made through the API, nor hold a weak entry.
    let id = str_of(&api_client, "client_id");
    for text in [
        format!("[[client]]\nclient_id = \"{id}\"\nname = \"x\"\ntype = \"public\"\nredirect_uris = [\"https://a.example/cb\"]"),
        "[[client]]\nclient_id = \"c\"\nname = \"x\"\nredirect_uris = [\"https://a.example/cb\"]".to_owned(),
        "[[client]]\nclient_id = \"c\"\nname = \"x\"\nredirect_uris = [\"https://a.example/cb\"]\nclient_secret_hash = \"plain\"".to_owned(),
        "[[client]]\nclient_id = \"c\"\nname = \"x\"\nredirect_uris = [\"javascript:alert(1)\"]\ntype = \"public\"".to_owned(),
    ] {
        std::fs::write(&path, &text).unwrap();
        let settings = common::settings_for(&storage, &vars);
        let error = portcullis::startup::Application::build(settings, true).await.err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("PORTCULLIS_CLIENTS_FILE"), "{text}: {message}");
    }
}
