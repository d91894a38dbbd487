//! The endpoints where an OAuth client authenticates: `client_credentials` at
//! `/oauth2/token`, and introspection, over HTTP as a client sends them, and through Authlib
//! (`tests/oauth/client_credentials.py`), a relying-party library as teams use it.

use crate::common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{PASSWORD, TestApp, ok_json, spawn, spawn_with, str_of};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

async fn admin_token(app: &TestApp) -> String {
    common::create_admin(app, "root@example.com").await;
    str_of(&app.logged_in("root@example.com", PASSWORD).await, "access_token").to_owned()
}

/// A client registered by the admin API, and its secret (none for a public one).
async fn register(app: &TestApp, admin: &str, body: Value) -> (String, Option<String>) {
    let response = app.request(Method::POST, "/v1/admin/clients", Some(admin), Some(body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let client: Value = response.json().await.unwrap();
    let secret = client["client_secret"].as_str().map(str::to_owned);
    (str_of(&client, "client_id").to_owned(), secret)
}

/// A confidential client with the `client_credentials` grant and two scopes of its own.
async fn billing(app: &TestApp, admin: &str) -> (String, String) {
    let body = json!({
        "name": "Billing worker",
        "grant_types": ["client_credentials"],
        "scopes": ["billing:read", "billing:write", "openid"],
    });
    let (id, secret) = register(app, admin, body).await;
    (id, secret.unwrap())
}

fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(id), encode(secret))))
}

