//! Multi-factor authentication: TOTP enrolment and confirmation, the two-step login with a TOTP
//! code or a recovery code, the code window and replay rule, the lockout, `amr`, recovery code
//! regeneration, disabling, what a password change, a reset, a device token and account deletion
//! do with a second factor, the audit trail, the notices, secrets at rest and `user reset-mfa`.
//!
//! Codes are computed here (RFC 6238, SHA-1, 6 digits, 30 s) from the server's injected clock,
//! which the test moves instead of sleeping. Access tokens are verified against the system clock
//! and refused when their `iat` is more than `JWT_LEEWAY` + 60 s ahead of it, so these servers
//! run with a leeway that covers the minutes the tests move their clock forward.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::smtp::{Received, SinkOptions, SmtpSink, link_token};
use common::totp::{base32_decode, hotp};
use common::{PASSWORD, TestApp, TestResult, assert_problem, ok_json, spawn_with_clock, str_of};
use portcullis::domain::{Clock, ManualClock};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

const WRONG: &str = "Wrong-Horse-42";
const NEW_PASSWORD: &str = "Brand-New-Horse-77";
const RESET: &str = "http://localhost:8080/reset-password?token=";
const WAIT: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// A TOTP authenticator of our own (RFC 6238 over RFC 4226, in tests/common/totp.rs).

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = if bytes[i] == b'%' {
            text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        } else {
            None
        };
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// What a user's authenticator app holds: the secret, and the clock the server reads.
struct Authenticator {
    secret: Vec<u8>,
    /// The secret as the enrolment answered it (base32).
    text: String,
    clock: Arc<ManualClock>,
    /// The last step whose code was handed out by `code`.
    last: Option<i64>,
}

impl Authenticator {
    /// The current 30 s step of the server's clock.
    fn step(&self) -> i64 {
        self.clock.now().timestamp().div_euclid(30)
    }

    /// The code of `step`.
    fn at(&self, step: i64) -> String {
        hotp(&self.secret, u64::try_from(step).unwrap())
    }

    /// A code the server has not seen: the current step's, after moving the clock one step on
    /// when the current step's code was already handed out.
    fn code(&mut self) -> String {
        while self.last.is_some_and(|last| self.step() <= last) {
            self.clock.advance(STEP);
        }
        let step = self.step();
        self.last = Some(step);
        self.at(step)
    }

    /// A six-digit code that no step from two before to two after the current one gives.
    fn wrong(&self) -> String {
        let now = self.step();
        let right: Vec<String> = (now - 2..=now + 2).map(|s| self.at(s)).collect();
        (0u32..)
            .map(|i| format!("{:06}", (123_456 + i * 7_919) % 1_000_000))
            .find(|candidate| !right.contains(candidate))
            .unwrap()
    }
}

#[test]
fn the_test_authenticator_follows_rfc_6238() {
    // RFC 6238 appendix B (SHA-1), the 8-digit values cut to their last 6 digits.
    let secret = base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(secret, b"12345678901234567890");
    for (time, code) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
        (20_000_000_000, "353130"),
    ] {
        assert_eq!(hotp(&secret, time / 30), code, "T = {time}");
    }
    assert_eq!(base32_decode("MZXW6==="), None, "padding is not base32 text");
}

// ---------------------------------------------------------------------------------------------
// The server and the flows.

/// A server whose use cases read `clock`.
async fn start(vars: &[(&str, &str)]) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let mut all = vec![("PORTCULLIS_JWT_LEEWAY", "30m")];
    all.extend_from_slice(vars);
    (spawn_with_clock(&all, clock.clone()).await, clock)
}

async fn call(app: &TestApp, method: Method, path: &str, access: &str, body: Value) -> Response {
    app.request(method, path, Some(access), Some(body)).await
}

async fn begin_enrolment(app: &TestApp, access: &str, password: &str) -> Response {
    call(app, Method::POST, "/v1/auth/mfa/totp", access, json!({"password": password})).await
}

async fn confirm_with(app: &TestApp, access: &str, code: &str) -> Response {
    call(app, Method::POST, "/v1/auth/mfa/totp/confirm", access, json!({"code": code})).await
}

async fn disable(app: &TestApp, access: &str, body: Value) -> Response {
    call(app, Method::DELETE, "/v1/auth/mfa/totp", access, body).await
}

async fn regenerate(app: &TestApp, access: &str, password: &str, code: &str) -> Response {
    let body = json!({"password": password, "code": code});
    call(app, Method::POST, "/v1/auth/mfa/recovery-codes", access, body).await
}

