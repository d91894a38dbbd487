//! Account administration over HTTP and on the command line: the admin user object, listing in
//! pages (newest first, email prefix, a cursor that holds under concurrent inserts), creation
//! with and without a password, role changes that apply to existing tokens at once, disabling
//! (sessions, refresh tokens, password, reset links, a pending second step, passkeys; on every
//! instance), enabling, deletion, revoking every session, the rules an admin cannot break on
//! itself, the audit trail of each action with its actor, and `user list / disable / enable /
//! delete` against a running server.

use crate::common;
use crate::common::passkey;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::smtp::{SinkOptions, SmtpSink, link_token};
use common::totp::{base32_decode, code_at};
use common::{
    PASSWORD, TestApp, TestResult, assert_problem, create_admin, ok_json, spawn, spawn_in,
    spawn_with, spawn_with_clock, str_of,
};
use portcullis::domain::{Clock, ManualClock};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const WRONG: &str = "Wrong-Horse-42";
const NEW_PASSWORD: &str = "Brand-New-Horse-77";
const ROOT: &str = "root@example.com";
const RESET: &str = "http://localhost:8080/reset-password?token=";
const ORIGIN: &str = "http://localhost:8080";
const WAIT: Duration = Duration::from_secs(10);

/// The members of the admin user object, and no others.
const ADMIN_KEYS: [&str; 11] = [
    "id",
    "email",
    "created_at",
    "roles",
    "email_verified",
    "mfa",
    "disabled",
    "locked_until",
    "last_login_at",
    "sessions",
    "name",
];

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A signed-in admin: its access token and user id.
struct Admin {
    token: String,
    id: String,
}

/// Creates an admin on the command line and logs it in.
async fn admin_named(app: &TestApp, email: &str) -> Admin {
    create_admin(app, email).await;
    let pair = app.logged_in(email, PASSWORD).await;
    let token = str_of(&pair, "access_token").to_owned();
    let id = user_id(app, &token).await;
    Admin { token, id }
}

async fn root(app: &TestApp) -> Admin {
    admin_named(app, ROOT).await
}

/// The id of the signed-in user of `access`.
async fn user_id(app: &TestApp, access: &str) -> String {
    str_of(&ok_json(app.get("/v1/auth/me", access).await).await, "id").to_owned()
}

/// Registers `email` with the test password; returns its user object.
async fn registered(app: &TestApp, email: &str) -> Value {
    let response = app.register(email, PASSWORD).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{email}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    app.request(method, path, token, body).await
}

fn user_path(id: &str) -> String {
    format!("/v1/admin/users/{id}")
}

async fn get_user_response(app: &TestApp, admin: &Admin, id: &str) -> Response {
    app.get(&user_path(id), &admin.token).await
}

/// GET /v1/admin/users/{id}: asserts 200 and the exact members of the admin user object.
async fn admin_user(app: &TestApp, admin: &Admin, id: &str) -> Value {
    let user = ok_json(get_user_response(app, admin, id).await).await;
    assert_admin_object(&user);
    user
}

fn assert_admin_object(user: &Value) {
    let keys: HashSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: HashSet<&str> = ADMIN_KEYS.into_iter().collect();
    assert_eq!(keys, expected, "the admin user object: {user}");
    assert!(user["id"].is_string() && user["email"].is_string(), "{user}");
    assert!(user["roles"].is_array() && user["mfa"].is_array(), "{user}");
    assert!(user["email_verified"].is_boolean() && user["disabled"].is_boolean(), "{user}");
    assert!(user["sessions"].is_u64(), "{user}");
    time_of(&user["created_at"]);
    for key in ["locked_until", "last_login_at"] {
        if !user[key].is_null() {
            time_of(&user[key]);
        }
    }
}

async fn patch(app: &TestApp, admin: &Admin, id: &str, body: Value) -> Response {
    call(app, Method::PATCH, &user_path(id), Some(&admin.token), Some(body)).await
}

/// PATCH that must succeed; returns the admin user object it answers.
async fn patched(app: &TestApp, admin: &Admin, id: &str, body: Value) -> Value {
    let user = ok_json(patch(app, admin, id, body).await).await;
    assert_admin_object(&user);
    user
}

async fn disable(app: &TestApp, admin: &Admin, id: &str) -> Value {
    let user = patched(app, admin, id, json!({"disabled": true})).await;
    assert_eq!(user["disabled"], true, "{user}");
    user
}

async fn enable(app: &TestApp, admin: &Admin, id: &str) -> Value {
    let user = patched(app, admin, id, json!({"disabled": false})).await;
    assert_eq!(user["disabled"], false, "{user}");
    user
}

async fn delete_user(app: &TestApp, admin: &Admin, id: &str) -> Response {
    call(app, Method::DELETE, &user_path(id), Some(&admin.token), None).await
}

async fn revoke_sessions(app: &TestApp, admin: &Admin, id: &str) -> Response {
    let path = format!("/v1/admin/users/{id}/sessions");
    call(app, Method::DELETE, &path, Some(&admin.token), None).await
}

async fn create_user(app: &TestApp, admin: &Admin, body: Value) -> Response {
    call(app, Method::POST, "/v1/admin/users", Some(&admin.token), Some(body)).await
}

/// POST /v1/admin/users that must answer 201; returns the admin user object.
async fn created_user(app: &TestApp, admin: &Admin, body: Value) -> Value {
    let response = create_user(app, admin, body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "body: {text}");
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_admin_object(&user);
    user
}

/// One page of GET /v1/admin/users with `query`.
async fn list_page(app: &TestApp, token: &str, query: &str) -> Value {
    let page = ok_json(app.get(&format!("/v1/admin/users?{query}"), token).await).await;
    assert!(page["users"].is_array(), "{page}");
    assert!(page["next_cursor"].is_null() || page["next_cursor"].is_string(), "{page}");
    page
}

fn users_of(page: &Value) -> Vec<Value> {
    page["users"].as_array().unwrap().clone()
}

/// Every user GET /v1/admin/users lists with `query` (which must not hold a cursor), following
/// the cursor page by page; asserts that no page is larger than `limit`.
async fn list_all(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let first = joined(query, &format!("limit={limit}"));
    let mut path = first.clone();
    for _ in 0..1000 {
        let page = list_page(app, token, &path).await;
        let users = users_of(&page);
        assert!(users.len() <= limit, "a page of {} with limit {limit}", users.len());
        all.extend(users);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{first}&cursor={cursor}"),
            None => return all,
        }
    }
    panic!("the cursor never ended");
}

/// Two query strings, either possibly empty, as one.
fn joined(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}&{b}"),
    }
}

fn ids(users: &[Value]) -> Vec<String> {
    users.iter().map(|u| str_of(u, "id").to_owned()).collect()
}

fn emails(users: &[Value]) -> Vec<String> {
    users.iter().map(|u| str_of(u, "email").to_owned()).collect()
}

