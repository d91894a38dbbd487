//! Passkeys as a real browser makes them: Debian's Chromium, driven by `playwright-core`
//! (`tests/browser/passkey.mjs`) with a CDP virtual authenticator (CTAP2, internal, resident
//! keys, user verification), loads a page from `http://localhost:PAGEPORT` whose plain script
//! registers an account, logs in, registers a passkey and logs in with it twice (discoverable,
//! then with `{"email"}`).
//!
//! The script hands the server's `publicKey` straight to
//! `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON` and sends
//! back `credential.toJSON()`, with no glue code: this is the check that the server speaks the
//! WebAuthn Level 3 JSON forms a browser produces and consumes.
//!
//! A second test runs cookie mode (`REFRESH_COOKIE=on`) in the same browser: log in, then
//! refresh and log out with the `HttpOnly` cookie alone, and a refresh without
//! `X-Requested-With` refused.
//!
//! Without Chromium, Node or `tests/browser/node_modules/playwright-core` (`npm ci --prefix
//! tests/browser`) the tests are skipped, except under CI, where they fail.

use crate::common;
use crate::common::browser;

use std::net::SocketAddr;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

/// The page's script: plain JavaScript, no WebAuthn glue. Every step records what it saw in
/// `out.steps`; the first failure stops the run (`out.stopped`). `window.__passkey` is the record
/// and `window.__passkeyDone` says the script has finished.
const SCRIPT: &str = r#"
const out = { steps: {}, features: {}, stopped: null };
window.__passkey = out;
const api = config.api;

// A POST with a JSON body, or with none (`undefined`), and the bearer if there is one.
function post(body, token) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = "Bearer " + token;
  const init = { method: "POST", headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  return init;
}
function bearer(token) {
  return { headers: { authorization: "Bearer " + token } };
}
class Stop extends Error {}
// A call to the API: records the status, the body and (for a POST) what was sent; stops the run
// unless the status is the expected one.
async function call(name, path, init, expected) {
  const step = { request: init && init.body ? JSON.parse(init.body) : null };
  out.steps[name] = step;
  try {
    const response = await fetch(api + path, init);
    step.status = response.status;
    const text = await response.text();
    try { step.body = text ? JSON.parse(text) : null; } catch (e) { step.body = text; }
  } catch (error) {
    step.error = String(error);
  }
  if (step.status !== expected) throw new Stop(name + ": expected " + expected);
  return step.body;
}
// A WebAuthn ceremony: records the browser's JSON form of the result, or its error.
async function ceremony(name, run) {
  const step = {};
  out.steps[name] = step;
  try {
    const credential = await run();
    step.ok = credential !== null;
    step.credential = credential && credential.toJSON();
    return credential;
  } catch (error) {
    step.ok = false;
    step.error = (error && error.name ? error.name + ": " : "") + String(error && error.message || error);
    throw new Stop(name + ": " + step.error);
  }
}

async function run() {
  out.features = {
    userAgent: navigator.userAgent,
    isSecureContext: window.isSecureContext,
    parseCreationOptionsFromJSON: typeof PublicKeyCredential !== "undefined" &&
      typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function",
    parseRequestOptionsFromJSON: typeof PublicKeyCredential !== "undefined" &&
      typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function",
    toJSON: typeof PublicKeyCredential !== "undefined" &&
      typeof PublicKeyCredential.prototype.toJSON === "function",
  };
  if (!out.features.parseCreationOptionsFromJSON || !out.features.parseRequestOptionsFromJSON ||
      !out.features.toJSON) {
    throw new Stop("this browser lacks the WebAuthn Level 3 JSON methods");
  }

  const account = { email: config.email, password: config.password };
  await call("register", "/v1/auth/register", post(account), 201);
  const login = await call("login", "/v1/auth/login", post(account), 200);

  // Registration ceremony.
  const creation = await call("registerOptions", "/v1/auth/passkeys/register/options",
                              post(undefined, login.access_token), 200);
  const created = await ceremony("create", () => navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(creation.publicKey),
  }));
  await call("addPasskey", "/v1/auth/passkeys",
             post({ challenge_id: creation.challenge_id, credential: created.toJSON(),
                    name: "browser" }, login.access_token), 201);
  await call("list", "/v1/auth/passkeys", bearer(login.access_token), 200);

  // Discoverable login: no email, any resident credential of this RP.
  const request = await call("loginOptions", "/v1/auth/passkeys/login/options", post({}), 200);
  const assertion = await ceremony("get", () => navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(request.publicKey),
  }));
  const loginBody = { challenge_id: request.challenge_id, credential: assertion.toJSON() };
  const pair = await call("passkeyLogin", "/v1/auth/passkeys/login", post(loginBody), 200);
  await call("me", "/v1/auth/me", bearer(pair.access_token), 200);
  // The same challenge and assertion again: a challenge is single use.
  await call("replay", "/v1/auth/passkeys/login", post(loginBody), 400);

  // Login for a named account: its credentials are listed.
  const named = await call("emailOptions", "/v1/auth/passkeys/login/options",
                           post({ email: config.email }), 200);
  const second = await ceremony("get2", () => navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(named.publicKey),
  }));
  await call("passkeyLogin2", "/v1/auth/passkeys/login",
             post({ challenge_id: named.challenge_id, credential: second.toJSON() }), 200);
  await call("me2", "/v1/auth/me", bearer(out.steps.passkeyLogin2.body.access_token), 200);
}