/// Starts an enrolment with the right password; returns the answer and the authenticator.
async fn enrol(app: &TestApp, clock: &Arc<ManualClock>, access: &str) -> (Value, Authenticator) {
    let body = ok_json(begin_enrolment(app, access, PASSWORD).await).await;
    let text = str_of(&body, "secret").to_owned();
    let secret = base32_decode(&text).unwrap_or_else(|| panic!("base32 secret: {body}"));
    let authenticator = Authenticator { secret, text, clock: clock.clone(), last: None };
    (body, authenticator)
}

/// Confirms a pending enrolment with the current code; returns the recovery codes.
async fn confirm(app: &TestApp, access: &str, authenticator: &mut Authenticator) -> Vec<String> {
    let body = ok_json(confirm_with(app, access, &authenticator.code()).await).await;
    strings(&body["recovery_codes"])
}

/// Registers `email`, logs in with the password and turns TOTP on from that session; returns
/// that session's pair, the authenticator and the recovery codes.
async fn with_totp(
    app: &TestApp,
    clock: &Arc<ManualClock>,
    email: &str,
) -> (Value, Authenticator, Vec<String>) {
    let pair = app.signed_in(email).await;
    let access = str_of(&pair, "access_token");
    let (_, mut authenticator) = enrol(app, clock, access).await;
    let codes = confirm(app, access, &mut authenticator).await;
    (pair, authenticator, codes)
}

/// A login with the right password of an account with TOTP: asserts that it asks for the
/// second factor, and returns the `mfa_token`.
async fn password_step(app: &TestApp, email: &str, password: &str) -> String {
    let response = app.login(email, password).await;
    password_step_answer(response).await
}

async fn password_step_answer(response: Response) -> String {
    let body = assert_problem(response, StatusCode::UNAUTHORIZED, "mfa_required").await;
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]), "{body}");
    for key in ["access_token", "refresh_token", "device_token"] {
        assert!(body.get(key).is_none(), "no {key} before the second factor: {body}");
    }
    let token = str_of(&body, "mfa_token").to_owned();
    assert!(!token.is_empty(), "an mfa_token: {body}");
    token
}

async fn with_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    app.post("/v1/auth/login/mfa", json!({"mfa_token": mfa_token, "code": code})).await
}

async fn with_recovery_code(app: &TestApp, mfa_token: &str, code: &str) -> Response {
    app.post("/v1/auth/login/mfa", json!({"mfa_token": mfa_token, "recovery_code": code})).await
}

/// A complete login with a fresh TOTP code; returns the token pair.
async fn totp_login(
    app: &TestApp,
    email: &str,
    password: &str,
    authenticator: &mut Authenticator,
) -> Value {
    let token = password_step(app, email, password).await;
    let pair = ok_json(with_code(app, &token, &authenticator.code()).await).await;
    assert_token_pair(&pair);
    pair
}

fn assert_token_pair(pair: &Value) {
    for key in ["access_token", "refresh_token", "device_token"] {
        assert!(!str_of(pair, key).is_empty(), "{key} in {pair}");
    }
    assert_eq!(pair["token_type"], "Bearer", "{pair}");
}

async fn assert_invalid_code(response: Response) {
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
}

fn strings(value: &Value) -> Vec<String> {
    let items = value.as_array().unwrap_or_else(|| panic!("an array: {value}"));
    items.iter().map(|item| item.as_str().unwrap().to_owned()).collect()
}

/// The `amr` claim of an access token, sorted (RFC 8176 gives no order).
fn amr(access_token: &str) -> Vec<String> {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let mut methods = strings(&claims["amr"]);
    methods.sort();
    methods
}

fn sorted(methods: &[&str]) -> Vec<String> {
    let mut methods: Vec<String> = methods.iter().map(|m| (*m).to_owned()).collect();
    methods.sort();
    methods
}

async fn factors(app: &TestApp, access: &str) -> Value {
    ok_json(app.get("/v1/auth/me", access).await).await["mfa"].clone()
}

