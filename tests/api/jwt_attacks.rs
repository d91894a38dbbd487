//! Forged and altered access tokens are refused: the algorithm is pinned, the key id must be
//! known, and `typ`, `iss`, `aud` and `exp` are checked.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{TestApp, TestResult, assert_problem, spawn, spawn_with, str_of};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "an-hs256-secret-of-more-than-32-bytes!";

fn parts(token: &str) -> (Value, Value) {
    let mut split = token.split('.');
    let header = serde_json::from_slice(&B64.decode(split.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&B64.decode(split.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    let h = B64.encode(header.to_string());
    let c = B64.encode(claims.to_string());
    format!("{h}.{c}.{signature}")
}

async fn assert_refused(app: &TestApp, token: &str) {
    let response = app.get("/v1/auth/me", token).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn alg_none_is_refused() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let (mut header, claims) = parts(str_of(&pair, "access_token"));
    for alg in ["none", "None", "NONE"] {
        header["alg"] = json!(alg);
        assert_refused(&app, &unsigned(&header, &claims, "")).await;
    }
    Ok(())
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("bob@example.com").await;
    let (header, claims) = parts(str_of(&pair, "access_token"));
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await?.json().await?;
    let published = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]);
    let x = published.unwrap()["x"].as_str().unwrap();
    let mut forged_header = Header::new(Algorithm::HS256);
    forged_header.typ = Some("at+jwt".into());
    forged_header.kid = header["kid"].as_str().map(str::to_owned);
    for key in [B64.decode(x)?, x.as_bytes().to_vec()] {
        let token =
            jsonwebtoken::encode(&forged_header, &claims, &EncodingKey::from_secret(&key)?)?;
        assert_refused(&app, &token).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_tampered_payload_is_refused() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("carol@example.com").await;
    let token = str_of(&pair, "access_token");
    let (_, mut claims) = parts(token);
    let mut segments = token.split('.');
    let (header, signature) = (segments.next().unwrap(), token.rsplit('.').next().unwrap());
    assert_eq!(app.get("/v1/auth/me", token).await.status(), StatusCode::OK);
    claims["roles"] = json!(["user", "admin"]);
    let tampered = format!("{header}.{}.{signature}", B64.encode(claims.to_string()));
    assert_refused(&app, &tampered).await;
    Ok(())
}

/// Signs `claims` with the server's own HS256 secret, so that only the altered claim is wrong.
fn sign(kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = typ.map(str::to_owned);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET.as_bytes()).unwrap())
        .unwrap()
}

#[tokio::test]
async fn claims_are_checked_even_when_the_signature_is_valid() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_JWT_SECRET", SECRET)]).await;
    let pair = app.signed_in("dave@example.com").await;
    let (header, claims) = parts(str_of(&pair, "access_token"));
    let kid = header["kid"].as_str().unwrap();
    // The forging itself is right: an unaltered re-signed token is accepted.
    assert_eq!(
        app.get("/v1/auth/me", &sign(kid, Some("at+jwt"), &claims)).await.status(),
        StatusCode::OK
    );

    let now = chrono::Utc::now().timestamp();
    let altered = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let cases = [
        ("expired", sign(kid, Some("at+jwt"), &altered("exp", json!(now - 5)))),
        ("wrong iss", sign(kid, Some("at+jwt"), &altered("iss", json!("someone-else")))),
        ("wrong aud", sign(kid, Some("at+jwt"), &altered("aud", json!("another-api")))),
        ("wrong typ", sign(kid, Some("JWT"), &claims)),
        ("no typ", sign(kid, None, &claims)),
        ("unknown kid", sign("not-a-key", Some("at+jwt"), &claims)),
        ("bad sub", sign(kid, Some("at+jwt"), &altered("sub", json!("root")))),
    ];
    for (name, token) in cases {
        let response = app.get("/v1/auth/me", &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&app, &sign(kid, Some("at+jwt"), &no_exp)).await;
    Ok(())
}

#[tokio::test]
async fn an_eddsa_token_is_refused_by_an_hs256_server() -> TestResult {
    let eddsa = spawn().await;
    let hs256 = spawn_with(&[("PORTCULLIS_JWT_SECRET", SECRET)]).await;
    let pair = eddsa.signed_in("erin@example.com").await;
    assert_refused(&hs256, str_of(&pair, "access_token")).await;
    let jwks: Value =
        hs256.client.get(hs256.url("/.well-known/jwks.json")).send().await?.json().await?;
    // Only the ID-token key pairs: a shared secret is never published.
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    assert!(keys.iter().all(|k| k["kty"] != "oct" && k.get("k").is_none()), "{jwks}");
    let kid = jsonwebtoken::decode_header(str_of(
        &hs256.signed_in("erin@example.com").await,
        "access_token",
    ))?
    .kid;
    assert!(keys.iter().all(|k| k["kid"].as_str() != kid.as_deref()), "{jwks}");
    Ok(())
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("fred@example.com").await;
    let token = str_of(&pair, "access_token");
    for value in [
        token.to_owned(),
        format!("Basic {token}"),
        "Bearer".into(),
        format!("Bearer {}", "a".repeat(5000)),
    ] {
        let response =
            app.client.get(app.url("/v1/auth/me")).header("authorization", value).send().await?;
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let lower = app
        .client
        .get(app.url("/v1/auth/me"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await?;
    assert_eq!(lower.status(), StatusCode::OK, "the scheme is case-insensitive (RFC 9110 §11.1)");
    Ok(())
}

#[tokio::test]
async fn tokens_not_yet_valid_or_issued_in_the_future_are_refused() -> TestResult {
    let app =
        spawn_with(&[("PORTCULLIS_JWT_SECRET", SECRET), ("PORTCULLIS_JWT_LEEWAY", "5s")]).await;
    let pair = app.signed_in("gail@example.com").await;
    let (header, claims) = parts(str_of(&pair, "access_token"));
    let kid = header["kid"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let with = |changes: &[(&str, i64)]| {
        let mut c = claims.clone();
        for (key, value) in changes {
            c[*key] = json!(value);
        }
        // A far `exp` so that only the claim under test is wrong.
        c["exp"] = json!(now + 7200);
        sign(kid, Some("at+jwt"), &c)
    };
    // Within the bounds: a small clock skew is tolerated.
    for (name, token) in
        [("nbf now", with(&[("nbf", now)])), ("iat 30 s ahead", with(&[("iat", now + 30)]))]
    {
        assert_eq!(app.get("/v1/auth/me", &token).await.status(), StatusCode::OK, "{name}");
    }
    for (name, token) in [
        ("nbf in an hour", with(&[("nbf", now + 3600)])),
        ("nbf past the leeway", with(&[("nbf", now + 30)])),
        ("iat in an hour", with(&[("iat", now + 3600)])),
        ("iat past leeway + 60 s", with(&[("iat", now + 5 + 60 + 30)])),
    ] {
        let response = app.get("/v1/auth/me", &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    Ok(())
}
