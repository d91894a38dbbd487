//! Passkeys (WebAuthn Level 3) over HTTP, with a software authenticator (`common/passkey.rs`):
//! registration and its options, discoverable and email-first login, `amr`, listing and
//! deletion, the attacks a relying party must refuse (wrong origin or rp id, replay, a forged
//! signature, a counter set back, another user's handle, a challenge of another user), audit
//! events, and that a passkey login is neither held by a lockout nor asked for a second factor.

use crate::common;
use crate::common::passkey;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::totp::{base32_decode, code_at};
use common::{PASSWORD, TestApp, TestResult, assert_problem, ok_json, spawn_with, str_of};
use passkey::{Authenticator, Tamper, b64, unb64};
use portcullis::domain::ManualClock;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:8080";
const RP: [(&str, &str); 2] = [
    ("PORTCULLIS_WEBAUTHN_RP_ID", "localhost"),
    ("PORTCULLIS_WEBAUTHN_ORIGINS", "http://localhost:8080"),
];

async fn app() -> TestApp {
    app_with(&[]).await
}

/// A server with the relying party set explicitly (to the defaults) and `vars`.
async fn app_with(vars: &[(&str, &str)]) -> TestApp {
    let mut all = RP.to_vec();
    all.extend_from_slice(vars);
    spawn_with(&all).await
}

fn token(pair: &Value) -> &str {
    str_of(pair, "access_token")
}

/// The claims of a JWT, unverified (the login tests check signatures).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn me(app: &TestApp, token: &str) -> Value {
    ok_json(app.get("/v1/auth/me", token).await).await
}