/// The caller's own events, newest first.
async fn events(app: &TestApp, access: &str) -> Vec<Value> {
    let page = ok_json(app.get("/v1/auth/events?limit=200", access).await).await;
    page["events"].as_array().unwrap().clone()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

async fn app_with_sink(clock_vars: &[(&str, &str)]) -> (TestApp, Arc<ManualClock>, SmtpSink) {
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let url = format!("smtp://{}", sink.address);
    let mut vars = vec![("PORTCULLIS_SMTP_URL", url.as_str())];
    vars.extend_from_slice(clock_vars);
    let (app, clock) = start(&vars).await;
    (app, clock, sink)
}

/// The messages to `to`, once `count` have arrived (at most `WAIT`).
async fn mail_to(sink: &SmtpSink, to: &str, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<Received> =
            sink.received().into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
        if mine.len() >= count || Instant::now() >= deadline {
            assert!(mine.len() >= count, "{count} messages to {to} expected, got {}", mine.len());
            return mine;
        }
        sink.wait_for(sink.received().len() + 1, Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Enrolment.

#[tokio::test]
async fn an_enrolment_answers_a_base32_secret_and_an_otpauth_uri_naming_the_brand() -> TestResult {
    let (app, clock) = start(&[("PORTCULLIS_BRAND_NAME", "acme")]).await;
    let pair = app.signed_in("ada@example.com").await;
    let (body, authenticator) = enrol(&app, &clock, str_of(&pair, "access_token")).await;
    let secret = &authenticator.text;
    assert_eq!(secret.len(), 32, "160 bits in base32 without padding: {secret}");
    assert_eq!(authenticator.secret.len(), 20);

    let uri = str_of(&body, "otpauth_uri");
    let rest = uri.strip_prefix("otpauth://totp/").unwrap_or_else(|| panic!("{uri}"));
    let (label, query) = rest.split_once('?').unwrap_or_else(|| panic!("{uri}"));
    assert_eq!(percent_decode(label), "acme:ada@example.com", "{uri}");
    let params: Vec<(&str, String)> = query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key, percent_decode(value))
        })
        .collect();
    for (key, value) in [
        ("secret", secret.as_str()),
        ("issuer", "acme"),
        ("algorithm", "SHA1"),
        ("digits", "6"),
        ("period", "30"),
    ] {
        let found: Vec<&String> =
            params.iter().filter(|(k, _)| *k == key).map(|(_, v)| v).collect();
        assert_eq!(found, [value], "{key} in {uri}");
    }

    // Another account gets another secret.
    let other = app.signed_in("bea@example.com").await;
    let (_, second) = enrol(&app, &clock, str_of(&other, "access_token")).await;
    assert_ne!(second.secret, authenticator.secret);
    Ok(())
}

#[tokio::test]
async fn a_pending_enrolment_changes_nothing_until_a_right_code_confirms_it() -> TestResult {
    let (app, clock) = start(&[]).await;
    let pair = app.signed_in("cleo@example.com").await;
    let access = str_of(&pair, "access_token");
    assert_eq!(factors(&app, access).await, json!([]));
    let (_, mut authenticator) = enrol(&app, &clock, access).await;
    assert_eq!(factors(&app, access).await, json!([]), "pending is not in use");
    let direct = app.logged_in("cleo@example.com", PASSWORD).await;
    assert_eq!(amr(str_of(&direct, "access_token")), ["pwd"]);

    assert_invalid_code(confirm_with(&app, access, &authenticator.wrong()).await).await;
    assert_eq!(factors(&app, access).await, json!([]));
    assert_eq!(app.login("cleo@example.com", PASSWORD).await.status(), StatusCode::OK);

    let codes = confirm(&app, access, &mut authenticator).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    for code in &codes {
        assert!(code.len() >= 10, "{code}");
        assert!(code.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-')), "{code}");
    }
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "{codes:?}");
    assert_eq!(factors(&app, access).await, json!(["totp"]));
    password_step(&app, "cleo@example.com", PASSWORD).await;
    Ok(())
}

#[tokio::test]
async fn enrolment_needs_the_password_and_conflicts_without_a_pending_one_or_with_totp_on()
-> TestResult {
    let (app, clock) = start(&[]).await;
    let pair = app.signed_in("dora@example.com").await;
    let access = str_of(&pair, "access_token");
    let wrong = begin_enrolment(&app, access, WRONG).await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_problem(confirm_with(&app, access, "123456").await, StatusCode::CONFLICT, "conflict")
        .await;
    let anonymous = app.post("/v1/auth/mfa/totp", json!({"password": PASSWORD})).await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let (_, mut authenticator) = enrol(&app, &clock, access).await;
    confirm(&app, access, &mut authenticator).await;
    let again = begin_enrolment(&app, access, PASSWORD).await;
    assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    let reconfirm = confirm_with(&app, access, &authenticator.code()).await;
    assert_problem(reconfirm, StatusCode::CONFLICT, "conflict").await;
    // The refused enrolment did not replace the secret in use.
    totp_login(&app, "dora@example.com", PASSWORD, &mut authenticator).await;
    Ok(())
}