fn time_of(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("an RFC 3339 time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
        .with_timezone(&chrono::Utc)
}

fn strings(value: &Value) -> Vec<String> {
    let items = value.as_array().unwrap_or_else(|| panic!("an array: {value}"));
    let mut out: Vec<String> = items.iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

fn roles(user: &Value) -> Vec<String> {
    strings(&user["roles"])
}

/// The whole audit trail (or the part `query` selects), newest first.
async fn trail(app: &TestApp, admin: &Admin, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let first = format!("/v1/admin/audit?{}", joined("limit=200", query));
    let mut path = first.clone();
    loop {
        let page = ok_json(app.get(&path, &admin.token).await).await;
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{first}&cursor={cursor}"),
            None => return all,
        }
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| str_of(e, "type").to_owned()).collect()
}

/// A server whose use cases read a manual clock, with a JWT leeway that covers the minutes the
/// tests move it forward (access tokens are checked against the system clock).
async fn clocked(vars: &[(&str, &str)]) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let mut all = vec![("PORTCULLIS_JWT_LEEWAY", "30m")];
    all.extend_from_slice(vars);
    (spawn_with_clock(&all, clock.clone()).await, clock)
}

/// A server that mails through a sink, without verification mail.
async fn app_with_sink() -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let url = format!("smtp://{}", sink.address);
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str()), ("PORTCULLIS_EMAIL_VERIFICATION", "off")];
    (spawn_with(&vars).await, sink)
}

/// The reset tokens mailed to `to` so far, oldest first, once there are `count` (at most
/// `WAIT`).
async fn reset_tokens(sink: &SmtpSink, to: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let tokens: Vec<String> = sink
            .received()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .filter_map(|m| link_token(&m.data, RESET))
            .collect();
        if tokens.len() >= count || Instant::now() >= deadline {
            assert!(tokens.len() >= count, "{count} reset links to {to}, got {}", tokens.len());
            return tokens;
        }
        sink.wait_for(sink.received().len() + 1, Duration::from_millis(500)).await;
    }
}