async fn form(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
    body: &[(&str, &str)],
) -> Response {
    let mut request = app.client.post(app.url(path)).form(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// An RFC 6749 error: its status, `error` code, `Cache-Control: no-store` and a description.
async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    if status == StatusCode::UNAUTHORIZED {
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Basic"), "{challenge}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_confidential_client_gets_a_token_of_its_own_that_never_opens_the_account_api() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let grant = [("grant_type", "client_credentials")];
    let response = form(&app, "/oauth2/token", Some(&basic(&id, &secret)), &grant).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 900);
    assert_eq!(answer["scope"], "billing:read billing:write", "a user's scopes are left out");
    assert!(answer.get("refresh_token").is_none() && answer.get("id_token").is_none());
    let token = str_of(&answer, "access_token");
    let claims = claims(token);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "billing:read billing:write");
    for absent in ["sid", "auth_time", "amr", "roles"] {
        assert!(claims.get(absent).is_none(), "no user, so no {absent}: {claims}");
    }
    for path in ["/v1/auth/me", "/v1/auth/sessions", "/v1/admin/users"] {
        assert_eq!(app.get(path, token).await.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // The secret in the body instead, narrowing the scope.
    let body = [
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("scope", "billing:read"),
    ];
    let answer = ok_json(form(&app, "/oauth2/token", None, &body).await).await;
    assert_eq!(answer["scope"], "billing:read");
}

#[tokio::test]
async fn a_failed_client_authentication_answers_invalid_client_with_a_basic_challenge() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let public =
        json!({"name": "SPA", "type": "public", "redirect_uris": ["https://spa.example.com/cb"]});
    let (spa, _) = register(&app, &admin, public).await;
    let grant = [("grant_type", "client_credentials")];
    let wrong = format!("{secret}x");
    for authorization in [
        basic(&id, &wrong),
        basic("no-such-client", &secret),
        basic(&id, ""),
        basic(&spa, "a-secret-a-public-client-never-has"),
        "Basic not-base64!".to_owned(),
        format!("Bearer {secret}"),
    ] {
        let response = form(&app, "/oauth2/token", Some(&authorization), &grant).await;
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let none = form(&app, "/oauth2/token", None, &grant).await;
    assert_oauth_error(none, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let too_long = "s".repeat(10_000);
    let response = form(&app, "/oauth2/token", Some(&basic(&id, &too_long)), &grant).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Two methods at once, a repeated parameter, a body that is not a form: invalid_request.
    let both = [("grant_type", "client_credentials"), ("client_secret", secret.as_str())];
    let response = form(&app, "/oauth2/token", Some(&basic(&id, &secret)), &both).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .client
        .post(app.url("/oauth2/token"))
        .header("authorization", basic(&id, &secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=billing%3Aread&scope=billing%3Awrite")
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .client
        .post(app.url("/oauth2/token"))
        .header("authorization", basic(&id, &secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A method the endpoint does not have: still an RFC 6749 object, not problem details.
    let response = app.client.get(app.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
}

#[tokio::test]
async fn grants_and_scopes_the_client_was_not_given_are_refused() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let auth = basic(&id, &secret);
    for (scope, error) in [
        ("openid", "invalid_scope"),
        ("billing:read offline_access", "invalid_scope"),
        ("billing:admin", "invalid_scope"),
        ("billing:read  billing:write", "invalid_scope"),
    ] {
        let body = [("grant_type", "client_credentials"), ("scope", scope)];
        let response = form(&app, "/oauth2/token", Some(&auth), &body).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, error).await;
    }
    for (grant, error) in [
        ("password", "unsupported_grant_type"),
        ("urn:ietf:params:oauth:grant-type:device_code", "unsupported_grant_type"),
    ] {
        let response = form(&app, "/oauth2/token", Some(&auth), &[("grant_type", grant)]).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, error).await;
    }
    let response = form(&app, "/oauth2/token", Some(&auth), &[("scope", "billing:read")]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    // A client registered with the default grants may not act for itself.
    let web = json!({"name": "Web", "redirect_uris": ["https://app.example.com/cb"]});
    let (web, web_secret) = register(&app, &admin, web).await;
    let grant = [("grant_type", "client_credentials")];
    let response =
        form(&app, "/oauth2/token", Some(&basic(&web, &web_secret.unwrap())), &grant).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn a_rotated_secret_keeps_working_only_for_its_overlap() {
    let clock = std::sync::Arc::new(portcullis::domain::ManualClock::new());
    let app = common::spawn_with_clock(&[], clock.clone()).await;
    let admin = admin_token(&app).await;
    let (id, old) = billing(&app, &admin).await;
    let rotate = |body: Option<Value>| {
        let (app, admin, path) = (&app, &admin, format!("/v1/admin/clients/{id}/secret"));
        async move {
            let response = app.request(Method::POST, &path, Some(admin), body).await;
            str_of(&ok_json(response).await, "client_secret").to_owned()
        }
    };
    let grant = [("grant_type", "client_credentials")];
    let status = |secret: String| {
        let (app, id, grant) = (&app, &id, &grant);
        async move { form(app, "/oauth2/token", Some(&basic(id, &secret)), grant).await.status() }
    };
    let new = rotate(Some(json!({"keep_previous_for": "1h"}))).await;
    assert_eq!(status(new.clone()).await, StatusCode::OK);
    assert_eq!(status(old.clone()).await, StatusCode::OK, "within the overlap");
    clock.advance(Duration::from_secs(3_601));
    assert_eq!(status(old.clone()).await, StatusCode::UNAUTHORIZED, "past the overlap");
    assert_eq!(status(new.clone()).await, StatusCode::OK);
    let newest = rotate(None).await;
    assert_eq!(status(new).await, StatusCode::UNAUTHORIZED, "no overlap asked: at once");
    assert_eq!(status(newest).await, StatusCode::OK);
}

#[tokio::test]
async fn introspection_reports_live_tokens_only_to_confidential_clients() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let auth = basic(&id, &secret);
    let issued = form(&app, "/oauth2/token", Some(&auth), &[("grant_type", "client_credentials")]);
    let own = ok_json(issued.await).await;
    let introspect = |token: String| {
        let (app, auth) = (&app, &auth);
        async move {
            let body = [("token", token.as_str()), ("token_type_hint", "access_token")];
            let response = form(app, "/oauth2/introspect", Some(auth), &body).await;
            assert_eq!(response.headers()["cache-control"], "no-store");
            ok_json(response).await
        }
    };
    let answer = introspect(str_of(&own, "access_token").to_owned()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], id.as_str());
    assert_eq!(answer["sub"], id.as_str());
    assert_eq!(answer["scope"], "billing:read billing:write");
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer["exp"].is_i64() && answer["iat"].is_i64() && answer["iss"].is_string());
    assert!(answer.get("sid").is_none(), "{answer}");

    // A user's token is live while its session is.
    let pair = app.signed_in("ada@example.com").await;
    let access = str_of(&pair, "access_token").to_owned();
    let answer = introspect(access.clone()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert!(answer["sid"].is_string() && answer["sub"].is_string(), "{answer}");
    let logout = app.request(Method::POST, "/v1/auth/logout", Some(&access), Some(json!({}))).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(access).await, json!({"active": false}), "its session ended");

    for junk in ["", "not-a-token", "a.b.c", &"x".repeat(5_000)] {
        let body = [("token", junk)];
        let response = form(&app, "/oauth2/introspect", Some(&auth), &body).await;
        if junk.is_empty() {
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        } else {
            assert_eq!(ok_json(response).await, json!({"active": false}));
        }
    }

    // A client's own token ends with its client.
    let resource = json!({"name": "API", "redirect_uris": ["https://api.example.com/cb"]});
    let (resource, resource_secret) = register(&app, &admin, resource).await;
    let resource = basic(&resource, &resource_secret.unwrap());
    let body = [("token", str_of(&own, "access_token"))];
    let answer = ok_json(form(&app, "/oauth2/introspect", Some(&resource), &body).await).await;
    assert_eq!(answer["active"], true, "{answer}");
    let path = format!("/v1/admin/clients/{id}");
    let deleted = app.request(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let answer = ok_json(form(&app, "/oauth2/introspect", Some(&resource), &body).await).await;
    assert_eq!(answer, json!({"active": false}), "its client is gone");
    let public =
        json!({"name": "SPA", "type": "public", "redirect_uris": ["https://spa.example.com/cb"]});
    let (spa, _) = register(&app, &admin, public).await;
    let body = [("token", str_of(&own, "access_token")), ("client_id", spa.as_str())];
    let response = form(&app, "/oauth2/introspect", None, &body).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_client_over_its_budget_is_refused_with_retry_after() {
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_CLIENT", "3/min")]).await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let grant = [("grant_type", "client_credentials")];
    // A stranger's failures spend the stranger's address budget, never the client's.
    for _ in 0..5 {
        let response = form(&app, "/oauth2/token", Some(&basic(&id, "guess")), &grant).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..3 {
        let response = form(&app, "/oauth2/token", Some(&basic(&id, &secret)), &grant).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = form(&app, "/oauth2/token", Some(&basic(&id, &secret)), &grant).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_oauth_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// A server whose `CLIENTS_FILE` holds one `client_credentials` client, `client_id`, with an
/// Argon2id hash of its secret; the server, the secret and the file's directory.
async fn with_file_client(client_id: &str) -> (TestApp, &'static str, tempfile::TempDir) {
    use argon2::PasswordHasher;
    let secret = "a-file-secret-of-at-least-thirty-two-characters";
    let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHQxMjM0").unwrap();
    let phc =
        argon2::Argon2::default().hash_password(secret.as_bytes(), &salt).unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.toml");
    let text = format!(
        r#"
        [[client]]
        client_id = "{client_id}"
        name = "Reports"
        grant_types = ["client_credentials"]
        scopes = ["reports:read"]
        client_secret_hash = "{phc}"
        "#
    );
    std::fs::write(&path, text).unwrap();
    let file = path.display().to_string();
    (spawn_with(&[("PORTCULLIS_CLIENTS_FILE", file.as_str())]).await, secret, dir)
}

#[tokio::test]
async fn a_clients_file_client_authenticates_with_its_argon2id_secret() {
    let (app, secret, _dir) = with_file_client("reports").await;
    let grant = [("grant_type", "client_credentials")];
    let answer =
        ok_json(form(&app, "/oauth2/token", Some(&basic("reports", secret)), &grant).await).await;
    assert_eq!(answer["scope"], "reports:read");
    let wrong = basic("reports", &format!("{secret}!"));
    let response = form(&app, "/oauth2/token", Some(&wrong), &grant).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn both_discovery_paths_name_the_token_and_introspection_endpoints() {
    let app = spawn().await;
    let openid: Value =
        ok_json(app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap())
            .await;
    let rfc8414: Value = ok_json(
        app.client.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap(),
    )
    .await;
    assert_eq!(openid, rfc8414);
    let issuer = str_of(&openid, "issuer");
    assert_eq!(openid["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(openid["introspection_endpoint"], format!("{issuer}/oauth2/introspect"));
    assert_eq!(openid["pushed_authorization_request_endpoint"], format!("{issuer}/oauth2/par"));
    assert_eq!(openid["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        openid["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert!(
        openid["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials"))
    );
}

/// Authlib, as a backend service would use it: the token with either authentication method,
/// then introspection, against the endpoints the discovery document names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_fetches_a_client_credentials_token_and_introspects_it() {
    if !common::python_has("authlib requests", "the Authlib client") {
        return;
    }
    // The issuer is the service's URL, as the discovery document's addresses are built from it.
    let address = common::free_port();
    let issuer = format!("http://{address}");
    let app =
        spawn_with(&[("PORTCULLIS_BIND", &address.to_string()), ("PORTCULLIS_ISSUER", &issuer)])
            .await;
    let admin = admin_token(&app).await;
    let (id, secret) = billing(&app, &admin).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/client_credentials.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &app.url(""), &id, &secret])
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["basic"]["scope"], "billing:read billing:write");
    assert_eq!(report["post"]["scope"], "billing:read");
    assert_eq!(report["introspection"]["active"], true);
    assert_eq!(report["introspection"]["client_id"], id.as_str());
    assert_eq!(report["wrong_secret"], "invalid_client");
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[tokio::test]
async fn a_pushed_request_is_checked_as_an_authorization_and_answered_with_a_request_uri() {
    let app = spawn().await;
    let admin = admin_token(&app).await;
    let web = json!({"name": "Web", "redirect_uris": ["https://app.example.com/cb"]});
    let (web, secret) = register(&app, &admin, web).await;
    let auth = basic(&web, &secret.unwrap());
    let request = |extra: &[(&'static str, &'static str)]| {
        let mut body: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("redirect_uri", "https://app.example.com/cb"),
            ("scope", "openid email"),
            ("state", "af0ifjsldkj"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (name, value) in extra {
            body.retain(|(n, _)| n != name);
            if !value.is_empty() {
                body.push((name, value));
            }
        }
        body
    };
    let response = form(&app, "/oauth2/par", Some(&auth), &request(&[])).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pushed: Value = response.json().await.unwrap();
    let uri = str_of(&pushed, "request_uri");
    let secret = uri.strip_prefix("urn:ietf:params:oauth:request_uri:").unwrap();
    assert!(secret.len() >= 43, "256 random bits: {uri}");
    assert_eq!(pushed["expires_in"], 60);
    let again = ok_json_created(form(&app, "/oauth2/par", Some(&auth), &request(&[])).await).await;
    assert_ne!(again["request_uri"], pushed["request_uri"], "each push its own");

    for (extra, status, error) in [
        (&[("redirect_uri", "https://evil.example/cb")][..], 400, "invalid_request"),
        (&[("redirect_uri", "")][..], 400, "invalid_request"),
        (&[("response_type", "token")][..], 400, "unsupported_response_type"),
        (&[("scope", "openid billing:read")][..], 400, "invalid_scope"),
        (&[("code_challenge", "")][..], 400, "invalid_request"),
        (&[("code_challenge_method", "plain")][..], 400, "invalid_request"),
        (&[("prompt", "none consent")][..], 400, "invalid_request"),
        (&[("request_uri", "urn:ietf:params:oauth:request_uri:abc")][..], 400, "invalid_request"),
        (&[("request", "eyJhbGciOiJub25lIn0.e30.")][..], 400, "request_not_supported"),
    ] {
        let response = form(&app, "/oauth2/par", Some(&auth), &request(extra)).await;
        assert_oauth_error(response, StatusCode::from_u16(status).unwrap(), error).await;
    }
    let wrong = basic(&web, "not-the-secret");
    let response = form(&app, "/oauth2/par", Some(&wrong), &request(&[])).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // A public client pushes with its id alone, and always with PKCE.
    let spa = json!({"name": "SPA", "type": "public", "redirect_uris": ["http://127.0.0.1/cb"]});
    let (spa, _) = register(&app, &admin, spa).await;
    let mut body = request(&[("redirect_uri", "http://127.0.0.1:49152/cb")]);
    body.push(("client_id", spa.as_str()));
    let response = form(&app, "/oauth2/par", None, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "RFC 8252: any loopback port");
    let mut body = request(&[
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("code_challenge", ""),
        ("code_challenge_method", ""),
    ]);
    body.push(("client_id", spa.as_str()));
    let response = form(&app, "/oauth2/par", None, &body).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    // A client that only acts for itself may not start an authorization.
    let worker = json!({
        "name": "Worker",
        "grant_types": ["client_credentials"],
        "redirect_uris": ["https://app.example.com/cb"],
    });
    let (worker, worker_secret) = register(&app, &admin, worker).await;
    let worker = basic(&worker, &worker_secret.unwrap());
    let response = form(&app, "/oauth2/par", Some(&worker), &request(&[])).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

async fn ok_json_created(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// A client registered under the first party's own id (`CLIENT_ID`) still cannot open the
/// account API: its tokens carry a scope, which first-party tokens never do.
#[tokio::test]
async fn a_client_under_the_first_partys_id_gets_no_first_party_token() {
    let (app, secret, _dir) = with_file_client("portcullis").await;
    let grant = [("grant_type", "client_credentials")];
    let answer =
        ok_json(form(&app, "/oauth2/token", Some(&basic("portcullis", secret)), &grant).await)
            .await;
    let token = str_of(&answer, "access_token");
    assert_eq!(claims(token)["client_id"], "portcullis");
    for path in ["/v1/auth/me", "/v1/admin/users"] {
        assert_eq!(app.get(path, token).await.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}