#[tokio::test]
async fn enabling_totp_leaves_existing_sessions_live() -> TestResult {
    let (app, clock) = start(&[]).await;
    let first = app.signed_in("eve@example.com").await;
    let other = app.logged_in("eve@example.com", PASSWORD).await;
    let access = str_of(&first, "access_token");
    let (_, mut authenticator) = enrol(&app, &clock, access).await;
    confirm(&app, access, &mut authenticator).await;
    assert_eq!(factors(&app, str_of(&other, "access_token")).await, json!(["totp"]));
    let refreshed = app.refreshed(str_of(&other, "refresh_token")).await;
    assert_eq!(amr(str_of(&refreshed, "access_token")), ["pwd"], "the session's own amr");
    assert_eq!(factors(&app, access).await, json!(["totp"]));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Login.

#[tokio::test]
async fn a_totp_login_asks_for_a_code_and_a_right_one_completes_it_with_amr() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "fay@example.com").await;
    assert_eq!(amr(str_of(&pair, "access_token")), ["pwd"]);

    // A wrong password says nothing of a second factor.
    let wrong = app.login("fay@example.com", WRONG).await;
    let body = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(body.get("mfa_token").is_none(), "{body}");

    let token = password_step(&app, "fay@example.com", PASSWORD).await;
    let pair = ok_json(with_code(&app, &token, &authenticator.code()).await).await;
    assert_token_pair(&pair);
    let access = str_of(&pair, "access_token");
    assert_eq!(amr(access), sorted(&["pwd", "otp", "mfa"]));
    let me = ok_json(app.get("/v1/auth/me", access).await).await;
    assert_eq!((me["email"].as_str(), &me["mfa"]), (Some("fay@example.com"), &json!(["totp"])));

    let refreshed = app.refreshed(str_of(&pair, "refresh_token")).await;
    assert_eq!(amr(str_of(&refreshed, "access_token")), sorted(&["pwd", "otp", "mfa"]));
    let again = app.refreshed(str_of(&refreshed, "refresh_token")).await;
    assert_eq!(amr(str_of(&again, "access_token")), sorted(&["pwd", "otp", "mfa"]));
    Ok(())
}