fn mfa_of(me: &Value) -> Vec<String> {
    me["mfa"]
        .as_array()
        .unwrap_or_else(|| panic!("no mfa list: {me}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

async fn register_options_response(app: &TestApp, token: &str) -> Response {
    app.request(Method::POST, "/v1/auth/passkeys/register/options", Some(token), None).await
}

/// The registration options: `{"challenge_id","publicKey"}`.
async fn register_options(app: &TestApp, token: &str) -> Value {
    let options = ok_json(register_options_response(app, token).await).await;
    assert!(options["challenge_id"].is_string(), "{options}");
    assert!(options["publicKey"].is_object(), "{options}");
    options
}

async fn post_passkey(
    app: &TestApp,
    token: &str,
    challenge_id: &Value,
    credential: Value,
    name: Option<&str>,
) -> Response {
    let mut body = json!({ "challenge_id": challenge_id, "credential": credential });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    app.request(Method::POST, "/v1/auth/passkeys", Some(token), Some(body)).await
}

/// Registers a new passkey of `authenticator` for the signed-in user; returns the passkey object.
async fn add_passkey(
    app: &TestApp,
    token: &str,
    authenticator: &mut Authenticator,
    name: Option<&str>,
) -> Value {
    let options = register_options(app, token).await;
    let credential = authenticator.register(&options["publicKey"], ORIGIN);
    let response = post_passkey(app, token, &options["challenge_id"], credential, name).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "body: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Signs up `email` and registers one passkey; returns the token pair and the passkey object.
async fn user_with_passkey(
    app: &TestApp,
    email: &str,
    authenticator: &mut Authenticator,
) -> (Value, Value) {
    let pair = app.signed_in(email).await;
    let passkey = add_passkey(app, token(&pair), authenticator, None).await;
    (pair, passkey)
}

async fn login_options_response(app: &TestApp, body: Option<Value>) -> Response {
    app.request(Method::POST, "/v1/auth/passkeys/login/options", None, body).await
}

/// The login options, with or without a body.
async fn login_options(app: &TestApp, body: Option<Value>) -> Value {
    let options = ok_json(login_options_response(app, body).await).await;
    assert!(options["challenge_id"].is_string(), "{options}");
    assert!(options["publicKey"].is_object(), "{options}");
    options
}

async fn passkey_login(app: &TestApp, challenge_id: &Value, credential: &Value) -> Response {
    let body = json!({ "challenge_id": challenge_id, "credential": credential });
    app.post("/v1/auth/passkeys/login", body).await
}

/// A discoverable login (options without an email) with an honest assertion; returns the answer.
async fn discoverable_login(app: &TestApp, authenticator: &mut Authenticator) -> Response {
    let options = login_options(app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    passkey_login(app, &options["challenge_id"], &credential).await
}

/// A discoverable login whose assertion is tampered as `tamper` says.
async fn tampered_login(
    app: &TestApp,
    authenticator: &mut Authenticator,
    tamper: &Tamper,
) -> Response {
    let options = login_options(app, None).await;
    let credential = authenticator.assert_tampered(&options["publicKey"], ORIGIN, tamper);
    passkey_login(app, &options["challenge_id"], &credential).await
}

async fn assert_refused(response: Response) -> Value {
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_challenge").await
}

/// The ids (base64url) listed in `allowCredentials` (none when it is absent).
fn allowed_ids(public_key: &Value) -> Vec<String> {
    match &public_key["allowCredentials"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|c| {
                assert_eq!(c["type"], "public-key", "{c}");
                c["id"].as_str().expect("an id").to_owned()
            })
            .collect(),
        other => panic!("allowCredentials is not a list: {other}"),
    }
}

async fn passkeys(app: &TestApp, token: &str) -> Vec<Value> {
    let list = ok_json(app.get("/v1/auth/passkeys", token).await).await;
    list["passkeys"].as_array().unwrap_or_else(|| panic!("no passkeys list: {list}")).clone()
}

async fn own_events(app: &TestApp, token: &str) -> Vec<Value> {
    let page = ok_json(app.get("/v1/auth/events", token).await).await;
    page["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn registration_options_are_level_3_json_for_the_signed_in_user() -> TestResult {
    let app = app().await;
    let pair = app.signed_in("alice@example.com").await;
    let options = register_options(&app, token(&pair)).await;
    let public_key = &options["publicKey"];
    assert!(unb64(public_key["challenge"].as_str().unwrap()).len() >= 16, "{public_key}");
    assert_eq!(public_key["rp"]["id"], "localhost", "{public_key}");
    assert_eq!(public_key["rp"]["name"], "portcullis", "{public_key}");
    let user_handle = unb64(public_key["user"]["id"].as_str().unwrap());
    assert!(!user_handle.is_empty() && user_handle.len() <= 64, "{public_key}");
    assert!(public_key["user"]["name"].is_string(), "{public_key}");
    assert!(public_key["user"]["displayName"].is_string(), "{public_key}");
    let params = public_key["pubKeyCredParams"].as_array().unwrap();
    assert!(params.contains(&json!({"type": "public-key", "alg": -7})), "{public_key}");
    let selection = &public_key["authenticatorSelection"];
    assert!(
        selection["residentKey"] == "required" || selection["residentKey"] == "preferred",
        "{public_key}"
    );
    assert_eq!(selection["userVerification"], "preferred", "{public_key}");
    assert_eq!(public_key["attestation"], "none", "{public_key}");
    let excluded = public_key["excludeCredentials"].as_array().map_or(0, Vec::len);
    assert_eq!(excluded, 0, "nothing to exclude yet: {public_key}");
    // Every call has a challenge of its own; the user handle stays the user's.
    let again = register_options(&app, token(&pair)).await;
    assert_ne!(again["challenge_id"], options["challenge_id"]);
    assert_ne!(again["publicKey"]["challenge"], public_key["challenge"]);
    assert_eq!(again["publicKey"]["user"]["id"], public_key["user"]["id"]);
    // Another user has another handle.
    let other = app.signed_in("bob@example.com").await;
    let theirs = register_options(&app, token(&other)).await;
    assert_ne!(theirs["publicKey"]["user"]["id"], public_key["user"]["id"]);
    Ok(())
}

#[tokio::test]
async fn registration_needs_a_bearer_token() -> TestResult {
    let app = app().await;
    let response = app.post("/v1/auth/passkeys/register/options", json!({})).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let body = json!({"challenge_id": "x", "credential": {}});
    let response = app.post("/v1/auth/passkeys", body).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = app.client.get(app.url("/v1/auth/passkeys")).send().await?;
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    Ok(())
}

#[tokio::test]
async fn a_registered_passkey_is_listed_excluded_and_counted_as_a_factor() -> TestResult {
    let app = app().await;
    let pair = app.signed_in("alice@example.com").await;
    assert!(!mfa_of(&me(&app, token(&pair)).await).contains(&"passkey".to_owned()));
    let mut laptop = Authenticator::new();
    let created = add_passkey(&app, token(&pair), &mut laptop, Some("laptop")).await;
    assert!(created["id"].is_string(), "{created}");
    assert_eq!(created["name"], "laptop");
    let at = created["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{created}");
    assert_eq!(created["last_used_at"], Value::Null);
    for key in ["id", "name", "created_at", "last_used_at"] {
        assert!(created.get(key).is_some(), "missing {key}: {created}");
    }

    assert_eq!(passkeys(&app, token(&pair)).await, std::slice::from_ref(&created));
    assert!(mfa_of(&me(&app, token(&pair)).await).contains(&"passkey".to_owned()));

    // The next registration excludes the credential already there.
    let options = register_options(&app, token(&pair)).await;
    let excluded: Vec<&Value> =
        options["publicKey"]["excludeCredentials"].as_array().unwrap().iter().collect();
    assert_eq!(excluded.len(), 1, "{options}");
    assert_eq!(excluded[0]["type"], "public-key");
    assert_eq!(excluded[0]["id"], laptop.last().id_b64().as_str());

    // A second device; without a name it is called "passkey".
    let mut phone = Authenticator::new();
    let credential = phone.register(&options["publicKey"], ORIGIN);
    let response =
        post_passkey(&app, token(&pair), &options["challenge_id"], credential, None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let second: Value = response.json().await?;
    assert_eq!(second["name"], "passkey");
    assert_ne!(second["id"], created["id"]);
    let listed = passkeys(&app, token(&pair)).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&created) && listed.contains(&second), "{listed:?}");

    // Another user sees none of them.
    let other = app.signed_in("bob@example.com").await;
    assert!(passkeys(&app, token(&other)).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_registration_challenge_is_single_use() -> TestResult {
    let app = app().await;
    let pair = app.signed_in("alice@example.com").await;
    let options = register_options(&app, token(&pair)).await;
    let mut authenticator = Authenticator::new();
    let credential = authenticator.register(&options["publicKey"], ORIGIN);
    let first =
        post_passkey(&app, token(&pair), &options["challenge_id"], credential.clone(), None).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = post_passkey(&app, token(&pair), &options["challenge_id"], credential, None).await;
    assert_refused(again).await;
    // A fresh credential on the used challenge fails the same way.
    let fresh = Authenticator::new().register(&options["publicKey"], ORIGIN);
    let again = post_passkey(&app, token(&pair), &options["challenge_id"], fresh, None).await;
    assert_refused(again).await;
    assert_eq!(passkeys(&app, token(&pair)).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_forged_registration_is_refused() -> TestResult {
    let app = app().await;
    let pair = app.signed_in("alice@example.com").await;
    let cases = [
        (
            "wrong origin",
            Tamper { origin: Some("http://evil.example:8080".into()), ..Tamper::default() },
        ),
        ("wrong rp id", Tamper { rp_id: Some("evil.example".into()), ..Tamper::default() }),
        ("other challenge", Tamper { challenge: Some(b64(&[7u8; 32])), ..Tamper::default() }),
        (
            "a get, not a create",
            Tamper { client_data_type: Some("webauthn.get".into()), ..Tamper::default() },
        ),
        ("no user presence", Tamper { no_user_presence: true, ..Tamper::default() }),
    ];
    for (case, tamper) in cases {
        let options = register_options(&app, token(&pair)).await;
        let credential =
            Authenticator::new().register_tampered(&options["publicKey"], ORIGIN, &tamper);
        let response =
            post_passkey(&app, token(&pair), &options["challenge_id"], credential, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_refused(response).await;
    }
    assert!(passkeys(&app, token(&pair)).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_registration_challenge_cannot_be_used_by_another_user() -> TestResult {
    let app = app().await;
    let alice = app.signed_in("alice@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let options = register_options(&app, token(&alice)).await;
    let mut authenticator = Authenticator::new();
    let credential = authenticator.register(&options["publicKey"], ORIGIN);
    let response =
        post_passkey(&app, token(&bob), &options["challenge_id"], credential, None).await;
    assert_refused(response).await;
    assert!(passkeys(&app, token(&bob)).await.is_empty());
    assert!(passkeys(&app, token(&alice)).await.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_discoverable_login_answers_a_token_pair_with_user_verification() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, created) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let user_id = me(&app, token(&pair)).await["id"].clone();

    for body in [None, Some(json!({}))] {
        let options = login_options(&app, body.clone()).await;
        let public_key = &options["publicKey"];
        assert!(allowed_ids(public_key).is_empty(), "{body:?}: {public_key}");
        assert!(unb64(public_key["challenge"].as_str().unwrap()).len() >= 16, "{public_key}");
        assert_eq!(public_key["rpId"], "localhost", "{public_key}");
    }

    let options = login_options(&app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    let logged_in = ok_json(passkey_login(&app, &options["challenge_id"], &credential).await).await;
    assert_eq!(logged_in["token_type"], "Bearer");
    assert!(logged_in["refresh_token"].is_string(), "{logged_in}");
    assert!(!str_of(&logged_in, "device_token").is_empty(), "{logged_in}");
    assert!(logged_in["expires_in"].is_u64() && logged_in["refresh_expires_in"].is_u64());
    let access = claims(token(&logged_in));
    assert_eq!(access["amr"], json!(["hwk", "user", "mfa"]), "{access}");
    assert_eq!(access["sub"], user_id);
    assert_eq!(me(&app, token(&logged_in)).await["id"], user_id);

    // The last use is recorded.
    let listed = passkeys(&app, token(&pair)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    let used = listed[0]["last_used_at"].as_str().expect("last_used_at is set");
    assert!(chrono::DateTime::parse_from_rfc3339(used).is_ok(), "{used}");

    // The login is audited as one.
    let events = own_events(&app, token(&logged_in)).await;
    assert_eq!(kinds(&events)[0], "login", "{events:?}");
    assert_eq!(events[0]["outcome"], "success");

    // A refreshed pair keeps the session's amr.
    let refreshed = app.refreshed(str_of(&logged_in, "refresh_token")).await;
    assert_eq!(claims(token(&refreshed))["amr"], json!(["hwk", "user", "mfa"]));
    Ok(())
}

#[tokio::test]
async fn a_login_without_user_verification_is_not_multi_factor() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::without_user_verification();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let logged_in = ok_json(discoverable_login(&app, &mut authenticator).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user"]));
    Ok(())
}

#[tokio::test]
async fn a_passkey_login_may_name_a_device_token() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let options = login_options(&app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    let body = json!({
        "challenge_id": options["challenge_id"],
        "credential": credential,
        "device_token": str_of(&pair, "device_token"),
    });
    let logged_in = ok_json(app.post("/v1/auth/passkeys/login", body).await).await;
    assert!(!str_of(&logged_in, "device_token").is_empty(), "{logged_in}");
    Ok(())
}

#[tokio::test]
async fn an_authenticator_without_a_counter_logs_in_every_time() -> TestResult {
    // Synced passkeys send a counter of 0 every time: that is "no counter", not a regression.
    let app = app().await;
    let mut authenticator = Authenticator { keeps_counter: false, ..Authenticator::new() };
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    for attempt in 0..3 {
        let response = discoverable_login(&app, &mut authenticator).await;
        assert_eq!(response.status(), StatusCode::OK, "attempt {attempt}");
    }
    Ok(())
}

#[tokio::test]
async fn login_options_for_an_email_list_that_accounts_credentials() -> TestResult {
    let app = app().await;
    let mut laptop = Authenticator::new();
    let mut phone = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut laptop).await;
    add_passkey(&app, token(&pair), &mut phone, Some("phone")).await;
    let mut bobs = Authenticator::new();
    user_with_passkey(&app, "bob@example.com", &mut bobs).await;

    let options = login_options(&app, Some(json!({"email": " Alice@Example.com"}))).await;
    let listed: BTreeSet<String> = allowed_ids(&options["publicKey"]).into_iter().collect();
    let expected: BTreeSet<String> =
        [laptop.last().id_b64(), phone.last().id_b64()].into_iter().collect();
    assert_eq!(listed, expected, "{options}");

    let credential = phone.assert(&options["publicKey"], ORIGIN);
    let logged_in = ok_json(passkey_login(&app, &options["challenge_id"], &credential).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user", "mfa"]));
    Ok(())
}

#[tokio::test]
async fn an_unknown_email_gets_decoy_credentials_that_stay_the_same() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    app.signed_in("nopasskey@example.com").await;
    let real = login_options(&app, Some(json!({"email": "alice@example.com"}))).await;
    let real_entry = real["publicKey"]["allowCredentials"][0].clone();
    let real_keys: BTreeSet<&String> = real_entry.as_object().unwrap().keys().collect();
    let shape = |v: &Value| -> BTreeSet<String> {
        v["publicKey"].as_object().unwrap().keys().cloned().collect()
    };

    // Enough emails that a count drawn at random outside one or two would show (the decoys are
    // derived under a key of this server, so each run draws anew).
    let mut emails: Vec<String> = (0..24).map(|i| format!("ghost{i}@example.com")).collect();
    emails.push("nopasskey@example.com".to_owned());
    let mut decoys = Vec::new();
    let mut wrong_counts = Vec::new();
    for email in &emails {
        let first = login_options(&app, Some(json!({"email": email}))).await;
        let second = login_options(&app, Some(json!({"email": email.to_uppercase()}))).await;
        let ids = allowed_ids(&first["publicKey"]);
        if !(1..=2).contains(&ids.len()) {
            wrong_counts.push(format!("{email}: {} ids in {first}", ids.len()));
        }
        assert_eq!(ids, allowed_ids(&second["publicKey"]), "{email}: the same on every call");
        assert_ne!(first["challenge_id"], second["challenge_id"]);
        for entry in first["publicKey"]["allowCredentials"].as_array().unwrap() {
            let keys: BTreeSet<&String> = entry.as_object().unwrap().keys().collect();
            assert_eq!(keys, real_keys, "a decoy looks like a real entry: {entry} vs {real_entry}");
            let id = unb64(entry["id"].as_str().unwrap());
            assert!(id.len() >= 16, "{entry}");
        }
        // The rest of the options has the same shape as a real account's.
        assert_eq!(shape(&first), shape(&real), "{first} vs {real}");
        decoys.push(ids);
    }
    assert!(wrong_counts.is_empty(), "one or two decoy ids expected: {wrong_counts:#?}");
    let distinct: BTreeSet<&Vec<String>> = decoys.iter().collect();
    assert_eq!(distinct.len(), decoys.len(), "derived from the email");

    // A decoy id logs nobody in.
    let ghost = login_options(&app, Some(json!({"email": "ghost0@example.com"}))).await;
    let decoy = unb64(&allowed_ids(&ghost["publicKey"])[0]);
    let tamper =
        Tamper { credential_id: Some(authenticator.last().id.clone()), ..Tamper::default() };
    let mut credential = authenticator.assert_tampered(&ghost["publicKey"], ORIGIN, &tamper);
    credential["id"] = json!(b64(&decoy));
    credential["rawId"] = json!(b64(&decoy));
    assert_refused(passkey_login(&app, &ghost["challenge_id"], &credential).await).await;
    Ok(())
}

#[tokio::test]
async fn an_assertion_from_another_origin_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    for origin in ["http://evil.example:8080", "http://localhost:8081", "https://localhost:8080"] {
        let tamper = Tamper { origin: Some(origin.into()), ..Tamper::default() };
        assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    }
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn an_assertion_for_another_rp_id_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let tamper = Tamper { rp_id: Some("evil.example".into()), ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let options = login_options(&app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    let first = passkey_login(&app, &options["challenge_id"], &credential).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_refused(passkey_login(&app, &options["challenge_id"], &credential).await).await;
    // Nor does a fresh assertion on the used challenge pass.
    let fresh = authenticator.assert(&options["publicKey"], ORIGIN);
    assert_refused(passkey_login(&app, &options["challenge_id"], &fresh).await).await;
    // Nor the old assertion on a new challenge.
    let next = login_options(&app, None).await;
    assert_refused(passkey_login(&app, &next["challenge_id"], &credential).await).await;
    Ok(())
}

#[tokio::test]
async fn a_tampered_signature_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let tamper = Tamper { flip_signature: true, ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_signature_over_another_challenge_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    // A challenge the attacker made up, and one the server issued for another ceremony.
    let other = login_options(&app, None).await;
    let issued = other["publicKey"]["challenge"].as_str().unwrap().to_owned();
    for challenge in [b64(&[9u8; 32]), issued] {
        let tamper = Tamper { challenge: Some(challenge), ..Tamper::default() };
        assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    }
    Ok(())
}

#[tokio::test]
async fn an_assertion_of_the_wrong_kind_or_without_presence_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let tamper = Tamper { client_data_type: Some("webauthn.create".into()), ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    let tamper = Tamper { no_user_presence: true, ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_counter_that_does_not_increase_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    for _ in 0..2 {
        assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    }
    assert_eq!(authenticator.last().counter, 2);
    // The same value again, a smaller one, and 0 once a counter has been seen: a clone.
    for counter in [2, 1, 0] {
        let tamper = Tamper { counter: Some(counter), ..Tamper::default() };
        let response = tampered_login(&app, &mut authenticator, &tamper).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "counter {counter}");
        assert_refused(response).await;
    }
    // A higher value than the last accepted passes.
    let tamper = Tamper { counter: Some(1000), ..Tamper::default() };
    assert_eq!(tampered_login(&app, &mut authenticator, &tamper).await.status(), StatusCode::OK);
    // And the stored counter is now 1000: the authenticator's own next value (7) is refused.
    let response = discoverable_login(&app, &mut authenticator).await;
    assert_refused(response).await;
    Ok(())
}

#[tokio::test]
async fn another_users_handle_is_refused() -> TestResult {
    let app = app().await;
    let mut alices = Authenticator::new();
    let mut bobs = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut alices).await;
    user_with_passkey(&app, "bob@example.com", &mut bobs).await;
    let bob_handle = bobs.last().user_handle.clone();
    assert_ne!(bob_handle, alices.last().user_handle);
    // Alice's credential, claiming to be Bob's.
    let tamper = Tamper { user_handle: Some(bob_handle.clone()), ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut alices, &tamper).await).await;
    // And with Bob's email-first options too.
    let options = login_options(&app, Some(json!({"email": "bob@example.com"}))).await;
    let tamper = Tamper {
        user_handle: Some(bob_handle),
        credential_id: Some(alices.last().id.clone()),
        ..Tamper::default()
    };
    let credential = alices.assert_tampered(&options["publicKey"], ORIGIN, &tamper);
    assert_refused(passkey_login(&app, &options["challenge_id"], &credential).await).await;
    // A handle no one has.
    let tamper = Tamper { user_handle: Some(vec![0x42; 16]), ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut alices, &tamper).await).await;
    Ok(())
}

#[tokio::test]
async fn an_unknown_challenge_id_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let options = login_options(&app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    for challenge_id in
        [json!("no-such-challenge"), json!(uuid::Uuid::new_v4().to_string()), json!("")]
    {
        assert_refused(passkey_login(&app, &challenge_id, &credential).await).await;
    }
    // The same for a registration.
    let register = register_options(&app, token(&pair)).await;
    let new = Authenticator::new().register(&register["publicKey"], ORIGIN);
    let unknown = json!(uuid::Uuid::new_v4().to_string());
    assert_refused(post_passkey(&app, token(&pair), &unknown, new, None).await).await;
    // A registration challenge is no login challenge, nor the other way round.
    let login_id = &options["challenge_id"];
    let other = Authenticator::new().register(&register["publicKey"], ORIGIN);
    assert_refused(post_passkey(&app, token(&pair), login_id, other, None).await).await;
    assert_refused(passkey_login(&app, &register["challenge_id"], &credential).await).await;
    Ok(())
}

#[tokio::test]
async fn a_challenge_expires_after_five_minutes() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let app = common::spawn_with_clock(&RP, clock.clone()).await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;

    let options = login_options(&app, None).await;
    let register = register_options(&app, token(&pair)).await;
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    assert_refused(passkey_login(&app, &options["challenge_id"], &credential).await).await;
    let new = Authenticator::new().register(&register["publicKey"], ORIGIN);
    assert_refused(post_passkey(&app, token(&pair), &register["challenge_id"], new, None).await)
        .await;
    // A fresh challenge still works.
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_malformed_credential_is_a_client_error_never_a_server_error() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let options = login_options(&app, None).await;
    let honest = authenticator.assert(&options["publicKey"], ORIGIN);
    let garbage = b64(b"\xff\x00not cbor, not json");
    let mut variants = vec![
        json!({}),
        json!("a string"),
        json!(null),
        json!([1, 2, 3]),
        json!({"id": "x", "rawId": "%%%", "type": "public-key", "response": {}}),
    ];
    for (field, value) in [
        ("clientDataJSON", json!(garbage)),
        ("authenticatorData", json!(garbage)),
        ("authenticatorData", json!("")),
        ("signature", json!("")),
        ("signature", json!("!!not base64!!")),
        ("userHandle", json!(12)),
        ("clientDataJSON", json!(b64(b"{\"type\":\"webauthn.get\"}"))),
    ] {
        let mut credential = honest.clone();
        credential["response"][field] = value;
        variants.push(credential);
    }
    let mut wrong_type = honest.clone();
    wrong_type["type"] = json!("password");
    variants.push(wrong_type);
    for credential in &variants {
        let options = login_options(&app, None).await;
        let response = passkey_login(&app, &options["challenge_id"], credential).await;
        let status = response.status();
        let body: Value = response.json().await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{credential}: {body}");
        assert!(
            body["code"] == "invalid_challenge" || body["code"] == "malformed_request",
            "{credential}: {body}"
        );
    }
    // Missing fields and wrong field types are malformed requests.
    for body in
        [json!({}), json!({"credential": honest}), json!({"challenge_id": 5, "credential": honest})]
    {
        let response = app.post("/v1/auth/passkeys/login", body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    }
    let response = login_options_response(&app, Some(json!({"email": 5}))).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;

    // The same for registration.
    let register = register_options(&app, token(&pair)).await;
    let good = Authenticator::new().register(&register["publicKey"], ORIGIN);
    let mut variants = vec![json!({}), json!("a string"), json!(null)];
    for (field, value) in [
        ("attestationObject", json!(garbage)),
        ("attestationObject", json!("")),
        ("clientDataJSON", json!(garbage)),
        ("transports", json!("internal")),
    ] {
        let mut credential = good.clone();
        credential["response"][field] = value;
        variants.push(credential);
    }
    for credential in variants {
        let register = register_options(&app, token(&pair)).await;
        let response =
            post_passkey(&app, token(&pair), &register["challenge_id"], credential.clone(), None)
                .await;
        let status = response.status();
        let body: Value = response.json().await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{credential}: {body}");
        assert!(
            body["code"] == "invalid_challenge" || body["code"] == "malformed_request",
            "{credential}: {body}"
        );
    }
    let response = app
        .request(Method::POST, "/v1/auth/passkeys", Some(token(&pair)), Some(json!({"name": "x"})))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    // Nothing was registered on the way, and the honest assertion still logs in.
    assert_eq!(passkeys(&app, token(&pair)).await.len(), 1);
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_deleted_passkey_no_longer_logs_in() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, created) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let mut bobs = Authenticator::new();
    let (bob, bobs_passkey) = user_with_passkey(&app, "bob@example.com", &mut bobs).await;
    let path = format!("/v1/auth/passkeys/{}", str_of(&created, "id"));

    // Not Bob's to delete; malformed and unknown ids are not found either.
    let response = app.request(Method::DELETE, &path, Some(token(&bob)), None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    for id in ["not-an-id".to_owned(), uuid::Uuid::new_v4().to_string(), "%20".to_owned()] {
        let other = format!("/v1/auth/passkeys/{id}");
        let response = app.request(Method::DELETE, &other, Some(token(&pair)), None).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(passkeys(&app, token(&pair)).await.len(), 1);

    let response = app.request(Method::DELETE, &path, Some(token(&pair)), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(passkeys(&app, token(&pair)).await.is_empty());
    assert!(!mfa_of(&me(&app, token(&pair)).await).contains(&"passkey".to_owned()));
    let again = app.request(Method::DELETE, &path, Some(token(&pair)), None).await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;

    assert_refused(discoverable_login(&app, &mut authenticator).await).await;
    // It is no longer listed for the email (a decoy stands in its place).
    let options = login_options(&app, Some(json!({"email": "alice@example.com"}))).await;
    assert!(!allowed_ids(&options["publicKey"]).contains(&authenticator.last().id_b64()));

    // Bob's passkey is untouched.
    assert_eq!(passkeys(&app, token(&bob)).await, [bobs_passkey]);
    assert_eq!(discoverable_login(&app, &mut bobs).await.status(), StatusCode::OK);

    let events = own_events(&app, token(&pair)).await;
    let kinds = kinds(&events);
    assert!(kinds.contains(&"passkey_added"), "{kinds:?}");
    assert!(kinds.contains(&"passkey_removed"), "{kinds:?}");
    let removed = kinds.iter().position(|k| *k == "passkey_removed").unwrap();
    let added = kinds.iter().position(|k| *k == "passkey_added").unwrap();
    assert!(removed < added, "newest first: {kinds:?}");
    Ok(())
}

#[tokio::test]
async fn passkey_changes_and_failed_ceremonies_are_audited() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let events = own_events(&app, token(&pair)).await;
    assert_eq!(kinds(&events)[0], "passkey_added", "{events:?}");
    assert_eq!(events[0]["outcome"], "success");

    // A forged assertion for Alice's credential is a failed login of hers.
    let tamper = Tamper { flip_signature: true, ..Tamper::default() };
    let response = tampered_login(&app, &mut authenticator, &tamper).await;
    let request_id = response.headers()["x-request-id"].to_str()?.to_owned();
    assert_refused(response).await;
    let events = own_events(&app, token(&pair)).await;
    assert_eq!(kinds(&events)[0], "login_failed", "{events:?}");
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[0]["request_id"], request_id.as_str());

    // A ceremony that names no known credential is in the admin's trail.
    common::create_admin(&app, "admin@example.com").await;
    let admin = app.logged_in("admin@example.com", PASSWORD).await;
    let unknown = json!(uuid::Uuid::new_v4().to_string());
    let options = login_options(&app, None).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    let response = passkey_login(&app, &unknown, &credential).await;
    let request_id = response.headers()["x-request-id"].to_str()?.to_owned();
    assert_refused(response).await;
    let page = ok_json(app.get("/v1/admin/audit?type=login_failed", token(&admin)).await).await;
    let failed = page["events"].as_array().unwrap();
    assert!(
        failed.iter().any(|e| e["request_id"] == request_id.as_str()),
        "no login_failed for request {request_id}: {page}"
    );
    assert!(failed.iter().all(|e| e["type"] == "login_failed" && e["outcome"] == "failure"));
    Ok(())
}

#[tokio::test]
async fn a_failed_ceremony_takes_from_the_ip_budget() -> TestResult {
    let app = app_with(&[("PORTCULLIS_RATE_LIMIT_IP", "3/min")]).await;
    let credential = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {
        "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA", "userHandle": null
    }});
    for attempt in 0..3 {
        let unknown = json!(uuid::Uuid::new_v4().to_string());
        let response = passkey_login(&app, &unknown, &credential).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "attempt {attempt}");
    }
    let unknown = json!(uuid::Uuid::new_v4().to_string());
    let response = passkey_login(&app, &unknown, &credential).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    Ok(())
}

#[tokio::test]
async fn a_lockout_does_not_hold_a_passkey_login() -> TestResult {
    let app = app_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    for _ in 0..3 {
        let response = app.login("alice@example.com", "Wrong-Pass-123").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = app.login("alice@example.com", PASSWORD).await;
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;

    let logged_in = ok_json(discoverable_login(&app, &mut authenticator).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user", "mfa"]));
    let options = login_options(&app, Some(json!({"email": "alice@example.com"}))).await;
    let credential = authenticator.assert(&options["publicKey"], ORIGIN);
    assert_eq!(
        passkey_login(&app, &options["challenge_id"], &credential).await.status(),
        StatusCode::OK
    );
    Ok(())
}

/// The RFC 6238 code of a base32 secret now: HMAC-SHA1, 30 s steps, 6 digits, unless the
/// otpauth URI says otherwise.
fn totp_code(secret: &str, uri: &str) -> String {
    let parameter = |name: &str| {
        uri.split(['?', '&'])
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let digits: u32 = parameter("digits").map_or(6, |d| d.parse().unwrap());
    let period: u64 = parameter("period").map_or(30, |p| p.parse().unwrap());
    let algorithm = parameter("algorithm").unwrap_or_else(|| "SHA1".into());
    assert_eq!(algorithm.to_uppercase(), "SHA1", "{uri}");
    assert_eq!((digits, period), (6, 30), "{uri}");
    let key = base32_decode(secret).expect("a base32 secret");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    code_at(&key, i64::try_from(now.as_secs()).unwrap())
}

#[test]
fn the_totp_helper_matches_rfc_6238() {
    // RFC 4648's test vector, and the secret of RFC 6238's SHA-1 vectors.
    assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
    assert_eq!(base32_decode("MZXW6YTB").unwrap(), b"fooba");
    let secret = base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(secret, b"12345678901234567890");
}

#[tokio::test]
async fn a_passkey_login_asks_no_second_factor_of_an_account_with_totp() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    let (pair, _) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let enrol = app
        .request(
            Method::POST,
            "/v1/auth/mfa/totp",
            Some(token(&pair)),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    let enrol = ok_json(enrol).await;
    let code = totp_code(str_of(&enrol, "secret"), str_of(&enrol, "otpauth_uri"));
    let confirm = app
        .request(
            Method::POST,
            "/v1/auth/mfa/totp/confirm",
            Some(token(&pair)),
            Some(json!({"code": code})),
        )
        .await;
    ok_json(confirm).await;
    let mfa = mfa_of(&me(&app, token(&pair)).await);
    assert!(mfa.contains(&"totp".to_owned()) && mfa.contains(&"passkey".to_owned()), "{mfa:?}");
    // The password alone now needs the second factor; the passkey does not.
    let password = app.login("alice@example.com", PASSWORD).await;
    assert_problem(password, StatusCode::UNAUTHORIZED, "mfa_required").await;
    let logged_in = ok_json(discoverable_login(&app, &mut authenticator).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user", "mfa"]));
    assert!(logged_in.get("mfa_token").is_none(), "{logged_in}");
    Ok(())
}

/// Turns TOTP on for the signed-in user at `clock`'s time; returns the base32 secret.
async fn turn_totp_on(app: &TestApp, token: &str, clock: &ManualClock) -> Vec<u8> {
    let body = json!({"password": PASSWORD});
    let enrol = app.request(Method::POST, "/v1/auth/mfa/totp", Some(token), Some(body)).await;
    let enrol = ok_json(enrol).await;
    let secret = base32_decode(str_of(&enrol, "secret")).expect("a base32 secret");
    let code = code_at(&secret, clock_seconds(clock));
    let body = json!({"code": code});
    let confirm =
        app.request(Method::POST, "/v1/auth/mfa/totp/confirm", Some(token), Some(body)).await;
    ok_json(confirm).await;
    secret
}

fn clock_seconds(clock: &ManualClock) -> i64 {
    use portcullis::domain::Clock;
    clock.now().timestamp()
}

async fn options_with(app: &TestApp, token: &str, body: Option<Value>) -> Response {
    app.request(Method::POST, "/v1/auth/passkeys/register/options", Some(token), body).await
}

#[tokio::test]
async fn a_stolen_access_token_cannot_add_or_remove_a_passkey_without_the_password() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let app = common::spawn_with_clock(&RP, clock.clone()).await;
    let mut authenticator = Authenticator::new();
    let (pair, created) = user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let path = format!("/v1/auth/passkeys/{}", str_of(&created, "id"));

    // Six minutes on, the access token still works, but no longer stands in for the password.
    clock.advance(Duration::from_secs(6 * 60));
    ok_json(app.get("/v1/auth/me", token(&pair)).await).await;
    let response = options_with(&app, token(&pair), None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let response = app.request(Method::DELETE, &path, Some(token(&pair)), None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let wrong = json!({"password": "Not-The-Password-1"});
    let response = options_with(&app, token(&pair), Some(wrong.clone())).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let response = app.request(Method::DELETE, &path, Some(token(&pair)), Some(wrong)).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(passkeys(&app, token(&pair)).await.len(), 1, "nothing was removed");

    // With the password, both go through.
    let proof = json!({"password": PASSWORD});
    let options = ok_json(options_with(&app, token(&pair), Some(proof.clone())).await).await;
    let credential = Authenticator::new().register(&options["publicKey"], ORIGIN);
    let added = post_passkey(&app, token(&pair), &options["challenge_id"], credential, None).await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let response = app.request(Method::DELETE, &path, Some(token(&pair)), Some(proof)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(passkeys(&app, token(&pair)).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_session_older_than_the_accounts_totp_needs_a_code_to_add_a_passkey() -> TestResult {
    let clock = Arc::new(ManualClock::new());
    let app = common::spawn_with_clock(&RP, clock.clone()).await;
    let pair = app.signed_in("alice@example.com").await;
    let secret = turn_totp_on(&app, token(&pair), &clock).await;

    // Signed in a moment ago, but with the password alone: TOTP came after.
    let response = options_with(&app, token(&pair), None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let password_only = json!({"password": PASSWORD});
    let response = options_with(&app, token(&pair), Some(password_only)).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    clock.advance(Duration::from_secs(30));
    let code = code_at(&secret, clock_seconds(&clock));
    let proof = json!({"password": PASSWORD, "code": code});
    ok_json(options_with(&app, token(&pair), Some(proof)).await).await;

    // A sign-in that included the code stands in for both, for five minutes.
    let first = app.login("alice@example.com", PASSWORD).await;
    let mfa_token = ok_or_mfa_token(first).await;
    clock.advance(Duration::from_secs(30));
    let code = code_at(&secret, clock_seconds(&clock));
    let body = json!({"mfa_token": mfa_token, "code": code});
    let full = ok_json(app.post("/v1/auth/login/mfa", body).await).await;
    ok_json(options_with(&app, token(&full), None).await).await;
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let response = options_with(&app, token(&full), None).await;
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    Ok(())
}

/// The `mfa_token` of a login answered `mfa_required`.
async fn ok_or_mfa_token(response: Response) -> String {
    let problem = assert_problem(response, StatusCode::UNAUTHORIZED, "mfa_required").await;
    str_of(&problem, "mfa_token").to_owned()
}

#[tokio::test]
async fn an_assertion_made_in_a_cross_origin_frame_is_refused() -> TestResult {
    let app = app().await;
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    let tamper = Tamper { cross_origin: true, ..Tamper::default() };
    assert_refused(tampered_login(&app, &mut authenticator, &tamper).await).await;
    // The same authenticator, in the top-level page, still signs in.
    assert_eq!(discoverable_login(&app, &mut authenticator).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn an_assertion_without_user_verification_signs_in_without_mfa() -> TestResult {
    let app = app().await;
    // Registered with user verification; this time the user only touched the key.
    let mut authenticator = Authenticator::new();
    user_with_passkey(&app, "alice@example.com", &mut authenticator).await;
    authenticator.user_verification = false;
    let logged_in = ok_json(discoverable_login(&app, &mut authenticator).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user"]));
    authenticator.user_verification = true;
    let logged_in = ok_json(discoverable_login(&app, &mut authenticator).await).await;
    assert_eq!(claims(token(&logged_in))["amr"], json!(["hwk", "user", "mfa"]));
    Ok(())
}

#[tokio::test]
async fn a_passkey_name_with_bidirectional_or_invisible_characters_is_refused() -> TestResult {
    let app = app().await;
    let pair = app.signed_in("alice@example.com").await;
    for name in ["work\u{202E}yek", "lap\u{200B}top", "\u{2066}phone\u{2069}", "key\u{FEFF}"] {
        let options = register_options(&app, token(&pair)).await;
        let credential = Authenticator::new().register(&options["publicKey"], ORIGIN);
        let response =
            post_passkey(&app, token(&pair), &options["challenge_id"], credential, Some(name))
                .await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert!(passkeys(&app, token(&pair)).await.is_empty());
    Ok(())
}
