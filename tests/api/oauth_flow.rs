//! The authorization code flow as a browser and a client drive it: `/oauth2/authorize`, the
//! login and consent pages (forms posted back with every hidden input they carry, cookies kept
//! as a browser keeps them), the code's redemption at `/oauth2/token`, the ID token checked
//! against the JWKS, and userinfo. With the attacks other providers fell to: redirect URI
//! tricks, error redirects to unchecked URIs, PKCE downgrade, racy and replayed redemption,
//! cross-site posts and sign-in session fixation.

use crate::common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, TestApp, spawn_with, str_of};
use futures::future::join_all;
use reqwest::{Method, Response, StatusCode, redirect};
use serde_json::{Value, json};
use sha2::Digest;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://app.example/callback";

/// A server whose issuer is its own URL.
async fn provider() -> TestApp {
    let address = common::free_port();
    let issuer = format!("http://{address}");
    spawn_with(&[("PORTCULLIS_BIND", &address.to_string()), ("PORTCULLIS_ISSUER", &issuer)]).await
}

/// A client registered by an admin with `body`'s members: its id and secret.
async fn client(app: &TestApp, body: Value) -> (String, Option<String>) {
    let admin = admin(app).await;
    let response = app.request(Method::POST, "/v1/admin/clients", Some(&admin), Some(body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let client: Value = response.json().await.unwrap();
    (str_of(&client, "client_id").to_owned(), client["client_secret"].as_str().map(str::to_owned))
}

/// The admin's access token (the admin is created on first use).
async fn admin(app: &TestApp) -> String {
    if app.login("root@example.com", PASSWORD).await.status() != StatusCode::OK {
        common::create_admin(app, "root@example.com").await;
    }
    str_of(&app.logged_in("root@example.com", PASSWORD).await, "access_token").to_owned()
}

/// A browser: it keeps the cookies it is given and sends them back, and follows no redirect.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(redirect::Policy::none()).build().unwrap();
        Self { http, base: app.url(""), cookies: HashMap::new() }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, response: &Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            assert!(text.contains("HttpOnly") && text.contains("Secure"), "{text}");
            assert!(text.contains("SameSite=Lax") && text.contains("Path=/"), "{text}");
            let (name, rest) = text.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> Response {
        let response = self
            .http
            .get(self.absolute(url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    async fn post(
        &mut self,
        url: &str,
        fields: &[(String, String)],
        origin: Option<&str>,
    ) -> Response {
        let mut request =
            self.http.post(self.absolute(url)).header("cookie", self.cookie_header()).form(fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        self.keep(&response);
        response
    }

    /// Posts the page's form (its action and every hidden input) with `fields` filled in, from
    /// the page's own origin.
    async fn submit(&mut self, html: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = hidden_inputs(html);
        all.extend(fields.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        let action = attribute(html, "<form", "action").unwrap();
        let origin = self.base.trim_end_matches('/').to_owned();
        self.post(&action, &all, Some(&origin)).await
    }
}

/// The value of `name` in the first tag that starts with `tag`.
fn attribute(html: &str, tag: &str, name: &str) -> Option<String> {
    let start = html.find(tag)?;
    let end = start + html[start..].find('>')?;
    let element = &html[start..end];
    let key = format!("{name}=\"");
    let from = element.find(&key)? + key.len();
    let value = &element[from..from + element[from..].find('"')?];
    Some(
        value
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x2F;", "/")
            .replace("&quot;", "\""),
    )
}

/// Every `<input type="hidden">` of the page, as (name, value).
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input")
        .skip(1)
        .filter(|chunk| chunk.split('>').next().unwrap_or("").contains("type=\"hidden\""))
        .map(|chunk| {
            let tag = format!("<input{chunk}");
            (
                attribute(&tag, "<input", "name").unwrap(),
                attribute(&tag, "<input", "value").unwrap(),
            )
        })
        .collect()
}

fn location(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{:?}", response.headers());
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The query parameters of a URL.
fn query(url: &str) -> HashMap<String, String> {
    let parsed = url::Url::parse(url).unwrap();
    parsed.query_pairs().map(|(n, v)| (n.into_owned(), v.into_owned())).collect()
}

fn authorize_url(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email profile"),
        ("state", "xyz-state"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        pairs.push((name, value));
    }
    let query: String =
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("/oauth2/authorize?{query}")
}

/// Signs in on the login page the authorization led to; the answer after the password.
async fn sign_in(browser: &mut Browser, login: &str, email: &str) -> Response {
    assert!(login.contains("/login?interaction="), "{login}");
    let page = browser.get(login).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' https://app.example;"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    let html = page.text().await.unwrap();
    browser.submit(&html, &[("email", email), ("password", PASSWORD)]).await
}

/// Allows on the consent page; the redirect to the client.
async fn consent(browser: &mut Browser, page_url: &str, decision: &str) -> String {
    assert!(page_url.contains("/consent?interaction="), "{page_url}");
    let page = browser.get(page_url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("See your email address"), "{html}");
    location(&browser.submit(&html, &[("decision", decision)]).await)
}

async fn redeem(app: &TestApp, id: &str, secret: &str, code: &str, verifier: &str) -> Response {
    app.client
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Verifies an ID token's signature against the JWKS, with its algorithm pinned.
async fn verified_id_token(
    app: &TestApp,
    token: &str,
    alg: jsonwebtoken::Algorithm,
    audience: &str,
) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.url("")]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

/// The discovery document.
async fn discovery(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/.well-known/openid-configuration")).send().await;
    response.unwrap().json().await.unwrap()
}

async fn user_info(app: &TestApp, token: &str) -> Response {
    app.client.get(app.url("/oauth2/userinfo")).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_user_signs_in_consents_and_the_client_redeems_the_code_once() {
    let app = provider().await;
    let (id, secret) =
        client(&app, json!({ "name": "Grafana <b>", "redirect_uris": [REDIRECT] })).await;
    let secret = secret.unwrap();
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);

    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let after_login = sign_in(&mut browser, &login, "ada@example.com").await;
    let consent_url = location(&after_login);
    let back = consent(&mut browser, &consent_url, "allow").await;
    assert!(back.starts_with(&format!("{REDIRECT}?")), "{back}");
    let answer = query(&back);
    assert_eq!(answer["state"], "xyz-state");
    assert_eq!(answer["iss"], app.url(""), "RFC 9207: the issuer names itself");
    let code = &answer["code"];
    assert!(code.len() >= 43);

    let tokens = redeem(&app, &id, &secret, code, VERIFIER).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    assert_eq!(tokens.headers()["cache-control"], "no-store");
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid email profile");
    assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token");
    let access = str_of(&tokens, "access_token");
    let id_token = str_of(&tokens, "id_token");
    let id_claims = verified_id_token(&app, id_token, jsonwebtoken::Algorithm::RS256, &id).await;
    assert_eq!(id_claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id_claims["azp"], id.as_str());
    assert_eq!(id_claims["email"], "ada@example.com");
    assert_eq!(id_claims["amr"], json!(["pwd"]));
    assert!(id_claims["auth_time"].is_i64() && id_claims["sid"].is_string(), "{id_claims}");
    let digest = sha2::Sha256::digest(access.as_bytes());
    assert_eq!(id_claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    let access_claims = claims(access);
    assert_eq!(access_claims["client_id"], id.as_str());
    assert_eq!(access_claims["sub"], id_claims["sub"]);

    let info = user_info(&app, access).await;
    assert_eq!(info.status(), StatusCode::OK);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["sub"], id_claims["sub"]);
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["email_verified"], false);
    // A client's token never opens the account API.
    assert_eq!(app.get("/v1/auth/me", access).await.status(), StatusCode::UNAUTHORIZED);

    // The code again: refused, and what it issued ends at once.
    let again = redeem(&app, &id, &secret, code, VERIFIER).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let revoked = user_info(&app, access).await;
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    let challenge = revoked.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn a_signed_in_browser_gets_its_code_without_a_page_and_prompt_none_never_shows_one() {
    let app = provider().await;
    let body = json!({ "name": "Wiki", "redirect_uris": [REDIRECT], "consent": "skip" });
    let (id, _) = client(&app, body).await;
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);

    // No sign-in session: prompt=none answers login_required at the redirect URI, with iss.
    let refused = location(&browser.get(&authorize_url(&id, &[("prompt", "none")])).await);
    let refused = query(&refused);
    assert_eq!(refused["error"], "login_required");
    assert_eq!(refused["state"], "xyz-state");
    assert_eq!(refused["iss"], app.url(""));

    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let back = location(&sign_in(&mut browser, &login, "ada@example.com").await);
    assert!(query(&back).contains_key("code"), "consent skipped: straight back: {back}");
    assert!(browser.cookies.contains_key("__Host-portcullis_session"));

    // Signed in: no page at all, with prompt=none too.
    for extra in [&[][..], &[("prompt", "none")][..]] {
        let back = location(&browser.get(&authorize_url(&id, extra)).await);
        assert!(query(&back).contains_key("code"), "{back}");
    }
    // prompt=login and max_age=0 ask for the password again.
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let again = location(&browser.get(&authorize_url(&id, &[extra])).await);
        assert!(again.contains("/login?interaction="), "{extra:?}: {again}");
    }
    let stale =
        location(&browser.get(&authorize_url(&id, &[("max_age", "0"), ("prompt", "none")])).await);
    assert_eq!(query(&stale)["error"], "login_required");

    // form_post: a page whose form posts the answer, allowed by its CSP, with a script file.
    let page = browser.get(&authorize_url(&id, &[("response_mode", "form_post")])).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' https://app.example;"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let html = page.text().await.unwrap();
    assert_eq!(attribute(&html, "<form", "action").unwrap(), REDIRECT);
    let fields: HashMap<String, String> = hidden_inputs(&html).into_iter().collect();
    assert!(fields["code"].len() >= 43 && fields["state"] == "xyz-state", "{fields:?}");
    assert_eq!(fields["iss"], app.url(""));
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let script = attribute(&html, "<script", "src").unwrap();
    let asset = browser.get(&script).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
}

#[tokio::test]
async fn a_request_that_names_no_registered_redirect_uri_gets_the_error_page_never_a_redirect() {
    let app = provider().await;
    let loopback = "http://127.0.0.1:8123/cb";
    let body = json!({ "name": "App", "redirect_uris": [REDIRECT, loopback] });
    let (id, _) = client(&app, body).await;
    let mut browser = Browser::new(&app);
    let tricks = [
        // Keycloak CVE-2026-7504: userinfo before the host.
        "https://app.example@evil.example/callback",
        // CVE-2026-3872: a path parameter that some servers strip.
        "https://app.example/callback/..;/evil",
        "https://app.example/callback/../evil",
        "https://app.example/callback?x=1",
        "https://APP.example/callback",
        "https://app.example/callback#frag",
        // CVE-2024-8883: a loopback port change, for a confidential client.
        "http://127.0.0.1:9999/cb",
        "http://localhost:8123/cb",
    ];
    for trick in tricks {
        let response = browser.get(&authorize_url(&id, &[("redirect_uri", trick)])).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{trick}");
        assert!(response.headers().get("location").is_none(), "{trick}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains("not registered"), "{trick}: {html}");
    }
    // An unknown client, and a repeated parameter: the page too. Every other error redirects.
    for url in [
        authorize_url("no-such-client", &[]),
        format!("{}&client_id={id}", authorize_url(&id, &[])),
    ] {
        let response = browser.get(&url).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(response.headers().get("location").is_none(), "{url}");
    }
    let plain =
        location(&browser.get(&authorize_url(&id, &[("code_challenge_method", "plain")])).await);
    assert_eq!(query(&plain)["error"], "invalid_request");
    let scope = location(&browser.get(&authorize_url(&id, &[("scope", "openid admin")])).await);
    assert_eq!(query(&scope)["error"], "invalid_scope");
    assert_eq!(query(&scope)["iss"], app.url(""));
}

#[tokio::test]
async fn pkce_is_checked_at_redemption_and_concurrent_redemptions_have_one_winner() {
    let app = provider().await;
    let body = json!({ "name": "App", "redirect_uris": [REDIRECT], "consent": "skip" });
    let (id, secret) = client(&app, body).await;
    let secret = secret.unwrap();
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let first = location(&sign_in(&mut browser, &login, "ada@example.com").await);
    let code = query(&first)["code"].clone();

    let wrong = redeem(&app, &id, &secret, &code, &"x".repeat(43)).await;
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The wrong verifier spent the code.
    let late = redeem(&app, &id, &secret, &code, VERIFIER).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);

    // A code issued without a challenge refuses a verifier (PKCE downgrade, RFC 9700 §4.8.2).
    let url = authorize_url(&id, &[("code_challenge", ""), ("code_challenge_method", "")]);
    let refused = location(&browser.get(&url).await);
    assert_eq!(query(&refused)["error"], "invalid_request", "require_pkce by default");

    // Eight redemptions at once: exactly one gets tokens.
    let code = query(&location(&browser.get(&authorize_url(&id, &[])).await))["code"].clone();
    let answers = join_all((0..8).map(|_| redeem(&app, &id, &secret, &code, VERIFIER))).await;
    let statuses: Vec<StatusCode> = answers.iter().map(Response::status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST));
    // And the replays ended the winner's tokens.
    for answer in answers {
        if answer.status() == StatusCode::OK {
            let tokens: Value = answer.json().await.unwrap();
            let info = user_info(&app, str_of(&tokens, "access_token")).await;
            assert_eq!(info.status(), StatusCode::UNAUTHORIZED);
        }
    }
    let admin = admin(&app).await;
    let trail = app.get("/v1/admin/audit?type=authorization_code_reused", &admin).await;
    let trail: Value = trail.json().await.unwrap();
    let events = trail["events"].as_array().unwrap();
    assert!(events.len() >= 7, "the wrong verifier's and seven racers' replays: {trail}");
    assert!(events.iter().all(|e| e["client_id"] == id.as_str()), "{trail}");
}

#[tokio::test]
async fn a_post_from_another_site_or_without_its_token_or_in_another_browser_changes_nothing() {
    let app = provider().await;
    let (id, _) = client(&app, json!({ "name": "App", "redirect_uris": [REDIRECT] })).await;
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let html = browser.get(&login).await.text().await.unwrap();
    let mut fields = hidden_inputs(&html);
    fields.push(("email".into(), "ada@example.com".into()));
    fields.push(("password".into(), PASSWORD.into()));
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| (n.clone(), if n == "csrf" { "forged".into() } else { v.clone() }))
        .collect();
    let action = app.url("/login");
    for (fields, origin) in
        [(&forged, Some(app.url(""))), (&fields, Some("https://evil.example".to_owned()))]
    {
        let refused = browser.post(&action, fields, origin.as_deref()).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(!browser.cookies.contains_key("__Host-portcullis_session"));
    }
    // Another browser (an attacker who got the interaction id) is refused too.
    let mut other = Browser::new(&app);
    let page = other.get(&login).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    // A wrong password re-renders the form with 401 and a message tied to the fields.
    let wrong =
        browser.submit(&html, &[("email", "ada@example.com"), ("password", "wrong-one")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let again = wrong.text().await.unwrap();
    assert!(again.contains("aria-describedby=\"login-error\""), "{again}");
    // A session cookie planted before the login is replaced by a new one (no fixation).
    browser.cookies.insert("__Host-portcullis_session".into(), "A".repeat(43));
    let consent_url = location(
        &browser.submit(&html, &[("email", "ada@example.com"), ("password", PASSWORD)]).await,
    );
    assert_ne!(browser.cookies["__Host-portcullis_session"], "A".repeat(43));
    // Deny: access_denied at the redirect URI.
    let denied = consent(&mut browser, &consent_url, "deny").await;
    assert_eq!(query(&denied)["error"], "access_denied");
    // The interaction was single use.
    let replay = browser.get(&consent_url).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
}

/// A web app on Authlib (`tests/oauth/code_flow.py`) signs a user in: Authlib builds the
/// request from discovery, redeems the code with PKCE and validates the ID token itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_signs_a_user_in_with_the_code_flow_and_validates_the_id_token() {
    if !common::python_has("authlib requests", "the Authlib web app") {
        return;
    }
    let app = provider().await;
    let (id, secret) = client(&app, json!({ "name": "Wiki", "redirect_uris": [REDIRECT] })).await;
    app.signed_in("ada@example.com").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/code_flow.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &app.url(""), &id, &secret.unwrap(), REDIRECT, "ada@example.com", PASSWORD])
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["pages"], json!(["/login", "/consent"]));
    assert_eq!(report["alg"], "RS256");
    assert_eq!(report["id_token"]["aud"], id.as_str());
    assert_eq!(report["id_token"]["email"], "ada@example.com");
    assert_eq!(report["userinfo"]["sub"], report["id_token"]["sub"]);
    assert_eq!(report["userinfo"]["email"], "ada@example.com");
}