#[tokio::test]
async fn an_mfa_token_survives_a_wrong_code_is_single_use_and_unknown_ones_are_refused()
-> TestResult {
    let (app, clock) = start(&[]).await;
    let (_, mut authenticator, codes) = with_totp(&app, &clock, "gil@example.com").await;
    let token = password_step(&app, "gil@example.com", PASSWORD).await;
    assert_invalid_code(with_code(&app, &token, &authenticator.wrong()).await).await;
    ok_json(with_code(&app, &token, &authenticator.code()).await).await;

    let used = with_code(&app, &token, &authenticator.code()).await;
    assert_problem(used, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let used = with_recovery_code(&app, &token, &codes[0]).await;
    assert_problem(used, StatusCode::UNAUTHORIZED, "invalid_token").await;
    for unknown in ["not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let response = with_code(&app, unknown, &authenticator.code()).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // The recovery code offered with a used token was not spent.
    let token = password_step(&app, "gil@example.com", PASSWORD).await;
    ok_json(with_recovery_code(&app, &token, &codes[0]).await).await;
    Ok(())
}

#[tokio::test]
async fn an_mfa_token_expires_after_five_minutes() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (_, mut authenticator, _) = with_totp(&app, &clock, "hana@example.com").await;
    let token = password_step(&app, "hana@example.com", PASSWORD).await;
    clock.advance(Duration::from_secs(4 * 60 + 59));
    // Still known: the code is what is refused.
    assert_invalid_code(with_code(&app, &token, &authenticator.wrong()).await).await;
    clock.advance(Duration::from_secs(2));
    let late = with_code(&app, &token, &authenticator.code()).await;
    assert_problem(late, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A new password step gives a new token that works.
    totp_login(&app, "hana@example.com", PASSWORD, &mut authenticator).await;
    Ok(())
}

#[tokio::test]
async fn codes_are_taken_one_step_either_side_and_only_after_the_last_one_accepted() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (_, authenticator, _) = with_totp(&app, &clock, "ines@example.com").await;
    let confirmed = authenticator.last.unwrap();
    let email = "ines@example.com";

    // The code that confirmed the enrolment counts as used.
    let first = password_step(&app, email, PASSWORD).await;
    assert_invalid_code(with_code(&app, &first, &authenticator.at(confirmed)).await).await;

    clock.advance(STEP * 3);
    let now = authenticator.step();
    assert_eq!(now, confirmed + 3);
    assert_invalid_code(with_code(&app, &first, &authenticator.at(now - 2)).await).await;
    assert_invalid_code(with_code(&app, &first, &authenticator.at(now + 2)).await).await;
    ok_json(with_code(&app, &first, &authenticator.at(now - 1)).await).await;

    let second = password_step(&app, email, PASSWORD).await;
    ok_json(with_code(&app, &second, &authenticator.at(now + 1)).await).await;

    // Not later than the last accepted step: refused, the current step's code included.
    let third = password_step(&app, email, PASSWORD).await;
    assert_invalid_code(with_code(&app, &third, &authenticator.at(now + 1)).await).await;
    assert_invalid_code(with_code(&app, &third, &authenticator.at(now)).await).await;
    clock.advance(STEP);
    let pair = ok_json(with_code(&app, &third, &authenticator.at(now + 2)).await).await;
    assert_token_pair(&pair);
    Ok(())
}

#[tokio::test]
async fn wrong_codes_lock_the_account_and_the_password_step_neither_resets_nor_adds() -> TestResult
{
    let (app, clock) = start(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let (_, mut authenticator, _) = with_totp(&app, &clock, "jo@example.com").await;
    let first = password_step(&app, "jo@example.com", PASSWORD).await;
    for _ in 0..2 {
        assert_invalid_code(with_code(&app, &first, &authenticator.wrong()).await).await;
    }
    // The right password again: not locked, and the count stands at two.
    let second = password_step(&app, "jo@example.com", PASSWORD).await;
    assert_invalid_code(with_code(&app, &second, &authenticator.wrong()).await).await;

    let locked = with_code(&app, &second, &authenticator.code()).await;
    let retry_after: u64 = locked.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
    let login = app.login("jo@example.com", PASSWORD).await;
    assert!(login.headers().contains_key("retry-after"));
    assert_problem(login, StatusCode::LOCKED, "account_locked").await;
    Ok(())
}

#[tokio::test]
async fn a_completed_mfa_login_resets_the_failure_count() -> TestResult {
    let (app, clock) = start(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let (_, mut authenticator, _) = with_totp(&app, &clock, "kai@example.com").await;
    for round in 0..2 {
        let token = password_step(&app, "kai@example.com", PASSWORD).await;
        for _ in 0..2 {
            let response = with_code(&app, &token, &authenticator.wrong()).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "round {round}");
            assert_invalid_code(response).await;
        }
        let pair = ok_json(with_code(&app, &token, &authenticator.code()).await).await;
        assert_token_pair(&pair);
    }
    Ok(())
}

#[tokio::test]
async fn a_device_token_never_skips_the_second_factor() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "lea@example.com").await;
    let login_on = |device: String| {
        let body =
            json!({"email": "lea@example.com", "password": PASSWORD, "device_token": device});
        app.post("/v1/auth/login", body)
    };
    // A device of a login before TOTP was on.
    let earlier = str_of(&pair, "device_token").to_owned();
    let token = password_step_answer(login_on(earlier).await).await;
    let pair = ok_json(with_code(&app, &token, &authenticator.code()).await).await;
    // And a device of a login that passed the second factor.
    let known = str_of(&pair, "device_token").to_owned();
    assert!(!known.is_empty());
    password_step_answer(login_on(known).await).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recovery codes.

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_its_case_and_dashes_do_not_matter() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (_, _, codes) = with_totp(&app, &clock, "mara@example.com").await;
    let email = "mara@example.com";
    let token = password_step(&app, email, PASSWORD).await;
    let pair = ok_json(with_recovery_code(&app, &token, &codes[0]).await).await;
    assert_token_pair(&pair);
    assert_eq!(amr(str_of(&pair, "access_token")), sorted(&["pwd", "mfa"]));
    let refreshed = app.refreshed(str_of(&pair, "refresh_token")).await;
    assert_eq!(amr(str_of(&refreshed, "access_token")), sorted(&["pwd", "mfa"]));

    let token = password_step(&app, email, PASSWORD).await;
    assert_invalid_code(with_recovery_code(&app, &token, &codes[0]).await).await;
    assert_invalid_code(with_recovery_code(&app, &token, "zzzz-zzzz-zzzz").await).await;
    let shouted = codes[1].replace('-', "").to_uppercase();
    let pair = ok_json(with_recovery_code(&app, &token, &shouted).await).await;
    assert_eq!(amr(str_of(&pair, "access_token")), sorted(&["pwd", "mfa"]));
    // A code written with dashes in other places is the same code.
    let plain: String = codes[2].chars().filter(|c| *c != '-').collect();
    let regrouped: String = plain
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i > 0 && i % 2 == 0).then_some('-').into_iter().chain([c]))
        .collect();
    let token = password_step(&app, email, PASSWORD).await;
    ok_json(with_recovery_code(&app, &token, &regrouped).await).await;

    let mine = events(&app, str_of(&pair, "access_token")).await;
    let used =
        mine.iter().filter(|e| e["type"] == "recovery_code_used" && e["outcome"] == "success");
    assert_eq!(used.count(), 3, "{mine:?}");
    Ok(())
}