run().catch((error) => {
  out.stopped = error instanceof Stop ? error.message : "script error: " + String(error && error.stack || error);
}).finally(() => { window.__passkeyDone = true; });
"#;

fn page(api: SocketAddr, email: &str) -> String {
    let config =
        json!({ "api": format!("http://{api}"), "email": email, "password": common::PASSWORD });
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>passkey</title></head>\
         <body><p>passkey test</p><script>const config = {config};\n{SCRIPT}</script></body></html>"
    )
}

/// Serves `html` at `/` on `listener` (and, when it can, on the same port of `[::1]`, since
/// Chromium may try that address first for `localhost`).
fn serve_page(listener: tokio::net::TcpListener, html: String) -> Vec<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/", get(move || async move { Html(html) }))
        .route("/favicon.ico", get(|| async { "" }));
    browser::serve(listener, app)
}

/// Runs the Node driver on `url` and returns its report.
async fn run_driver(url: &str) -> Value {
    let (report, success) = browser::run_driver("passkey.mjs", &[url]).await;
    assert!(report["done"] == true && success, "the driver did not finish: {report:#}");
    report
}

fn step<'a>(result: &'a Value, name: &str) -> &'a Value {
    &result["steps"][name]
}

/// The claims of a JWT, unverified (the server's own tests verify signatures).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn chromium_registers_a_passkey_and_logs_in_with_it_using_the_level3_json_forms() {
    if !browser::browser_ready("the browser passkey test") {
        return;
    }

    // The page's origin must be known before the API starts: bind its port first. The page is
    // opened as http://localhost:PORT, so that the RP id `localhost` matches its origin.
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://localhost:{}", page_listener.local_addr().unwrap().port());
    let app = common::spawn_with(&[
        ("PORTCULLIS_CORS_ORIGINS", page_origin.as_str()),
        ("PORTCULLIS_WEBAUTHN_RP_ID", "localhost"),
        ("PORTCULLIS_WEBAUTHN_ORIGINS", page_origin.as_str()),
    ])
    .await;
    let email = "passkey@example.com";
    let _page = serve_page(page_listener, page(app.address, email));

    let report = run_driver(&format!("{page_origin}/")).await;
    let result = &report["result"];
    let shown = format!("{report:#}");

    let features = &result["features"];
    assert_eq!(
        features["parseCreationOptionsFromJSON"], true,
        "PublicKeyCredential.parseCreationOptionsFromJSON is missing in this Chromium: {shown}"
    );
    assert_eq!(features["parseRequestOptionsFromJSON"], true, "{shown}");
    assert_eq!(features["toJSON"], true, "{shown}");
    assert_eq!(features["isSecureContext"], true, "{shown}");
    assert!(result["stopped"].is_null(), "the page stopped: {}\n{shown}", result["stopped"]);

    for (name, status) in [
        ("register", 201),
        ("login", 200),
        ("registerOptions", 200),
        ("addPasskey", 201),
        ("list", 200),
        ("loginOptions", 200),
        ("passkeyLogin", 200),
        ("me", 200),
        ("replay", 400),
        ("emailOptions", 200),
        ("passkeyLogin2", 200),
        ("me2", 200),
    ] {
        assert_eq!(step(result, name)["status"], status, "{name}: {shown}");
    }
    for name in ["create", "get", "get2"] {
        assert_eq!(step(result, name)["ok"], true, "{name}: {shown}");
    }

    // Registration options: this RP, a challenge, and a user handle.
    let creation = &step(result, "registerOptions")["body"];
    assert!(creation["challenge_id"].as_str().is_some_and(|id| !id.is_empty()), "{shown}");
    assert_eq!(creation["publicKey"]["rp"]["id"], "localhost", "{shown}");
    assert!(creation["publicKey"]["challenge"].is_string(), "{shown}");
    assert!(creation["publicKey"]["user"]["id"].is_string(), "{shown}");

    // The passkey object, and the list holding it.
    let created = &step(result, "create")["credential"];
    let credential_id = created["id"].as_str().unwrap();
    let passkey = &step(result, "addPasskey")["body"];
    assert_eq!(passkey["name"], "browser", "{shown}");
    assert!(passkey["id"].is_string() && passkey["created_at"].is_string(), "{shown}");
    let listed = step(result, "list")["body"]["passkeys"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{shown}");
    assert_eq!(listed[0]["id"], passkey["id"], "{shown}");

    // Discoverable login: no credentials listed; the assertion names its user.
    let request = &step(result, "loginOptions")["body"]["publicKey"];
    assert!(
        request["allowCredentials"].as_array().is_none_or(|list| list.is_empty()),
        "discoverable login options list credentials: {shown}"
    );
    assert!(step(result, "get")["credential"]["response"]["userHandle"].is_string(), "{shown}");
    let pair = &step(result, "passkeyLogin")["body"];
    assert_eq!(pair["token_type"], "Bearer", "{shown}");
    assert!(pair["refresh_token"].is_string() && pair["device_token"].is_string(), "{shown}");
    let amr = claims(pair["access_token"].as_str().unwrap())["amr"].clone();
    assert_eq!(amr, json!(["hwk", "user", "mfa"]), "amr after a user-verified passkey: {shown}");

    // The final /me: the account, with the passkey among its second factors.
    for me in ["me", "me2"] {
        let body = &step(result, me)["body"];
        assert_eq!(body["email"], email, "{shown}");
        let mfa = body["mfa"].as_array().unwrap();
        assert!(mfa.contains(&json!("passkey")), "{me}: mfa lacks passkey: {shown}");
    }

    // The replayed challenge is refused as the contract says.
    assert_eq!(step(result, "replay")["body"]["code"], "invalid_challenge", "{shown}");

    // Login options for the account list its credential.
    let allowed = step(result, "emailOptions")["body"]["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap_or_else(|| panic!("no allowCredentials for a named account: {shown}"));
    assert!(allowed.iter().any(|c| c["id"] == credential_id), "{shown}");
    let second = &step(result, "passkeyLogin2")["body"];
    assert!(second["access_token"].is_string() && second["device_token"].is_string(), "{shown}");

    // The authenticator holds one resident credential for this RP.
    let stored = report["credentials"].as_array().unwrap();
    assert_eq!(stored.len(), 1, "{shown}");
    assert_eq!(stored[0]["rpId"], "localhost", "{shown}");
    assert_eq!(stored[0]["isResidentCredential"], true, "{shown}");
}

/// The page of the cookie-mode test: log in, then refresh and log out with the cookie alone,
/// the way a browser app that keeps no refresh token in JavaScript does. It records into the
/// same globals the driver waits for.
const COOKIE_SCRIPT: &str = r#"
const out = { steps: {} };
window.__passkey = out;
async function call(name, path, init) {
  try {
    const response = await fetch(config.api + path, { credentials: "include", ...init });
    const body = await response.json().catch(() => null);
    out.steps[name] = { status: response.status, body };
    return body;
  } catch (error) {
    out.steps[name] = { error: String(error) };
    return null;
  }
}
const post = (body, headers = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});
const withCookie = { method: "POST", headers: { "x-requested-with": "fetch" } };
(async () => {
  const account = { email: config.email, password: config.password };
  await call("register", "/v1/auth/register", post(account));
  const pair = await call("login", "/v1/auth/login", post(account));
  out.pageCookies = document.cookie;
  const first = await call("refresh", "/v1/auth/refresh", withCookie);
  out.rotated = !!(first && pair && first.refresh_token !== pair.refresh_token);
  await call("refreshWithoutHeader", "/v1/auth/refresh", { method: "POST" });
  const second = await call("refreshAgain", "/v1/auth/refresh", withCookie);
  out.rotatedAgain = !!(second && first && second.refresh_token !== first.refresh_token);
  await call("logout", "/v1/auth/logout", withCookie);
  await call("afterLogout", "/v1/auth/refresh", withCookie);
})().finally(() => { window.__passkeyDone = true; });
"#;