/// An account with TOTP: the login page asks for the code after the password; a wrong one
/// re-renders the step with 401, and a recovery code completes it as two factors.
#[tokio::test]
async fn the_login_page_asks_an_account_with_totp_for_its_code() {
    let app = provider().await;
    let body = json!({ "name": "App", "redirect_uris": [REDIRECT], "consent": "skip" });
    let (id, secret) = client(&app, body).await;
    let pair = app.signed_in("ada@example.com").await;
    let access = str_of(&pair, "access_token");
    let enrolment = app
        .request(
            Method::POST,
            "/v1/auth/mfa/totp",
            Some(access),
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    let enrolment: Value = common::ok_json(enrolment).await;
    let key = common::totp::base32_decode(str_of(&enrolment, "secret")).unwrap();
    let now = || chrono::Utc::now().timestamp();
    let confirm = json!({ "code": common::totp::code_at(&key, now()) });
    let confirmed =
        app.request(Method::POST, "/v1/auth/mfa/totp/confirm", Some(access), Some(confirm)).await;
    let confirmed: Value = common::ok_json(confirmed).await;
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();

    let mut browser = Browser::new(&app);
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let step = sign_in(&mut browser, &login, "ada@example.com").await;
    assert_eq!(step.status(), StatusCode::OK, "the password alone completes nothing");
    assert!(!browser.cookies.contains_key("__Host-portcullis_session"));
    let html = step.text().await.unwrap();
    assert!(html.contains("autocomplete=\"one-time-code\""), "{html}");
    let current: Vec<String> =
        (-1..=1).map(|s| common::totp::code_at(&key, now() + s * 30)).collect();
    let wrong =
        (0..).map(|i| format!("{:06}", 111_111 + i)).find(|c| !current.contains(c)).unwrap();
    let refused = browser.submit(&html, &[("code", &wrong)]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let again = refused.text().await.unwrap();
    assert!(again.contains("aria-describedby=\"code-error\""), "{again}");
    let back = location(&browser.submit(&again, &[("code", &recovery)]).await);
    let code = query(&back)["code"].clone();
    let tokens: Value =
        common::ok_json(redeem(&app, &id, &secret.unwrap(), &code, VERIFIER).await).await;
    let amr = claims(str_of(&tokens, "id_token"))["amr"].clone();
    assert!(amr.as_array().unwrap().contains(&json!("mfa")), "{amr}");
}

/// RFC 7009: a client ends its own grant; another client's revocation of it changes nothing,
/// with the same 200.
#[tokio::test]
async fn a_client_revokes_its_own_token_and_another_clients_revocation_changes_nothing() {
    let app = provider().await;
    let body = json!({ "name": "App", "redirect_uris": [REDIRECT], "consent": "skip" });
    let (id, secret) = client(&app, body.clone()).await;
    let (other, other_secret) = client(&app, body).await;
    let (secret, other_secret) = (secret.unwrap(), other_secret.unwrap());
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let code =
        query(&location(&sign_in(&mut browser, &login, "ada@example.com").await))["code"].clone();
    let tokens: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let access = str_of(&tokens, "access_token");
    let revoke = |client_id: &str, secret: &str, token: &str| {
        app.client
            .post(app.url("/oauth2/revoke"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
    };
    assert_eq!(revoke(&other, &other_secret, access).await.unwrap().status(), StatusCode::OK);
    assert_eq!(user_info(&app, access).await.status(), StatusCode::OK, "not the other's to end");
    assert_eq!(revoke(&id, &secret, "not-a-token").await.unwrap().status(), StatusCode::OK);
    assert_eq!(revoke(&id, &secret, access).await.unwrap().status(), StatusCode::OK);
    assert_eq!(user_info(&app, access).await.status(), StatusCode::UNAUTHORIZED);

    // A refresh token: its grant ends, and another client's revocation of it changes nothing.
    let url = authorize_url(&id, &[("scope", "openid offline_access")]);
    let code = query(&location(&browser.get(&url).await))["code"].clone();
    let tokens: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let refresh = str_of(&tokens, "refresh_token");
    let access = str_of(&tokens, "access_token");
    assert_eq!(revoke(&other, &other_secret, refresh).await.unwrap().status(), StatusCode::OK);
    assert_eq!(user_info(&app, access).await.status(), StatusCode::OK);
    assert_eq!(revoke(&id, &secret, refresh).await.unwrap().status(), StatusCode::OK);
    assert_eq!(user_info(&app, access).await.status(), StatusCode::UNAUTHORIZED);
    let refreshed = refresh_at(&app, &id, &secret, refresh, None).await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    let wrong = revoke(&id, "wrong-secret", access).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

async fn refresh_at(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
    scope: Option<&str>,
) -> Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend(scope.map(|s| ("scope", s)));
    app.client
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// `offline_access` gives a refresh token that rotates as the first party's do, bound to its
/// client, narrowed on request, and never accepted by `/v1/auth/refresh`.
#[tokio::test]
async fn a_clients_refresh_token_rotates_is_bound_to_it_and_its_reuse_ends_the_grant() {
    let app = provider().await;
    let body = json!({ "name": "App", "redirect_uris": [REDIRECT], "consent": "skip" });
    let (id, secret) = client(&app, body.clone()).await;
    let (other, other_secret) = client(&app, body).await;
    let (secret, other_secret) = (secret.unwrap(), other_secret.unwrap());
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let url = authorize_url(&id, &[("scope", "openid offline_access")]);
    let login = location(&browser.get(&url).await);
    let code =
        query(&location(&sign_in(&mut browser, &login, "ada@example.com").await))["code"].clone();
    let first: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let refresh = str_of(&first, "refresh_token").to_owned();

    // Not the first party's, and not another client's (which leaves it unspent).
    let first_party = app.refresh(&refresh).await;
    assert_eq!(first_party.status(), StatusCode::UNAUTHORIZED);
    let stolen = refresh_at(&app, &other, &other_secret, &refresh, None).await;
    assert_eq!(stolen.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let wider = refresh_at(&app, &id, &secret, &refresh, Some("openid email")).await;
    assert_eq!(wider.json::<Value>().await.unwrap()["error"], "invalid_scope");

    let second: Value =
        common::ok_json(refresh_at(&app, &id, &secret, &refresh, Some("openid")).await).await;
    assert_eq!(second["scope"], "openid");
    let id_token =
        verified_id_token(&app, str_of(&second, "id_token"), jsonwebtoken::Algorithm::RS256, &id)
            .await;
    let first_id = claims(str_of(&first, "id_token"));
    assert_eq!(id_token["sub"], first_id["sub"]);
    assert_eq!(
        id_token["auth_time"], first_id["auth_time"],
        "the sign-in's time, not the refresh's"
    );
    assert!(id_token.get("nonce").is_none());
    let rotated = str_of(&second, "refresh_token").to_owned();
    assert_ne!(rotated, refresh);
    assert_eq!(user_info(&app, str_of(&second, "access_token")).await.status(), StatusCode::OK);

    // A grant session is listed with its client, and the browser's as a browser's.
    let me = app.logged_in("ada@example.com", PASSWORD).await;
    let listed = app.get("/v1/auth/sessions", str_of(&me, "access_token")).await;
    let listed: Value = listed.json().await.unwrap();
    let kinds: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"browser") && kinds.contains(&"api"), "{listed}");
    let sessions = listed["sessions"].as_array().unwrap();
    assert!(sessions.iter().any(|s| s["client_id"] == id.as_str()), "{listed}");
    let browser_session = sessions.iter().find(|s| s["kind"] == "browser").unwrap();
    assert_eq!(browser_session["clients"], json!(["App"]), "the apps it signed in to");

    // An offline grant outlives the browser's sign-in session.
    let signed_out = browser.get("/oauth2/logout?id_token_hint=".to_owned().as_str()).await;
    assert_eq!(signed_out.status(), StatusCode::OK, "no hint: the confirmation page");
    let html = signed_out.text().await.unwrap();
    browser.submit(&html, &[]).await;
    assert!(!browser.cookies.contains_key("__Host-portcullis_session"));
    assert_eq!(user_info(&app, str_of(&second, "access_token")).await.status(), StatusCode::OK);

    // Introspection reports a refresh token to its own client only.
    let introspect = |client_id: &str, secret: &str, token: &str| {
        app.client
            .post(app.url("/oauth2/introspect"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token), ("token_type_hint", "refresh_token")])
            .send()
    };
    let own: Value = common::ok_json(introspect(&id, &secret, &rotated).await.unwrap()).await;
    assert_eq!(
        (&own["active"], &own["token_type"]),
        (&json!(true), &json!("refresh_token")),
        "{own}"
    );
    assert_eq!(own["scope"], "openid offline_access");
    let others: Value =
        common::ok_json(introspect(&other, &other_secret, &rotated).await.unwrap()).await;
    assert_eq!(others, json!({ "active": false }));

    // The spent token again: refused, and the grant ends (its successor and access token too).
    let reused = refresh_at(&app, &id, &secret, &refresh, None).await;
    assert_eq!(reused.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let after = refresh_at(&app, &id, &secret, &rotated, None).await;
    assert_eq!(after.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        user_info(&app, str_of(&second, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// RP-Initiated Logout: a valid `id_token_hint` ends the browser's session at once and returns
/// to a registered address with `state`; without one a confirmation page asks first; an
/// unregistered address gets a page, never a redirect.
#[tokio::test]
async fn rp_initiated_logout_redirects_only_to_a_registered_address() {
    let app = provider().await;
    let back = "https://app.example/signed-out";
    let body = json!({
        "name": "App", "redirect_uris": [REDIRECT], "consent": "skip",
        "post_logout_redirect_uris": [back],
    });
    let (id, secret) = client(&app, body).await;
    let secret = secret.unwrap();
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    let code =
        query(&location(&sign_in(&mut browser, &login, "ada@example.com").await))["code"].clone();
    let tokens: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let id_token = str_of(&tokens, "id_token").to_owned();
    let logout = |pairs: &[(&str, &str)]| {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        format!("/oauth2/logout?{query}")
    };

    for unregistered in ["https://evil.example/", "https://app.example/signed-out/x"] {
        let page = browser
            .get(&logout(&[
                ("id_token_hint", &id_token),
                ("post_logout_redirect_uri", unregistered),
            ]))
            .await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{unregistered}");
        assert!(page.headers().get("location").is_none());
    }
    // Still signed in: no page at authorize.
    assert!(query(&location(&browser.get(&authorize_url(&id, &[])).await)).contains_key("code"));

    // Without a hint: the confirmation page first, then the sign-out on its post.
    let confirm = browser
        .get(&logout(&[("client_id", &id), ("post_logout_redirect_uri", back), ("state", "s1")]))
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let csp = confirm.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' https://app.example;"), "{csp}");
    let html = confirm.text().await.unwrap();
    assert!(html.contains("<strong>App</strong> asks to sign you out"), "{html}");
    assert!(
        query(&location(&browser.get(&authorize_url(&id, &[])).await)).contains_key("code"),
        "the page ended nothing"
    );
    let first_access = str_of(&tokens, "access_token").to_owned();
    assert_eq!(user_info(&app, &first_access).await.status(), StatusCode::OK);
    let done = location(&browser.submit(&html, &[]).await);
    assert_eq!(done, format!("{back}?state=s1"));
    // The grants the sign-in made without offline_access end with it.
    assert_eq!(user_info(&app, &first_access).await.status(), StatusCode::UNAUTHORIZED);
    assert!(!browser.cookies.contains_key("__Host-portcullis_session"));
    let again = location(&browser.get(&authorize_url(&id, &[])).await);
    assert!(again.contains("/login?interaction="), "{again}");

    // With a valid hint: at once, to the registered address with state.
    let login = again;
    let code =
        query(&location(&sign_in(&mut browser, &login, "ada@example.com").await))["code"].clone();
    let tokens: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let hint = str_of(&tokens, "id_token");
    let done = location(
        &browser
            .get(&logout(&[
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", back),
                ("state", "s2"),
            ]))
            .await,
    );
    assert_eq!(done, format!("{back}?state=s2"));
    let access = str_of(&tokens, "access_token");
    assert_eq!(user_info(&app, access).await.status(), StatusCode::UNAUTHORIZED);
    let again = location(&browser.get(&authorize_url(&id, &[])).await);
    assert!(again.contains("/login?interaction="), "{again}");
    // An access token is not an ID token hint.
    let wrong = browser.get(&logout(&[("id_token_hint", str_of(&tokens, "access_token"))])).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    // Discovery names the endpoint.
    let discovery = discovery(&app).await;
    assert_eq!(discovery["end_session_endpoint"], app.url("/oauth2/logout"));
}

/// Consent is remembered per client and scope; `/v1/auth/grants` lists it, and revoking it
/// ends the app's tokens and asks again; `prompt=consent` asks even with a grant; a hint for
/// another user asks for a sign-in.
#[tokio::test]
async fn consent_is_remembered_listed_and_revoked_with_every_token_of_the_app() {
    let app = provider().await;
    let (id, secret) = client(&app, json!({ "name": "Wiki", "redirect_uris": [REDIRECT] })).await;
    let secret = secret.unwrap();
    app.signed_in("ada@example.com").await;
    let mut browser = Browser::new(&app);
    let narrow = [("scope", "openid email")];
    let login = location(&browser.get(&authorize_url(&id, &narrow)).await);
    let consent_url = location(&sign_in(&mut browser, &login, "ada@example.com").await);
    let back = consent(&mut browser, &consent_url, "allow").await;
    let code = query(&back)["code"].clone();
    let tokens: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;

    // The grant covers these scopes: no page, and prompt=none answers with a code.
    for extra in [&narrow[..], &[narrow[0], ("prompt", "none")][..]] {
        let again = location(&browser.get(&authorize_url(&id, extra)).await);
        assert!(query(&again).contains_key("code"), "{extra:?}: {again}");
    }
    // A wider request, or prompt=consent, asks again.
    let wider = location(&browser.get(&authorize_url(&id, &[])).await);
    assert!(wider.contains("/consent?interaction="), "{wider}");
    let none = location(&browser.get(&authorize_url(&id, &[("prompt", "none")])).await);
    assert_eq!(query(&none)["error"], "consent_required");
    let forced =
        location(&browser.get(&authorize_url(&id, &[narrow[0], ("prompt", "consent")])).await);
    assert!(forced.contains("/consent?interaction="), "{forced}");

    // Another user's ID token as a hint: sign in (again) as that user.
    app.signed_in("bob@example.com").await;
    let mut other = Browser::new(&app);
    let login = location(&other.get(&authorize_url(&id, &narrow)).await);
    let consent_url = location(&sign_in(&mut other, &login, "bob@example.com").await);
    let code = query(&consent(&mut other, &consent_url, "allow").await)["code"].clone();
    let bobs: Value = common::ok_json(redeem(&app, &id, &secret, &code, VERIFIER).await).await;
    let hinted = authorize_url(&id, &[narrow[0], ("id_token_hint", str_of(&bobs, "id_token"))]);
    let relogin = location(&browser.get(&hinted).await);
    assert!(relogin.contains("/login?interaction="), "{relogin}");
    let hinted_none = authorize_url(
        &id,
        &[narrow[0], ("prompt", "none"), ("id_token_hint", str_of(&bobs, "id_token"))],
    );
    assert_eq!(query(&location(&browser.get(&hinted_none).await))["error"], "login_required");

    // The user's apps, and revoking one.
    let me = app.logged_in("ada@example.com", PASSWORD).await;
    let bearer = str_of(&me, "access_token");
    let listed: Value = common::ok_json(app.get("/v1/auth/grants", bearer).await).await;
    assert_eq!(listed["grants"][0]["client_id"], id.as_str());
    assert_eq!(listed["grants"][0]["client_name"], "Wiki");
    assert_eq!(listed["grants"][0]["scopes"], json!(["openid", "email"]));
    assert_eq!(user_info(&app, str_of(&tokens, "access_token")).await.status(), StatusCode::OK);
    let revoked =
        app.request(Method::DELETE, &format!("/v1/auth/grants/{id}"), Some(bearer), None).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        user_info(&app, str_of(&tokens, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let listed: Value = common::ok_json(app.get("/v1/auth/grants", bearer).await).await;
    assert_eq!(listed["grants"], json!([]));
    let again = location(&browser.get(&authorize_url(&id, &narrow)).await);
    assert!(again.contains("/consent?interaction="), "asked again: {again}");
    let missing =
        app.request(Method::DELETE, &format!("/v1/auth/grants/{id}"), Some(bearer), None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Bob's grant is his own.
    assert_eq!(user_info(&app, str_of(&bobs, "access_token")).await.status(), StatusCode::OK);
}

/// `LOGIN_UI_URL`: the team's own login page reads the interaction, signs the user in with
/// the JSON API and accepts; the browser that started the authorization finishes it, and no
/// other browser can.
#[tokio::test]
async fn a_login_page_of_the_teams_own_completes_the_authorization_in_its_browser_only() {
    let address = common::free_port();
    let issuer = format!("http://{address}");
    let app = spawn_with(&[
        ("PORTCULLIS_BIND", &address.to_string()),
        ("PORTCULLIS_ISSUER", &issuer),
        ("PORTCULLIS_LOGIN_UI_URL", "https://login.example/signin"),
    ])
    .await;
    let (id, secret) = client(&app, json!({ "name": "Wiki", "redirect_uris": [REDIRECT] })).await;
    let pair = app.signed_in("ada@example.com").await;
    let bearer = str_of(&pair, "access_token");
    let mut browser = Browser::new(&app);
    let start = authorize_url(&id, &[("login_hint", "ada@example.com")]);
    let ui = location(&browser.get(&start).await);
    assert!(ui.starts_with("https://login.example/signin?interaction="), "{ui}");
    let interaction = query(&ui)["interaction"].clone();
    let path = format!("/v1/oauth/interactions/{interaction}");
    let view: Value = common::ok_json(app.client.get(app.url(&path)).send().await.unwrap()).await;
    assert_eq!(view["client"]["name"], "Wiki");
    assert_eq!(view["prompt"], json!(["login", "consent"]));
    assert_eq!(view["login_hint"], "ada@example.com");
    assert_eq!(view["scopes"], json!(["openid", "email", "profile"]));

    let accept_path = format!("{path}/accept");
    let accept = |body: Value| app.request(Method::POST, &accept_path, Some(bearer), Some(body));
    common::assert_problem(accept(json!({})).await, StatusCode::CONFLICT, "conflict").await;
    let unauthenticated = app.post(&format!("{path}/accept"), json!({ "consent": true })).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let accepted: Value = common::ok_json(accept(json!({ "consent": true })).await).await;
    let redirect_to = str_of(&accepted, "redirect_to").to_owned();
    assert!(redirect_to.starts_with(&format!("{issuer}/login/resume?")), "{redirect_to}");
    // Single use.
    let twice = accept(json!({ "consent": true })).await;
    assert_eq!(twice.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.client.get(app.url(&path)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Planted in another browser: refused, and left to its own browser.
    let mut victim = Browser::new(&app);
    assert_eq!(victim.get(&redirect_to).await.status(), StatusCode::BAD_REQUEST);
    assert!(!victim.cookies.contains_key("__Host-portcullis_session"));
    let back = location(&browser.get(&redirect_to).await);
    let code = query(&back)["code"].clone();
    let tokens: Value =
        common::ok_json(redeem(&app, &id, &secret.unwrap(), &code, VERIFIER).await).await;
    assert_eq!(claims(str_of(&tokens, "id_token"))["sub"], claims(bearer)["sub"]);
    // Signed in now, with the grant: no page.
    let again = location(&browser.get(&start).await);
    assert!(query(&again).contains_key("code"), "{again}");

    // Reject: access_denied at the client.
    let mut other = Browser::new(&app);
    let ui = location(&other.get(&start).await);
    let path = format!("/v1/oauth/interactions/{}/reject", query(&ui)["interaction"]);
    let rejected: Value = common::ok_json(app.post(&path, json!({})).await).await;
    let denied = location(&other.get(str_of(&rejected, "redirect_to")).await);
    assert_eq!(query(&denied)["error"], "access_denied");
}

/// `ISSUER` a name: the first-party API works, the provider and its pages answer 404, and the
/// discovery document names none of its endpoints. A URL that is neither https nor loopback
/// http is refused at start.
#[tokio::test]
async fn a_name_as_issuer_turns_the_provider_off() {
    let app = spawn_with(&[("PORTCULLIS_ISSUER", "acme")]).await;
    let pair = app.signed_in("ada@example.com").await;
    assert_eq!(claims(str_of(&pair, "access_token"))["iss"], "acme");
    for path in [
        "/oauth2/authorize?client_id=x",
        "/login?interaction=x",
        "/oauth2/logout",
        "/v1/oauth/interactions/x",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let token = app
        .client
        .post(app.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::NOT_FOUND);
    let discovery = discovery(&app).await;
    assert_eq!(discovery["issuer"], "acme");
    assert!(
        discovery.get("authorization_endpoint").is_none()
            && discovery.get("token_endpoint").is_none(),
        "{discovery}"
    );
    assert!(discovery["jwks_uri"].is_string());

    let storage = common::new_storage().await.0;
    for bad in [
        "http://auth.example.com",
        "https://auth.example.com/?x=1",
        "https://user@auth.example.com",
    ] {
        let env: Vec<(String, String)> = storage
            .env()
            .into_iter()
            .chain([("PORTCULLIS_ISSUER".to_owned(), bad.to_owned())])
            .collect();
        let error = portcullis::config::Settings::load(None, env).unwrap_err();
        assert!(error.to_string().contains("PORTCULLIS_ISSUER"), "{bad}: {error}");
    }
}

/// A Node app on openid-client (`tests/browser/openid-client.mjs`): discovery, the code flow
/// with PKCE, its own checks of the callback's `iss` and of the ID token, userinfo, a refresh
/// and RP-initiated logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_a_user_in_refreshes_and_signs_out() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    if !std::path::Path::new(dir).join("node_modules/openid-client").exists() {
        assert!(std::env::var_os("CI").is_none(), "run npm ci --prefix tests/browser");
        eprintln!("SKIPPED openid-client: run npm ci --prefix tests/browser");
        return;
    }
    let app = provider().await;
    let back = "https://app.example/signed-out";
    let body =
        json!({ "name": "Wiki", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [back] });
    let (id, secret) = client(&app, body).await;
    app.signed_in("ada@example.com").await;
    let script = format!("{dir}/openid-client.mjs");
    let args =
        [&script, &app.url(""), &id, &secret.unwrap(), REDIRECT, back, "ada@example.com", PASSWORD];
    let output = tokio::process::Command::new("node").args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["pages"], json!(["/login", "/consent"]));
    assert_eq!(report["email"], "ada@example.com");
    assert_eq!(report["userinfo"]["sub"], report["sub"]);
    assert_eq!(report["refreshed"], json!({ "sub": report["sub"], "rotated": true }));
    assert_eq!(report["logout"], format!("{back}?state=bye"));
}

/// An `ISSUER` written with a trailing slash is the `iss` of every answer exactly as the
/// discovery document names it (RFC 9207), while the pages' addresses take no double slash.
#[tokio::test]
async fn the_iss_of_an_answer_is_the_issuer_as_written() {
    let address = common::free_port();
    let issuer = format!("http://{address}/");
    let app = spawn_with(&[
        ("PORTCULLIS_BIND", &address.to_string()),
        ("PORTCULLIS_ISSUER", &issuer),
        ("PORTCULLIS_BRAND_NAME", "Acme ID"),
    ])
    .await;
    let (id, _) = client(&app, json!({ "name": "Wiki", "redirect_uris": [REDIRECT] })).await;
    let discovery = discovery(&app).await;
    assert_eq!(discovery["issuer"], issuer.as_str());
    let mut browser = Browser::new(&app);
    let refused = location(&browser.get(&authorize_url(&id, &[("prompt", "none")])).await);
    assert_eq!(query(&refused)["iss"], issuer.as_str());
    let login = location(&browser.get(&authorize_url(&id, &[])).await);
    assert!(login.starts_with(&format!("http://{address}/login?")), "{login}");
    let page = browser.get(&login).await.text().await.unwrap();
    assert!(
        page.contains("<title>Sign in · Acme ID</title>"),
        "BRAND_NAME names the pages: {page}"
    );
}

/// Userinfo takes from the address's budget: past it, 429 with `Retry-After`, in RFC 6749's
/// shape.
#[tokio::test]
async fn userinfo_past_the_addresss_budget_answers_429() {
    let app = spawn_with(&[("PORTCULLIS_RATE_LIMIT_READS", "2/min")]).await;
    for _ in 0..2 {
        assert_eq!(user_info(&app, "junk").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = user_info(&app, "junk").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.json::<Value>().await.unwrap()["error"], "rate_limited");
}