#[tokio::test]
async fn regenerating_recovery_codes_needs_the_password_and_a_code_and_voids_the_old_ones()
-> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, old) = with_totp(&app, &clock, "nico@example.com").await;
    let access = str_of(&pair, "access_token");
    let wrong_password = regenerate(&app, access, WRONG, &authenticator.code()).await;
    assert_problem(wrong_password, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_invalid_code(regenerate(&app, access, PASSWORD, &authenticator.wrong()).await).await;
    let missing = json!({"password": PASSWORD});
    let missing = call(&app, Method::POST, "/v1/auth/mfa/recovery-codes", access, missing).await;
    assert_invalid_code(missing).await;

    let body = ok_json(regenerate(&app, access, PASSWORD, &authenticator.code()).await).await;
    let new = strings(&body["recovery_codes"]);
    assert_eq!(new.len(), 10, "{new:?}");
    assert!(new.iter().all(|code| !old.contains(code)), "{old:?} {new:?}");

    let token = password_step(&app, "nico@example.com", PASSWORD).await;
    assert_invalid_code(with_recovery_code(&app, &token, &old[0]).await).await;
    ok_json(with_recovery_code(&app, &token, &new[0]).await).await;

    // A recovery code may stand in for the TOTP code here too.
    let body = ok_json(regenerate(&app, access, PASSWORD, &new[1]).await).await;
    let newest = strings(&body["recovery_codes"]);
    let token = password_step(&app, "nico@example.com", PASSWORD).await;
    assert_invalid_code(with_recovery_code(&app, &token, &new[2]).await).await;
    ok_json(with_recovery_code(&app, &token, &newest[0]).await).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Disabling, deletion, password change and reset.

#[tokio::test]
async fn disabling_totp_needs_the_password_and_a_code_and_then_login_is_direct() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "olga@example.com").await;
    let access = str_of(&pair, "access_token");
    assert_invalid_code(disable(&app, access, json!({"password": PASSWORD})).await).await;
    let wrong = json!({"password": PASSWORD, "code": authenticator.wrong()});
    assert_invalid_code(disable(&app, access, wrong).await).await;
    let wrong_password = json!({"password": WRONG, "code": authenticator.code()});
    let wrong_password = disable(&app, access, wrong_password).await;
    assert_problem(wrong_password, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(factors(&app, access).await, json!(["totp"]), "nothing refused changed anything");
    password_step(&app, "olga@example.com", PASSWORD).await;

    let body = json!({"password": PASSWORD, "code": authenticator.code()});
    assert_eq!(disable(&app, access, body).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(factors(&app, access).await, json!([]));
    let direct = app.logged_in("olga@example.com", PASSWORD).await;
    assert_eq!(amr(str_of(&direct, "access_token")), ["pwd"]);

    // TOTP can be turned on again, with a new secret.
    let (_, mut again) = enrol(&app, &clock, access).await;
    assert_ne!(again.secret, authenticator.secret);
    confirm(&app, access, &mut again).await;
    totp_login(&app, "olga@example.com", PASSWORD, &mut again).await;
    Ok(())
}

#[tokio::test]
async fn a_recovery_code_can_disable_totp() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, _, codes) = with_totp(&app, &clock, "pia@example.com").await;
    let access = str_of(&pair, "access_token");
    let body = json!({"password": PASSWORD, "code": codes[3]});
    assert_eq!(disable(&app, access, body).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(factors(&app, access).await, json!([]));
    assert_eq!(app.login("pia@example.com", PASSWORD).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn deleting_the_account_with_totp_on_needs_a_code() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "quin@example.com").await;
    let access = str_of(&pair, "access_token");
    let delete = |body: Value| call(&app, Method::DELETE, "/v1/auth/me", access, body);
    assert_invalid_code(delete(json!({"password": PASSWORD})).await).await;
    assert_invalid_code(delete(json!({"password": PASSWORD, "code": authenticator.wrong()})).await)
        .await;
    assert_eq!(factors(&app, access).await, json!(["totp"]), "still there");

    let right = json!({"password": PASSWORD, "code": authenticator.code()});
    assert_eq!(delete(right).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/auth/me", access).await.status(), StatusCode::UNAUTHORIZED);
    // The factor went with the account: the address registers again, without TOTP.
    assert_eq!(app.register("quin@example.com", PASSWORD).await.status(), StatusCode::CREATED);
    let fresh = app.logged_in("quin@example.com", PASSWORD).await;
    assert_eq!(factors(&app, str_of(&fresh, "access_token")).await, json!([]));
    Ok(())
}

#[tokio::test]
async fn a_password_change_keeps_totp() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "rhea@example.com").await;
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed =
        call(&app, Method::POST, "/v1/auth/password", str_of(&pair, "access_token"), body);
    assert_eq!(changed.await.status(), StatusCode::NO_CONTENT);
    let old = app.login("rhea@example.com", PASSWORD).await;
    assert_problem(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    totp_login(&app, "rhea@example.com", NEW_PASSWORD, &mut authenticator).await;
    Ok(())
}