#[tokio::test]
async fn chromium_refreshes_and_logs_out_with_the_http_only_refresh_cookie() {
    if !browser::browser_ready("the browser cookie test") {
        return;
    }
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://localhost:{}", page_listener.local_addr().unwrap().port());
    let app = common::spawn_with(&[
        ("PORTCULLIS_CORS_ORIGINS", page_origin.as_str()),
        ("PORTCULLIS_REFRESH_COOKIE", "on"),
    ])
    .await;
    // The API at localhost too: same site as the page, so the SameSite=Strict cookie travels.
    let api = format!("http://localhost:{}", app.address.port());
    let config = json!({ "api": api, "email": "cookie@example.com", "password": common::PASSWORD });
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>cookie</title></head>\
         <body><script>const config = {config};\n{COOKIE_SCRIPT}</script></body></html>"
    );
    let _page = serve_page(page_listener, html);
    let report = run_driver(&format!("{page_origin}/")).await;
    let result = &report["result"];
    let shown = format!("{report:#}");
    for (name, status) in [
        ("register", 201),
        ("login", 200),
        ("refresh", 200),
        ("refreshWithoutHeader", 403),
        ("refreshAgain", 200),
        ("logout", 204),
        ("afterLogout", 401),
    ] {
        assert_eq!(step(result, name)["status"], status, "{name}: {shown}");
    }
    assert_eq!(result["pageCookies"], "", "the page's script reads no cookie: {shown}");
    assert_eq!(result["rotated"], true, "{shown}");
    assert_eq!(result["rotatedAgain"], true, "the cookie followed the rotation: {shown}");
    assert_eq!(step(result, "afterLogout")["body"]["code"], "invalid_token", "{shown}");
}