async fn forgot(app: &TestApp, email: &str) {
    let response = app.post("/v1/auth/password/forgot", json!({"email": email})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn reset(app: &TestApp, token: &str, new_password: &str) -> Response {
    app.post("/v1/auth/password/reset", json!({"token": token, "new_password": new_password})).await
}

/// The binary on the app's storage, its output captured.
async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_clear()
        .envs(app.storage.env())
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// TOTP (RFC 6238, SHA-1, 6 digits, 30 s), computed from the server's manual clock.

/// The code of the clock's current step, after moving the clock one step on (so that no code
/// is ever presented twice for one step).
fn next_code(secret: &[u8], clock: &ManualClock) -> String {
    clock.advance(Duration::from_secs(30));
    code_at(secret, clock.now().timestamp())
}

/// Turns TOTP on for the signed-in user of `access`; returns the secret.
async fn enable_totp(app: &TestApp, clock: &ManualClock, access: &str) -> Vec<u8> {
    let body = json!({"password": PASSWORD});
    let enrolment = call(app, Method::POST, "/v1/auth/mfa/totp", Some(access), Some(body)).await;
    let enrolment = ok_json(enrolment).await;
    let secret = base32_decode(str_of(&enrolment, "secret")).unwrap();
    let body = json!({"code": next_code(&secret, clock)});
    let confirm = call(app, Method::POST, "/v1/auth/mfa/totp/confirm", Some(access), Some(body));
    ok_json(confirm.await).await;
    secret
}

/// The password step of an account with TOTP: returns the `mfa_token`.
async fn mfa_token(app: &TestApp, email: &str) -> String {
    let body =
        assert_problem(app.login(email, PASSWORD).await, StatusCode::UNAUTHORIZED, "mfa_required")
            .await;
    let token = str_of(&body, "mfa_token").to_owned();
    assert!(!token.is_empty(), "{body}");
    token
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    app.post("/v1/auth/login/mfa", json!({"mfa_token": mfa_token, "code": code})).await
}

// Passkeys, with the software authenticator.

const RP: [(&str, &str); 2] =
    [("PORTCULLIS_WEBAUTHN_RP_ID", "localhost"), ("PORTCULLIS_WEBAUTHN_ORIGINS", ORIGIN)];

/// Registers a passkey of `authenticator` for the signed-in user of `access`.
async fn add_passkey(app: &TestApp, access: &str, authenticator: &mut passkey::Authenticator) {
    let path = "/v1/auth/passkeys/register/options";
    let options = ok_json(call(app, Method::POST, path, Some(access), None).await).await;
    let credential = authenticator.register(&options["publicKey"], ORIGIN);
    let body = json!({"challenge_id": options["challenge_id"], "credential": credential});
    let response = call(app, Method::POST, "/v1/auth/passkeys", Some(access), Some(body)).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "body: {text}");
}

/// A discoverable passkey login with an honest assertion.
async fn passkey_login(app: &TestApp, authenticator: &mut passkey::Authenticator) -> Response {
    let path = "/v1/auth/passkeys/login/options";
    let options = ok_json(call(app, Method::POST, path, None, None).await).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    let body = json!({"challenge_id": options["challenge_id"], "credential": credential});
    app.post("/v1/auth/passkeys/login", body).await
}

// ---------------------------------------------------------------------------------------------
// The admin user object.

#[tokio::test]
async fn the_admin_user_object_shows_sessions_last_login_and_the_current_lock() -> TestResult {
    let (app, clock) = clocked(&[]).await;
    let admin = root(&app).await;
    let user = registered(&app, "Ada@Example.com").await;
    let id = str_of(&user, "id").to_owned();

    let fresh = admin_user(&app, &admin, &id).await;
    assert_eq!(fresh["id"], id.as_str());
    assert_eq!(fresh["email"], "ada@example.com");
    assert_eq!(time_of(&fresh["created_at"]), time_of(&user["created_at"]));
    assert_eq!(roles(&fresh), ["user"]);
    assert_eq!(fresh["email_verified"], false);
    assert_eq!(fresh["mfa"], json!([]));
    assert_eq!(fresh["disabled"], false);
    assert_eq!(fresh["locked_until"], Value::Null);
    assert_eq!(fresh["last_login_at"], Value::Null, "registration is no login");
    assert_eq!(fresh["sessions"], 0, "registration creates no session");

    let first = app.logged_in("ada@example.com", PASSWORD).await;
    clock.advance(Duration::from_secs(5));
    let second = app.logged_in("ada@example.com", PASSWORD).await;
    let logged_in_at = clock.now();
    let seen = admin_user(&app, &admin, &id).await;
    assert_eq!(seen["sessions"], 2, "{seen}");
    assert_eq!(time_of(&seen["last_login_at"]), logged_in_at, "the latest login: {seen}");
    let me = ok_json(app.get("/v1/auth/me", str_of(&second, "access_token")).await).await;
    for key in ["id", "email", "roles", "email_verified", "mfa"] {
        assert_eq!(seen[key], me[key], "{key}: the user object's value");
    }
    assert_eq!(time_of(&seen["created_at"]), time_of(&me["created_at"]));

    let first_token = str_of(&first, "access_token");
    let logout = call(&app, Method::POST, "/v1/auth/logout", Some(first_token), None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(admin_user(&app, &admin, &id).await["sessions"], 1, "only live sessions count");

    // Five wrong passwords lock the email for 15 minutes from the fifth; the failures are no
    // logins.
    for _ in 0..5 {
        let wrong = app.login("ada@example.com", WRONG).await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let locked = app.login("ada@example.com", PASSWORD).await;
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    let seen = admin_user(&app, &admin, &id).await;
    assert_eq!(time_of(&seen["locked_until"]), clock.now() + chrono::Duration::minutes(15));
    assert_eq!(time_of(&seen["last_login_at"]), logged_in_at, "{seen}");
    assert_eq!(seen["sessions"], 1);

    clock.advance(Duration::from_secs(15 * 60 + 1));
    let after = admin_user(&app, &admin, &id).await;
    assert_eq!(after["locked_until"], Value::Null, "the lock is over: {after}");
    Ok(())
}

#[tokio::test]
async fn an_unknown_or_malformed_id_is_not_found_on_every_route() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid", "42"] {
        assert_problem(
            get_user_response(&app, &admin, id).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let response = patch(&app, &admin, id, json!({"disabled": true})).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
        assert_problem(delete_user(&app, &admin, id).await, StatusCode::NOT_FOUND, "not_found")
            .await;
        assert_problem(revoke_sessions(&app, &admin, id).await, StatusCode::NOT_FOUND, "not_found")
            .await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Who may use the routes.

#[tokio::test]
async fn every_users_route_needs_a_token_and_the_admin_role_and_a_refusal_changes_nothing()
-> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let victim = app.signed_in("vic@example.com").await;
    let victim_id = user_id(&app, str_of(&victim, "access_token")).await;
    let mallory = app.signed_in("mallory@example.com").await;
    let mallory_token = str_of(&mallory, "access_token");
    let user = user_path(&victim_id);
    let sessions = format!("{user}/sessions");
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/users", None),
        (Method::POST, "/v1/admin/users", Some(json!({"email": "new@example.com"}))),
        (Method::GET, &user, None),
        (Method::PATCH, &user, Some(json!({"disabled": true, "roles": ["admin"]}))),
        (Method::DELETE, &user, None),
        (Method::DELETE, &sessions, None),
    ];
    for (method, path, body) in &routes {
        let anonymous = call(&app, method.clone(), path, None, body.clone()).await;
        let challenge = anonymous.headers().get("www-authenticate").cloned();
        assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let challenge = challenge.unwrap_or_else(|| panic!("{method} {path}: no WWW-Authenticate"));
        assert!(challenge.to_str()?.starts_with("Bearer"), "{method} {path}: {challenge:?}");
        let garbage = call(&app, method.clone(), path, Some("not.a.token"), body.clone()).await;
        assert_problem(garbage, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let as_user = call(&app, method.clone(), path, Some(mallory_token), body.clone()).await;
        assert_problem(as_user, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Nothing happened: the victim is there, enabled, a plain user, signed in; nobody was made.
    let seen = admin_user(&app, &admin, &victim_id).await;
    assert_eq!(seen["disabled"], false);
    assert_eq!(roles(&seen), ["user"]);
    assert_eq!(seen["sessions"], 1);
    assert_eq!(
        app.get("/v1/auth/me", str_of(&victim, "access_token")).await.status(),
        StatusCode::OK
    );
    let all = list_all(&app, &admin.token, "", 200).await;
    assert!(!emails(&all).contains(&"new@example.com".to_owned()), "{all:?}");
    Ok(())
}

#[tokio::test]
async fn a_promotion_and_a_demotion_apply_to_existing_tokens_at_once() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let pair = app.signed_in("pat@example.com").await;
    let token = str_of(&pair, "access_token");
    let id = user_id(&app, token).await;
    assert_problem(app.get("/v1/admin/users", token).await, StatusCode::FORBIDDEN, "forbidden")
        .await;

    let promoted = patched(&app, &admin, &id, json!({"roles": ["admin"]})).await;
    assert_eq!(roles(&promoted), ["admin", "user"], "user is always kept");
    ok_json(app.get("/v1/admin/users", token).await).await;
    let pat = Admin { token: token.to_owned(), id: id.clone() };
    assert_eq!(admin_user(&app, &pat, &admin.id).await["email"], ROOT);

    // Demoted by another admin, its old token (still valid) opens no admin route.
    let demoted = patched(&app, &admin, &id, json!({"roles": ["user"]})).await;
    assert_eq!(roles(&demoted), ["user"]);
    let root_path = user_path(&admin.id);
    let root_sessions = format!("{root_path}/sessions");
    let unlock = format!("{root_path}/unlock");
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/users", None),
        (Method::POST, "/v1/admin/users", Some(json!({"email": "sneaky@example.com"}))),
        (Method::GET, &root_path, None),
        (Method::PATCH, &root_path, Some(json!({"disabled": true}))),
        (Method::DELETE, &root_path, None),
        (Method::DELETE, &root_sessions, None),
        (Method::GET, "/v1/admin/audit", None),
        (Method::POST, &unlock, None),
    ];
    for (method, path, body) in routes {
        let response = call(&app, method.clone(), path, Some(token), body).await;
        let body = response.text().await?;
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(parsed["code"], "forbidden", "{method} {path} with a demoted token: {body}");
        assert_eq!(parsed["status"], 403, "{method} {path}: {body}");
    }
    let me = ok_json(app.get("/v1/auth/me", token).await).await;
    assert_eq!(me["id"], id.as_str(), "the token itself is still valid");
    let root_now = admin_user(&app, &admin, &admin.id).await;
    assert_eq!(root_now["disabled"], false);
    assert!(root_now["sessions"].as_u64().unwrap() >= 1);

    // An empty list is the plain user too.
    let again = patched(&app, &admin, &id, json!({"roles": []})).await;
    assert_eq!(roles(&again), ["user"]);
    Ok(())
}

#[tokio::test]
async fn an_admin_cannot_demote_disable_or_delete_itself_but_another_admin_can() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    for body in [json!({"roles": ["user"]}), json!({"roles": []}), json!({"disabled": true})] {
        let response = patch(&app, &admin, &admin.id, body.clone()).await;
        assert_problem(response, StatusCode::CONFLICT, "conflict").await;
    }
    let response = delete_user(&app, &admin, &admin.id).await;
    assert_problem(response, StatusCode::CONFLICT, "conflict").await;
    let same = admin_user(&app, &admin, &admin.id).await;
    assert_eq!(roles(&same), ["admin", "user"], "{same}");
    assert_eq!(same["disabled"], false);
    assert!(same["sessions"].as_u64().unwrap() >= 1, "{same}");
    // Keeping its own admin role, and marking its own address, are allowed.
    let kept = patched(&app, &admin, &admin.id, json!({"roles": ["admin"]})).await;
    assert_eq!(roles(&kept), ["admin", "user"]);
    let verified = patched(&app, &admin, &admin.id, json!({"email_verified": true})).await;
    assert_eq!(verified["email_verified"], true);

    // A second admin may do each of them to the first.
    let second = created_user(
        &app,
        &admin,
        json!({"email": "second@example.com", "password": PASSWORD, "roles": ["admin"]}),
    )
    .await;
    let pair = app.logged_in("second@example.com", PASSWORD).await;
    let other =
        Admin { token: str_of(&pair, "access_token").to_owned(), id: str_of(&second, "id").into() };
    let demoted = patched(&app, &other, &admin.id, json!({"roles": ["user"]})).await;
    assert_eq!(roles(&demoted), ["user"]);
    let refused = app.get("/v1/admin/users", &admin.token).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    disable(&app, &other, &admin.id).await;
    let me = app.get("/v1/auth/me", &admin.token).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let login = app.login(ROOT, PASSWORD).await;
    assert_problem(login, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_eq!(delete_user(&app, &other, &admin.id).await.status(), StatusCode::NO_CONTENT);
    let login = app.login(ROOT, PASSWORD).await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    Ok(())
}

#[tokio::test]
async fn two_admins_demoting_or_disabling_each_other_at_once_leave_one_enabled_admin() -> TestResult
{
    let app = spawn().await;
    let first = root(&app).await;
    let body = json!({"email": "second@example.com", "password": PASSWORD, "roles": ["admin"]});
    let second_id = str_of(&created_user(&app, &first, body).await, "id").to_owned();
    let pair = app.logged_in("second@example.com", PASSWORD).await;
    let second = Admin { token: str_of(&pair, "access_token").to_owned(), id: second_id };
    let mut admins = [first, second];
    let emails = [ROOT, "second@example.com"];
    for round in 0..24 {
        // Demotions, disables, and one of each.
        let change = |which: usize| match (round % 3, which) {
            (0, _) | (2, 0) => json!({"roles": ["user"]}),
            _ => json!({"disabled": true}),
        };
        let (a, b) = tokio::join!(
            patch(&app, &admins[0], &admins[1].id, change(0)),
            patch(&app, &admins[1], &admins[0].id, change(1)),
        );
        let statuses = [a.status(), b.status()];
        // The loser is refused: in its transaction, or already demoted, or already disabled.
        let refused = [StatusCode::CONFLICT, StatusCode::FORBIDDEN, StatusCode::UNAUTHORIZED];
        for status in statuses {
            assert!(
                status == StatusCode::OK || refused.contains(&status),
                "round {round}: {statuses:?}"
            );
        }
        let winners: Vec<usize> = (0..2).filter(|&i| statuses[i] == StatusCode::OK).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one change wins: {statuses:?}");
        let (winner, loser) = (winners[0], 1 - winners[0]);
        let listed = list_all(&app, &admins[winner].token, "", 200).await;
        let enabled_admins = listed
            .iter()
            .filter(|u| roles(u).contains(&"admin".to_owned()) && u["disabled"] == false)
            .count();
        assert_eq!(enabled_admins, 1, "round {round}: {listed:?}");
        // The winner restores the other, which signs in again if it was disabled.
        let restore = json!({"roles": ["admin"], "disabled": false});
        patched(&app, &admins[winner], &admins[loser].id.clone(), restore).await;
        let pair = app.logged_in(emails[loser], PASSWORD).await;
        admins[loser].token = str_of(&pair, "access_token").to_owned();
    }
    Ok(())
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_delete_its_own_account_but_one_of_two_can() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let delete_me = |token: String| {
        let body = json!({"password": PASSWORD});
        let app = &app;
        async move { app.request(Method::DELETE, "/v1/auth/me", Some(&token), Some(body)).await }
    };
    assert_problem(delete_me(admin.token.clone()).await, StatusCode::CONFLICT, "conflict").await;
    let same = admin_user(&app, &admin, &admin.id).await;
    assert_eq!(roles(&same), ["admin", "user"], "{same}");
    assert!(same["sessions"].as_u64().unwrap() >= 1, "its sessions are kept: {same}");

    // A disabled admin does not count: the only enabled one still cannot go.
    let body = json!({"email": "second@example.com", "password": PASSWORD, "roles": ["admin"]});
    let second = created_user(&app, &admin, body).await;
    disable(&app, &admin, str_of(&second, "id")).await;
    assert_problem(delete_me(admin.token.clone()).await, StatusCode::CONFLICT, "conflict").await;

    // With another enabled admin, it can.
    enable(&app, &admin, str_of(&second, "id")).await;
    assert_eq!(delete_me(admin.token.clone()).await.status(), StatusCode::NO_CONTENT);
    let login = app.login(ROOT, PASSWORD).await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Creating accounts.

#[tokio::test]
async fn an_admin_creates_accounts_with_a_password_and_roles() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let body = json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "roles": ["admin"]});
    let ada = created_user(&app, &admin, body).await;
    assert_eq!(ada["email"], "ada@example.com", "trimmed and lower-cased");
    assert_eq!(roles(&ada), ["admin", "user"]);
    assert_eq!(ada["disabled"], false);
    assert_eq!(ada["sessions"], 0);
    assert_eq!(ada["last_login_at"], Value::Null);
    assert_eq!(ada["locked_until"], Value::Null);
    assert_eq!(ada["mfa"], json!([]));
    assert_eq!(admin_user(&app, &admin, str_of(&ada, "id")).await, ada, "GET answers the same");

    // Its password logs in, and its admin role works.
    let pair = app.logged_in("ada@example.com", PASSWORD).await;
    let token = str_of(&pair, "access_token");
    assert_eq!(user_id(&app, token).await, str_of(&ada, "id"));
    ok_json(app.get("/v1/admin/users", token).await).await;

    // Without roles, and with an empty list, the account is a plain user.
    let plain = json!({"email": "bob@example.com", "password": PASSWORD});
    assert_eq!(roles(&created_user(&app, &admin, plain).await), ["user"]);
    let empty = json!({"email": "cy@example.com", "password": PASSWORD, "roles": []});
    assert_eq!(roles(&created_user(&app, &admin, empty).await), ["user"]);
    let both = json!({"email": "di@example.com", "password": PASSWORD, "roles": ["user", "admin"]});
    assert_eq!(roles(&created_user(&app, &admin, both).await), ["admin", "user"]);

    // Refusals.
    let taken = json!({"email": "ADA@example.com", "password": PASSWORD});
    assert_problem(create_user(&app, &admin, taken).await, StatusCode::CONFLICT, "email_taken")
        .await;
    let registered_taken = app.register("bob@example.com", PASSWORD).await;
    assert_problem(registered_taken, StatusCode::CONFLICT, "email_taken").await;
    let weak = json!({"email": "eve@example.com", "password": "short"});
    let body = assert_problem(
        create_user(&app, &admin, weak).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_policy",
    )
    .await;
    let violations = strings(&body["violations"]);
    assert!(violations.contains(&"too_short".to_owned()), "{body}");
    let role = json!({"email": "eve@example.com", "password": PASSWORD, "roles": ["root"]});
    assert_problem(
        create_user(&app, &admin, role).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let email = json!({"email": "not an email", "password": PASSWORD});
    assert_problem(
        create_user(&app, &admin, email).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let missing = json!({"password": PASSWORD});
    assert_problem(
        create_user(&app, &admin, missing).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    )
    .await;
    let typed = json!({"email": "eve@example.com", "roles": "admin"});
    assert_problem(
        create_user(&app, &admin, typed).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    )
    .await;
    // None of the refused ones exists.
    let all = emails(&list_all(&app, &admin.token, "", 200).await);
    assert!(!all.iter().any(|e| e.starts_with("eve")), "{all:?}");
    assert_eq!(all.len(), 5, "root, ada, bob, cy, di: {all:?}");
    Ok(())
}

#[tokio::test]
async fn an_account_created_without_a_password_logs_in_only_after_a_reset() -> TestResult {
    let (app, sink) = app_with_sink().await;
    let admin = root(&app).await;
    let user = created_user(&app, &admin, json!({"email": "nopass@example.com"})).await;
    assert_eq!(roles(&user), ["user"]);
    for password in [PASSWORD, WRONG, "x"] {
        let login = app.login("nopass@example.com", password).await;
        assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    forgot(&app, "nopass@example.com").await;
    let token = reset_tokens(&sink, "nopass@example.com", 1).await.remove(0);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    let pair = app.logged_in("nopass@example.com", NEW_PASSWORD).await;
    assert_eq!(user_id(&app, str_of(&pair, "access_token")).await, str_of(&user, "id"));
    let seen = admin_user(&app, &admin, str_of(&user, "id")).await;
    assert_eq!(seen["sessions"], 1);
    assert!(seen["last_login_at"].is_string(), "{seen}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Changing accounts.

#[tokio::test]
async fn a_patch_replaces_roles_keeps_user_sets_verification_and_refuses_bad_values() -> TestResult
{
    let app = spawn().await;
    let admin = root(&app).await;
    let pair = app.signed_in("uma@example.com").await;
    let token = str_of(&pair, "access_token");
    let id = user_id(&app, token).await;

    let verified = patched(&app, &admin, &id, json!({"email_verified": true})).await;
    assert_eq!(verified["email_verified"], true);
    assert_eq!(roles(&verified), ["user"], "what is not in the body stays");
    assert_eq!(verified["disabled"], false);
    assert_eq!(ok_json(app.get("/v1/auth/me", token).await).await["email_verified"], true);
    let unverified = patched(&app, &admin, &id, json!({"email_verified": false})).await;
    assert_eq!(unverified["email_verified"], false);

    let both =
        patched(&app, &admin, &id, json!({"roles": ["admin"], "email_verified": true})).await;
    assert_eq!(roles(&both), ["admin", "user"]);
    assert_eq!(both["email_verified"], true);
    assert_eq!(both["sessions"], 1, "a role change ends no session");
    let replaced = patched(&app, &admin, &id, json!({"roles": ["user"]})).await;
    assert_eq!(roles(&replaced), ["user"], "roles are replaced, not added");

    let unknown = patch(&app, &admin, &id, json!({"roles": ["user", "wizard"]})).await;
    assert_problem(unknown, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    for body in
        [json!({"roles": "admin"}), json!({"disabled": "yes"}), json!({"email_verified": 1})]
    {
        let response = patch(&app, &admin, &id, body.clone()).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    let unchanged = admin_user(&app, &admin, &id).await;
    assert_eq!(roles(&unchanged), ["user"]);
    assert_eq!(unchanged["disabled"], false);
    assert_eq!(unchanged["email_verified"], true);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Disabling.

#[tokio::test]
async fn disabling_ends_every_session_on_every_instance_and_only_the_right_password_learns_it()
-> TestResult {
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    let admin = root(&a).await;
    let on_a = a.signed_in("dora@example.com").await;
    let on_b = b.logged_in("dora@example.com", PASSWORD).await;
    let id = user_id(&b, str_of(&on_b, "access_token")).await;
    assert_eq!(admin_user(&a, &admin, &id).await["sessions"], 2);

    let disabled = disable(&a, &admin, &id).await;
    assert_eq!(disabled["sessions"], 0, "{disabled}");
    for pair in [&on_a, &on_b] {
        for app in [&a, &b] {
            let me = app.get("/v1/auth/me", str_of(pair, "access_token")).await;
            assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    let refresh = b.refresh(str_of(&on_a, "refresh_token")).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let refresh = a.refresh(str_of(&on_b, "refresh_token")).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;

    for app in [&a, &b] {
        let right = app.login("dora@example.com", PASSWORD).await;
        assert_problem(right, StatusCode::FORBIDDEN, "account_disabled").await;
        let wrong = app.login("dora@example.com", WRONG).await;
        let wrong = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let stranger = app.login("nobody@example.com", PASSWORD).await;
        let stranger =
            assert_problem(stranger, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(wrong["detail"], stranger["detail"], "a wrong password tells nothing");
        assert_eq!(wrong["title"], stranger["title"]);
    }
    let seen = admin_user(&b, &admin, &id).await;
    assert_eq!(seen["disabled"], true);
    assert_eq!(seen["sessions"], 0);
    let listed = list_page(&b, &admin.token, "email=dora").await;
    assert_eq!(listed["users"][0]["disabled"], true, "{listed}");

    // Enabling lets the password in again; the ended sessions stay ended.
    enable(&b, &admin, &id).await;
    let back = a.logged_in("dora@example.com", PASSWORD).await;
    ok_json(b.get("/v1/auth/me", str_of(&back, "access_token")).await).await;
    let old = a.refresh(str_of(&on_b, "refresh_token")).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.get("/v1/auth/me", str_of(&on_a, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin_user(&a, &admin, &id).await["sessions"], 1);
    Ok(())
}

#[tokio::test]
async fn a_disabled_account_is_locked_out_like_any_other() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let user = registered(&app, "lou@example.com").await;
    let id = str_of(&user, "id");
    disable(&app, &admin, id).await;
    for _ in 0..5 {
        let wrong = app.login("lou@example.com", WRONG).await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let locked = app.login("lou@example.com", PASSWORD).await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    let seen = admin_user(&app, &admin, id).await;
    assert!(seen["locked_until"].is_string(), "{seen}");
    assert_eq!(seen["disabled"], true);
    Ok(())
}

#[tokio::test]
async fn disabling_voids_pending_reset_links_also_after_enabling() -> TestResult {
    let (app, sink) = app_with_sink().await;
    let admin = root(&app).await;
    let user = registered(&app, "rita@example.com").await;
    let id = str_of(&user, "id");
    forgot(&app, "rita@example.com").await;
    let early = reset_tokens(&sink, "rita@example.com", 1).await.remove(0);

    disable(&app, &admin, id).await;
    let response = reset(&app, &early, NEW_PASSWORD).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    enable(&app, &admin, id).await;
    let response = reset(&app, &early, NEW_PASSWORD).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The password did not change; a link asked for after enabling works.
    app.logged_in("rita@example.com", PASSWORD).await;
    forgot(&app, "rita@example.com").await;
    let late = reset_tokens(&sink, "rita@example.com", 2).await.pop().unwrap();
    assert_ne!(late, early);
    assert_eq!(reset(&app, &late, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    app.logged_in("rita@example.com", NEW_PASSWORD).await;
    Ok(())
}

#[tokio::test]
async fn disabling_voids_a_pending_second_step_and_the_object_lists_totp() -> TestResult {
    let (app, clock) = clocked(&[]).await;
    let admin = root(&app).await;
    let pair = app.signed_in("tom@example.com").await;
    let access = str_of(&pair, "access_token");
    let id = user_id(&app, access).await;
    let secret = enable_totp(&app, &clock, access).await;
    let seen = admin_user(&app, &admin, &id).await;
    assert_eq!(seen["mfa"], json!(["totp"]), "{seen}");

    let pending = mfa_token(&app, "tom@example.com").await;
    disable(&app, &admin, &id).await;
    let step = second_step(&app, &pending, &next_code(&secret, &clock)).await;
    assert_problem(step, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let right = app.login("tom@example.com", PASSWORD).await;
    assert_problem(right, StatusCode::FORBIDDEN, "account_disabled").await;

    enable(&app, &admin, &id).await;
    let step = second_step(&app, &pending, &next_code(&secret, &clock)).await;
    assert_problem(step, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let fresh = mfa_token(&app, "tom@example.com").await;
    let pair = ok_json(second_step(&app, &fresh, &next_code(&secret, &clock)).await).await;
    assert_eq!(user_id(&app, str_of(&pair, "access_token")).await, id);
    Ok(())
}

#[tokio::test]
async fn a_disabled_accounts_passkey_is_refused_and_works_again_once_enabled() -> TestResult {
    let app = spawn_with(&RP).await;
    let admin = root(&app).await;
    let pair = app.signed_in("pia@example.com").await;
    let access = str_of(&pair, "access_token");
    let id = user_id(&app, access).await;
    let mut authenticator = passkey::Authenticator::new();
    add_passkey(&app, access, &mut authenticator).await;
    let seen = admin_user(&app, &admin, &id).await;
    assert_eq!(seen["mfa"], json!(["passkey"]), "{seen}");
    ok_json(passkey_login(&app, &mut authenticator).await).await;

    disable(&app, &admin, &id).await;
    let refused = passkey_login(&app, &mut authenticator).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_eq!(admin_user(&app, &admin, &id).await["sessions"], 0);

    enable(&app, &admin, &id).await;
    let pair = ok_json(passkey_login(&app, &mut authenticator).await).await;
    assert_eq!(user_id(&app, str_of(&pair, "access_token")).await, id);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deleting accounts and revoking sessions.

#[tokio::test]
async fn deleting_ends_sessions_removes_factors_frees_the_email_and_keeps_the_events() -> TestResult
{
    let a = spawn_with(&RP).await;
    let b = spawn_in(&a.storage, &RP).await;
    let admin = root(&a).await;
    let pair = a.signed_in("del@example.com").await;
    let access = str_of(&pair, "access_token");
    let id = user_id(&a, access).await;
    let mut authenticator = passkey::Authenticator::new();
    add_passkey(&a, access, &mut authenticator).await;
    let other = b.logged_in("del@example.com", PASSWORD).await;

    assert_eq!(delete_user(&a, &admin, &id).await.status(), StatusCode::NO_CONTENT);
    for app in [&a, &b] {
        for pair in [&pair, &other] {
            let me = app.get("/v1/auth/me", str_of(pair, "access_token")).await;
            assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    let refresh = b.refresh(str_of(&other, "refresh_token")).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let login = b.login("del@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let passkey = passkey_login(&a, &mut authenticator).await;
    assert_problem(passkey, StatusCode::BAD_REQUEST, "invalid_challenge").await;
    assert_problem(get_user_response(&a, &admin, &id).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_problem(delete_user(&a, &admin, &id).await, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!ids(&list_all(&a, &admin.token, "", 200).await).contains(&id));

    // The email registers again, as a new account without the old factors.
    let again = registered(&b, "del@example.com").await;
    assert_ne!(str_of(&again, "id"), id);
    let fresh = admin_user(&a, &admin, str_of(&again, "id")).await;
    assert_eq!(fresh["mfa"], json!([]), "{fresh}");
    assert_eq!(fresh["sessions"], 0);

    // The old account's events stay, with the deletion.
    let events = trail(&a, &admin, &format!("user_id={id}")).await;
    let types = kinds(&events);
    for kind in ["registration", "login", "passkey_added", "user_deleted"] {
        assert!(types.contains(&kind.to_owned()), "{kind} in {types:?}");
    }
    let deleted = of_type(&events, "user_deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["user_id"], id.as_str());
    assert_eq!(deleted[0]["actor_id"], admin.id.as_str());
    Ok(())
}

#[tokio::test]
async fn revoking_a_users_sessions_ends_them_all_on_every_instance() -> TestResult {
    let a = spawn().await;
    let b = spawn_in(&a.storage, &[]).await;
    let admin = root(&a).await;
    let first = a.signed_in("sam@example.com").await;
    let second = b.logged_in("sam@example.com", PASSWORD).await;
    let id = user_id(&a, str_of(&first, "access_token")).await;
    let bystander = a.signed_in("bea@example.com").await;
    assert_eq!(admin_user(&a, &admin, &id).await["sessions"], 2);

    assert_eq!(revoke_sessions(&b, &admin, &id).await.status(), StatusCode::NO_CONTENT);
    for app in [&a, &b] {
        for pair in [&first, &second] {
            let me = app.get("/v1/auth/me", str_of(pair, "access_token")).await;
            assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    for pair in [&first, &second] {
        let refresh = a.refresh(str_of(pair, "refresh_token")).await;
        assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let seen = admin_user(&a, &admin, &id).await;
    assert_eq!(seen["sessions"], 0);
    assert_eq!(seen["disabled"], false, "revoking is not disabling");
    // Other accounts and the admin keep theirs; the user may log in again.
    ok_json(b.get("/v1/auth/me", str_of(&bystander, "access_token")).await).await;
    ok_json(b.get("/v1/auth/me", &admin.token).await).await;
    let back = b.logged_in("sam@example.com", PASSWORD).await;
    ok_json(a.get("/v1/auth/me", str_of(&back, "access_token")).await).await;
    assert_eq!(admin_user(&a, &admin, &id).await["sessions"], 1);
    // With nothing to end it still answers 204 for a known account.
    let none = registered(&a, "idle@example.com").await;
    assert_eq!(
        revoke_sessions(&a, &admin, str_of(&none, "id")).await.status(),
        StatusCode::NO_CONTENT
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The audit trail.

#[tokio::test]
async fn every_admin_action_is_audited_with_the_admin_as_actor() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let response =
        create_user(&app, &admin, json!({"email": "ava@example.com", "password": PASSWORD})).await;
    let created_request = response.headers()["x-request-id"].to_str()?.to_owned();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = str_of(&response.json::<Value>().await?, "id").to_owned();
    app.logged_in("ava@example.com", PASSWORD).await;

    let roles_change = patch(&app, &admin, &id, json!({"roles": ["admin"]})).await;
    let roles_request = roles_change.headers()["x-request-id"].to_str()?.to_owned();
    ok_json(roles_change).await;
    patched(&app, &admin, &id, json!({"disabled": true})).await;
    patched(&app, &admin, &id, json!({"disabled": false})).await;
    patched(&app, &admin, &id, json!({"email_verified": true})).await;
    app.logged_in("ava@example.com", PASSWORD).await;
    assert_eq!(revoke_sessions(&app, &admin, &id).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(delete_user(&app, &admin, &id).await.status(), StatusCode::NO_CONTENT);

    let events = trail(&app, &admin, &format!("user_id={id}")).await;
    let admin_kinds = ["user_created", "user_updated", "user_deleted", "sessions_revoked"];
    let by_admin: Vec<&Value> =
        events.iter().filter(|e| admin_kinds.contains(&e["type"].as_str().unwrap())).collect();
    let order: Vec<&str> = by_admin.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "user_deleted",
            "sessions_revoked",
            "user_updated",
            "user_updated",
            "user_updated",
            "user_updated",
            "user_created"
        ],
        "newest first: {:?}",
        kinds(&events)
    );
    for event in &by_admin {
        assert_eq!(event["user_id"], id.as_str(), "{event}");
        assert_eq!(event["actor_id"], admin.id.as_str(), "{event}");
    }
    assert_eq!(by_admin[6]["request_id"], created_request.as_str());
    assert_eq!(by_admin[5]["request_id"], roles_request.as_str());
    // Each update says what changed.
    let detail = |i: usize| by_admin[i]["detail"].as_str().unwrap_or_default().to_lowercase();
    assert!(detail(5).contains("admin"), "a roles change: {}", by_admin[5]);
    assert!(detail(4).contains("disable"), "a disable: {}", by_admin[4]);
    assert!(detail(3).contains("disable") || detail(3).contains("enable"), "{}", by_admin[3]);
    assert!(detail(2).contains("verified"), "a verification: {}", by_admin[2]);
    assert_ne!(detail(5), detail(4));

    // What the user did itself has no actor; so have the admin's own login and registration.
    for event in events.iter().filter(|e| e["type"] == "login") {
        assert!(event.get("actor_id").is_some_and(Value::is_null), "{event}");
    }
    let own = trail(&app, &admin, &format!("user_id={}", admin.id)).await;
    assert!(!own.is_empty());
    for event in &own {
        assert!(event.get("actor_id").is_some_and(Value::is_null), "{event}");
    }

    // The new types filter like any other.
    for (kind, count) in
        [("user_created", 1), ("user_updated", 4), ("user_deleted", 1), ("sessions_revoked", 1)]
    {
        let filtered = trail(&app, &admin, &format!("type={kind}")).await;
        assert!(filtered.iter().all(|e| e["type"] == kind), "{kind}: {filtered:?}");
        let about = filtered.iter().filter(|e| e["user_id"] == id.as_str()).count();
        assert_eq!(about, count, "{kind}: {filtered:?}");
    }
    Ok(())
}

#[tokio::test]
async fn an_unlock_by_an_admin_is_audited_with_the_admin_as_actor() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let id = str_of(&registered(&app, "uma@example.com").await, "id").to_owned();
    let path = format!("{}/unlock", user_path(&id));
    let unlocked = call(&app, Method::POST, &path, Some(&admin.token), None).await;
    assert_eq!(unlocked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        common::run_cli(&app, &["user", "unlock", "--email", "uma@example.com"]).await,
        Some(0)
    );

    let unlocks = trail(&app, &admin, &format!("type=unlock&user_id={id}")).await;
    assert_eq!(unlocks.len(), 2, "{unlocks:?}");
    let (by_cli, by_admin) = (&unlocks[0], &unlocks[1]);
    assert_eq!(by_admin["actor_id"], admin.id.as_str(), "{by_admin}");
    assert_eq!(by_admin["user_id"], id.as_str(), "{by_admin}");
    assert!(by_cli.get("actor_id").is_some_and(Value::is_null), "{by_cli}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Listing.

#[tokio::test]
async fn the_list_pages_newest_first_and_filters_by_a_literal_email_prefix() -> TestResult {
    let (app, clock) = clocked(&[]).await;
    let admin_email = ROOT;
    create_admin(&app, admin_email).await;
    // Every account below is newer than the admin, one second apart.
    clock.advance(Duration::from_secs(60));
    let mut names: Vec<String> = (0..52).map(|i| format!("user{i:02}@example.com")).collect();
    names.extend(
        [
            "ada1@example.com",
            "Ada2@Example.com",
            "adam@example.com",
            "bada@example.com",
            "a_b@example.com",
            "axb@example.com",
            "a%c@example.com",
            "abc@example.com",
        ]
        .map(String::from),
    );
    let mut registered_ids = Vec::new();
    for name in &names {
        clock.advance(Duration::from_secs(1));
        registered_ids.push(str_of(&registered(&app, name).await, "id").to_owned());
    }
    let pair = app.logged_in(admin_email, PASSWORD).await;
    let admin = Admin {
        token: str_of(&pair, "access_token").to_owned(),
        id: user_id(&app, str_of(&pair, "access_token")).await,
    };

    let whole = list_page(&app, &admin.token, "limit=200").await;
    assert_eq!(whole["next_cursor"], Value::Null, "everything fits: {}", whole["next_cursor"]);
    let full = users_of(&whole);
    let mut expected: Vec<String> = registered_ids.iter().rev().cloned().collect();
    expected.push(admin.id.clone());
    assert_eq!(ids(&full), expected, "newest first");
    for user in &full {
        assert_admin_object(user);
    }
    for pair in full.windows(2) {
        assert!(time_of(&pair[0]["created_at"]) > time_of(&pair[1]["created_at"]));
    }
    let one = full.iter().find(|u| u["email"] == "ada2@example.com").unwrap();
    assert_eq!(&admin_user(&app, &admin, str_of(one, "id")).await, one, "GET answers the same");

    // The default page is 50, with a cursor that goes on where it stopped.
    let first = list_page(&app, &admin.token, "").await;
    assert_eq!(ids(&users_of(&first)), expected[..50]);
    let cursor = first["next_cursor"].as_str().expect("a next cursor").to_owned();
    let rest = list_page(&app, &admin.token, &format!("limit=200&cursor={cursor}")).await;
    assert_eq!(ids(&users_of(&rest)), expected[50..]);
    assert_eq!(rest["next_cursor"], Value::Null);
    // Pages of 7 give the same list.
    assert_eq!(ids(&list_all(&app, &admin.token, "", 7).await), expected);
    assert_eq!(ids(&list_all(&app, &admin.token, "", 1).await), expected);

    // A literal prefix of the lower-cased address.
    let prefixed = |prefix: &str| {
        let matching: Vec<String> =
            emails(&full).into_iter().filter(|e| e.starts_with(prefix)).collect();
        matching
    };
    for (query, prefix) in [
        ("Ada", "ada"),
        ("ADA", "ada"),
        ("ada1%40example.com", "ada1@example.com"),
        ("a_", "a_"),
        ("a%25", "a%"),
        ("user0", "user0"),
        ("zzz", "zzz"),
    ] {
        let listed = list_all(&app, &admin.token, &format!("email={query}"), 200).await;
        assert_eq!(emails(&listed), prefixed(prefix), "email={query}");
        let paged = list_all(&app, &admin.token, &format!("email={query}"), 2).await;
        assert_eq!(emails(&paged), prefixed(prefix), "email={query} in pages of 2");
    }
    assert_eq!(prefixed("ada"), ["adam@example.com", "ada2@example.com", "ada1@example.com"]);
    assert_eq!(prefixed("a_"), ["a_b@example.com"], "_ is no wildcard");
    assert_eq!(prefixed("a%"), ["a%c@example.com"], "% is no wildcard");
    let none = list_page(&app, &admin.token, "email=zzz").await;
    assert_eq!(none["users"], json!([]));
    assert_eq!(none["next_cursor"], Value::Null);

    for query in ["limit=0", "limit=201", "limit=ten", "limit=-1", "cursor=abc", "cursor=%25%25"] {
        let response = app.get(&format!("/v1/admin/users?{query}"), &admin.token).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    ok_json(app.get("/v1/admin/users?limit=200", &admin.token).await).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_while_accounts_are_created_lists_each_earlier_account_once_in_order() -> TestResult
{
    let (app, clock) = clocked(&[]).await;
    create_admin(&app, ROOT).await;
    clock.advance(Duration::from_secs(60));
    for i in 0..40 {
        clock.advance(Duration::from_millis(1));
        registered(&app, &format!("early{i:02}@example.com")).await;
    }
    // Everything created from now on is newer than every account above.
    clock.advance(Duration::from_secs(60));
    let pair = app.logged_in(ROOT, PASSWORD).await;
    let token = str_of(&pair, "access_token").to_owned();
    let before = ids(&users_of(&list_page(&app, &token, "limit=200").await));
    assert_eq!(before.len(), 41);

    // A task that keeps registering while the pages are read.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let background = {
        let (client, url) = (app.client.clone(), app.url("/v1/auth/register"));
        let (stop, made) = (stop.clone(), made.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n < 5 {
                let body = json!({"email": format!("late{n}@example.com"), "password": PASSWORD});
                let response = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                made.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    let mut seen = Vec::new();
    let mut query = "limit=7".to_owned();
    let mut pages = 0;
    let mut between = 0;
    loop {
        let page = list_page(&app, &token, &query).await;
        let users = users_of(&page);
        assert!(users.len() <= 7);
        seen.extend(ids(&users));
        pages += 1;
        // And a few more between every two pages, for certain.
        let more: Vec<String> = (0..3)
            .map(|_| {
                between += 1;
                format!("between{between}@example.com")
            })
            .collect();
        let registrations = more.iter().map(|email| app.register(email, PASSWORD));
        for response in futures::future::join_all(registrations).await {
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=7&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 100, "the cursor never ended");
    }
    stop.store(true, Ordering::SeqCst);
    background.await?;
    assert!(made.load(Ordering::SeqCst) >= 5);

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no account twice: {seen:?}");
    let earlier: HashSet<&String> = before.iter().collect();
    let of_before: Vec<String> = seen.iter().filter(|id| earlier.contains(id)).cloned().collect();
    assert_eq!(of_before, before, "every earlier account once, newest first");
    assert!(pages >= 6, "41 accounts in pages of 7");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[tokio::test]
async fn user_list_prints_admin_user_objects_newest_first_as_json_lines() -> TestResult {
    let (app, clock) = clocked(&[]).await;
    let admin = root(&app).await;
    clock.advance(Duration::from_secs(60));
    for email in ["ada@example.com", "bob@example.com", "adam@example.com"] {
        clock.advance(Duration::from_secs(1));
        app.signed_in(email).await;
    }
    let api = list_all(&app, &admin.token, "", 200).await;

    let output = cli(&app, &["user", "list"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    for line in &lines {
        assert_admin_object(line);
    }
    assert_eq!(ids(&lines), ids(&api), "the same accounts in the same order as the API");
    let ada = lines.iter().find(|u| u["email"] == "ada@example.com").unwrap();
    assert_eq!(ada["sessions"], 1, "{ada}");
    assert!(ada["last_login_at"].is_string(), "{ada}");

    let output = cli(&app, &["user", "list", "--email", "ADA"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let filtered: Vec<Value> =
        text(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(emails(&filtered), ["adam@example.com", "ada@example.com"]);
    let output = cli(&app, &["user", "list", "--email", "nobody"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout).trim(), "");
    Ok(())
}

#[tokio::test]
async fn user_disable_enable_and_delete_act_at_once_on_a_running_server() -> TestResult {
    let app = spawn().await;
    let admin = root(&app).await;
    let pair = app.signed_in("carl@example.com").await;
    let id = user_id(&app, str_of(&pair, "access_token")).await;

    let disable = cli(&app, &["user", "disable", "--email", "Carl@Example.com"]).await;
    assert_eq!(disable.status.code(), Some(0), "{}", text(&disable.stderr));
    let me = app.get("/v1/auth/me", str_of(&pair, "access_token")).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refresh = app.refresh(str_of(&pair, "refresh_token")).await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let login = app.login("carl@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_eq!(admin_user(&app, &admin, &id).await["disabled"], true);

    let enable = cli(&app, &["user", "enable", "--email", "carl@example.com"]).await;
    assert_eq!(enable.status.code(), Some(0), "{}", text(&enable.stderr));
    assert_eq!(admin_user(&app, &admin, &id).await["disabled"], false);
    let back = app.logged_in("carl@example.com", PASSWORD).await;

    let delete = cli(&app, &["user", "delete", "--email", "carl@example.com"]).await;
    assert_eq!(delete.status.code(), Some(0), "{}", text(&delete.stderr));
    let me = app.get("/v1/auth/me", str_of(&back, "access_token")).await;
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let login = app.login("carl@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_problem(get_user_response(&app, &admin, &id).await, StatusCode::NOT_FOUND, "not_found")
        .await;

    // Audited without an actor, saying it was the command line.
    let events = trail(&app, &admin, &format!("user_id={id}")).await;
    let updates = of_type(&events, "user_updated");
    assert_eq!(updates.len(), 2, "{:?}", kinds(&events));
    let deletions = of_type(&events, "user_deleted");
    assert_eq!(deletions.len(), 1, "{:?}", kinds(&events));
    for event in updates.iter().chain(&deletions) {
        assert!(event.get("actor_id").is_some_and(Value::is_null), "{event}");
        assert_eq!(event["user_id"], id.as_str());
        let detail = event["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("command line"), "{event}");
    }

    // The address registers again; unknown addresses fail with status 1.
    registered(&app, "carl@example.com").await;
    for command in ["disable", "enable", "delete"] {
        let output = cli(&app, &["user", command, "--email", "ghost@example.com"]).await;
        assert_eq!(output.status.code(), Some(1), "user {command}: {}", text(&output.stdout));
        assert!(!text(&output.stderr).trim().is_empty(), "user {command} says why");
    }
    Ok(())
}