#[tokio::test]
async fn a_password_reset_keeps_totp() -> TestResult {
    let (app, clock, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let email = "sana@example.com";
    let (_, mut authenticator, _) = with_totp(&app, &clock, email).await;
    let forgot = app.post("/v1/auth/password/forgot", json!({"email": email})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + WAIT;
    let token = loop {
        let mine = sink.received().into_iter().filter(|m| m.to.iter().any(|t| t == email));
        if let Some(token) = mine.filter_map(|m| link_token(&m.data, RESET)).next() {
            break token;
        }
        assert!(Instant::now() < deadline, "no reset link for {email}");
        sink.wait_for(sink.received().len() + 1, Duration::from_millis(500)).await;
    };
    let reset = json!({"token": token, "new_password": NEW_PASSWORD});
    let reset = app.post("/v1/auth/password/reset", reset).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let pair = totp_login(&app, email, NEW_PASSWORD, &mut authenticator).await;
    assert_eq!(factors(&app, str_of(&pair, "access_token")).await, json!(["totp"]));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Audit, notices, secrets at rest, the command line.

#[tokio::test]
async fn the_audit_trail_records_each_mfa_event() -> TestResult {
    let (app, clock) = start(&[]).await;
    let email = "tara@example.com";
    let (pair, mut authenticator, codes) = with_totp(&app, &clock, email).await;
    let access = str_of(&pair, "access_token");

    let token = password_step(&app, email, PASSWORD).await;
    for _ in 0..2 {
        assert_invalid_code(with_code(&app, &token, &authenticator.wrong()).await).await;
    }
    let response = with_code(&app, &token, &authenticator.code()).await;
    let request_id = response.headers()["x-request-id"].to_str()?.to_owned();
    ok_json(response).await;
    let token = password_step(&app, email, PASSWORD).await;
    ok_json(with_recovery_code(&app, &token, &codes[0]).await).await;
    ok_json(regenerate(&app, access, PASSWORD, &authenticator.code()).await).await;
    let body = json!({"password": PASSWORD, "code": authenticator.code()});
    assert_eq!(disable(&app, access, body).await.status(), StatusCode::NO_CONTENT);

    let mine = events(&app, access).await;
    let kinds: Vec<&str> = mine.iter().filter_map(|e| e["type"].as_str()).collect();
    for (kind, expected) in [
        ("mfa_enabled", 1),
        ("mfa_failed", 2),
        ("recovery_code_used", 1),
        ("recovery_codes_regenerated", 1),
        ("mfa_disabled", 1),
    ] {
        assert_eq!(count(&mine, kind), expected, "{kind} in {kinds:?}");
    }
    assert_eq!(kinds[0], "mfa_disabled", "newest first: {kinds:?}");
    // Logins: the password-only one, and the two that passed the second factor.
    let logins: Vec<&Value> =
        mine.iter().filter(|e| e["type"] == "login" && e["outcome"] == "success").collect();
    assert_eq!(logins.len(), 3, "{kinds:?}");
    assert!(
        logins.iter().any(|e| e["request_id"] == request_id.as_str()),
        "the completed MFA login is the login event: {logins:?}"
    );
    for failed in mine.iter().filter(|e| e["type"] == "mfa_failed") {
        assert_eq!(failed["outcome"], "failure", "{failed}");
    }
    Ok(())
}

#[tokio::test]
async fn enabling_and_disabling_totp_each_send_a_notice() -> TestResult {
    let (app, clock, sink) = app_with_sink(&[("PORTCULLIS_EMAIL_VERIFICATION", "off")]).await;
    let email = "uma@example.com";
    let (pair, mut authenticator, codes) = with_totp(&app, &clock, email).await;
    mail_to(&sink, email, 1).await;
    // Whatever else enabling sent has arrived too, before TOTP is disabled.
    let enabled = sink.wait_for(sink.received().len() + 1, Duration::from_secs(1)).await.len();
    let body = json!({"password": PASSWORD, "code": authenticator.code()});
    let access = str_of(&pair, "access_token");
    assert_eq!(disable(&app, access, body).await.status(), StatusCode::NO_CONTENT);
    let both = mail_to(&sink, email, enabled + 1).await;
    for notice in &both {
        let text = &notice.data;
        assert!(!text.contains(&authenticator.text), "no secret in a notice: {text}");
        assert!(codes.iter().all(|c| !text.contains(c.as_str())), "no recovery code: {text}");
        assert!(!text.contains("token="), "no link token: {text}");
    }
    assert!(sink.received().iter().all(|m| m.to == [email]), "to the account's address only");
    Ok(())
}

#[tokio::test]
async fn totp_secrets_are_not_stored_in_clear() -> TestResult {
    let key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let (app, clock) = start(&[("PORTCULLIS_MASTER_KEY", key)]).await;
    let pair = app.signed_in("vic@example.com").await;
    let access = str_of(&pair, "access_token");
    let (_, mut authenticator) = enrol(&app, &clock, access).await;
    let db = app.storage.db().await;
    let stored = |db: sqlx::AnyPool| async move {
        let rows = sqlx::query("SELECT secret FROM totp_factors").fetch_all(&db).await.unwrap();
        rows.iter()
            .map(|row| match row.try_get::<Vec<u8>, _>(0) {
                Ok(bytes) => bytes,
                Err(_) => row.try_get::<String, _>(0).unwrap().into_bytes(),
            })
            .collect::<Vec<Vec<u8>>>()
    };
    let raw = authenticator.secret.clone();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let forms: Vec<Vec<u8>> = vec![
        raw.clone(),
        authenticator.text.clone().into_bytes(),
        authenticator.text.to_lowercase().into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        STANDARD_NO_PAD.encode(&raw).into_bytes(),
        URL_SAFE_NO_PAD.encode(&raw).into_bytes(),
    ];
    let in_clear =
        |value: &[u8]| forms.iter().any(|form| value.windows(form.len()).any(|w| w == &form[..]));
    let pending = stored(db.clone()).await;
    assert!(pending.iter().all(|v| !in_clear(v)), "a pending secret is sealed too");

    confirm(&app, access, &mut authenticator).await;
    let confirmed = stored(db.clone()).await;
    assert!(!confirmed.is_empty(), "the factor is in totp_factors");
    assert!(confirmed.iter().all(|v| !in_clear(v)), "sealed at rest");
    totp_login(&app, "vic@example.com", PASSWORD, &mut authenticator).await;
    Ok(())
}

#[tokio::test]
async fn the_command_line_resets_a_users_mfa() -> TestResult {
    let (app, clock) = start(&[]).await;
    let (pair, _, _) = with_totp(&app, &clock, "wen@example.com").await;
    let status = common::run_cli(&app, &["user", "reset-mfa", "--email", "wen@example.com"]).await;
    assert_eq!(status, Some(0));
    let direct = app.logged_in("wen@example.com", PASSWORD).await;
    let access = str_of(&direct, "access_token");
    assert_eq!(amr(access), ["pwd"]);
    assert_eq!(factors(&app, access).await, json!([]));
    let mine = events(&app, access).await;
    assert_eq!(count(&mine, "mfa_disabled"), 1, "{mine:?}");
    assert_eq!(factors(&app, str_of(&pair, "access_token")).await, json!([]));

    let unknown =
        common::run_cli(&app, &["user", "reset-mfa", "--email", "nobody@example.com"]).await;
    assert_eq!(unknown, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_wrong_code_at_a_factor_change_counts_toward_the_lockout() -> TestResult {
    let (app, clock) = start(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    for (n, (method, path)) in [
        (Method::DELETE, "/v1/auth/mfa/totp"),
        (Method::POST, "/v1/auth/mfa/recovery-codes"),
        (Method::DELETE, "/v1/auth/me"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("guess{n}@example.com");
        let (pair, mut authenticator, _) = with_totp(&app, &clock, &email).await;
        let access = str_of(&pair, "access_token");
        // The right password with a wrong code, three times: the password clears nothing.
        for _ in 0..3 {
            let body = json!({"password": PASSWORD, "code": authenticator.wrong()});
            assert_invalid_code(call(&app, method.clone(), path, access, body).await).await;
        }
        let body = json!({"password": PASSWORD, "code": authenticator.code()});
        let locked = call(&app, method.clone(), path, access, body).await;
        assert!(locked.headers().contains_key("retry-after"), "{path}");
        assert_problem(locked, StatusCode::LOCKED, "account_locked").await;
        assert_eq!(factors(&app, access).await, json!(["totp"]), "{path}: nothing changed");
    }
    Ok(())
}

#[tokio::test]
async fn only_a_right_password_and_code_clear_the_count_at_a_factor_change() -> TestResult {
    let (app, clock) = start(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let (pair, mut authenticator, _) = with_totp(&app, &clock, "clear@example.com").await;
    let access = str_of(&pair, "access_token");
    for _ in 0..2 {
        let body = json!({"password": PASSWORD, "code": authenticator.wrong()});
        let path = "/v1/auth/mfa/recovery-codes";
        assert_invalid_code(call(&app, Method::POST, path, access, body).await).await;
    }
    // Both right: the count is cleared, so two more wrong codes do not lock.
    ok_json(regenerate(&app, access, PASSWORD, &authenticator.code()).await).await;
    for _ in 0..2 {
        let body = json!({"password": PASSWORD, "code": authenticator.wrong()});
        let path = "/v1/auth/mfa/recovery-codes";
        assert_invalid_code(call(&app, Method::POST, path, access, body).await).await;
    }
    ok_json(regenerate(&app, access, PASSWORD, &authenticator.code()).await).await;
    Ok(())
}
