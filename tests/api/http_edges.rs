//! The HTTP edge: problem details for every error, bad input, security headers, request ids,
//! CORS, health.

use crate::common;

use common::{PASSWORD, TestResult, assert_problem, spawn, spawn_with};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const SECURITY_HEADERS: [(&str, &str); 7] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("permissions-policy", ""),
    ("cache-control", "no-store"),
];

fn assert_security_headers(response: &reqwest::Response) {
    for (name, value) in SECURITY_HEADERS {
        let got = response.headers().get(name).unwrap_or_else(|| panic!("missing {name}"));
        if !value.is_empty() {
            assert_eq!(got, value, "{name}");
        }
    }
    assert!(response.headers().contains_key("x-request-id"));
}

async fn raw_post(
    app: &common::TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_response_carries_the_security_headers() -> TestResult {
    let app = spawn().await;
    let ok = app.client.get(app.url("/healthz")).send().await?;
    assert_security_headers(&ok);
    let created = app.register("alice@example.com", PASSWORD).await;
    assert_security_headers(&created);
    let not_found = app.client.get(app.url("/nowhere")).send().await?;
    assert_security_headers(&not_found);
    let unauthorized = app.client.get(app.url("/v1/auth/me")).send().await?;
    assert_security_headers(&unauthorized);
    Ok(())
}

#[tokio::test]
async fn routing_errors_are_problem_details() -> TestResult {
    let app = spawn().await;
    let not_found = app.client.get(app.url("/v1/auth/nothing-here")).send().await?;
    assert_problem(not_found, StatusCode::NOT_FOUND, "not_found").await;
    let wrong_method = app.client.get(app.url("/v1/auth/login")).send().await?;
    assert!(wrong_method.headers().contains_key("allow"));
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    Ok(())
}

#[tokio::test]
async fn bodies_over_16_kib_are_refused_and_nothing_is_stored() -> TestResult {
    let app = spawn().await;
    let padding = "x".repeat(17 * 1024);
    let body =
        format!(r#"{{"email":"big@example.com","password":"{PASSWORD}","pad":"{padding}"}}"#);
    let response =
        raw_post(&app, "/v1/auth/register", Some("application/json"), body.into_bytes()).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.login("big@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_body_that_is_not_json_is_unsupported() -> TestResult {
    let app = spawn().await;
    let body = format!("email=a%40example.com&password={PASSWORD}").into_bytes();
    for content_type in [Some("application/x-www-form-urlencoded"), Some("text/plain"), None] {
        let response = raw_post(&app, "/v1/auth/register", content_type, body.clone()).await;
        assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            .await;
    }
    Ok(())
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests_and_store_nothing() -> TestResult {
    let app = spawn().await;
    let cases: [(&str, Vec<u8>); 7] = [
        ("syntax", br#"{"email": "a@example.com", "password": "#.to_vec()),
        ("missing field", br#"{"email": "mallory@example.com"}"#.to_vec()),
        ("wrong type", br#"{"email": "mallory@example.com", "password": 12345678}"#.to_vec()),
        ("array", br#"["mallory@example.com", "Correct-Horse-42"]"#.to_vec()),
        ("null", b"null".to_vec()),
        ("empty", Vec::new()),
        (
            "invalid utf-8",
            b"{\"email\": \"mallory@example.com\", \"password\": \"Correct-Horse-\xff\xfe\"}"
                .to_vec(),
        ),
    ];
    for (name, body) in cases {
        let response = raw_post(&app, "/v1/auth/register", Some("application/json"), body).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
        assert!(
            !problem["detail"].as_str().unwrap().contains("12345678"),
            "{name}: the detail echoes input"
        );
    }
    assert_eq!(app.login("mallory@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn the_missing_field_is_named() -> TestResult {
    let app = spawn().await;
    let response = raw_post(
        &app,
        "/v1/auth/login",
        Some("application/json"),
        br#"{"email":"a@example.com"}"#.to_vec(),
    )
    .await;
    let body = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(body["detail"].as_str().unwrap().contains("password"), "{body}");
    Ok(())
}

#[tokio::test]
async fn request_ids_are_always_made_by_the_server() -> TestResult {
    let app = spawn().await;
    let mut seen = Vec::new();
    for client_id in ["fixed", "fixed", "evil\"id with spaces"] {
        let response =
            app.client.get(app.url("/healthz")).header("x-request-id", client_id).send().await?;
        let id = response.headers()["x-request-id"].to_str()?.to_owned();
        assert_ne!(id, client_id, "a client's id is never taken");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        seen.push(id);
    }
    let a = app.client.get(app.url("/healthz")).send().await?;
    seen.push(a.headers()["x-request-id"].to_str()?.to_owned());
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_CORS_ORIGINS", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await?;
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_security_headers(&allowed);
    let denied = preflight("https://evil.example.net").await?;
    let cors_headers: Vec<_> =
        denied.headers().keys().filter(|k| k.as_str().starts_with("access-control-")).collect();
    assert!(cors_headers.is_empty(), "{cors_headers:?}");
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example.net")
        .send()
        .await?;
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://app.example.com");
    Ok(())
}

#[tokio::test]
async fn without_configured_origins_there_is_no_cross_origin_access() -> TestResult {
    let app = spawn().await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/v1/auth/login"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert!(!preflight.headers().keys().any(|k| k.as_str().starts_with("access-control-")));
    Ok(())
}

#[tokio::test]
async fn health_and_readiness_answer() -> TestResult {
    let app = spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await?;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await?;
    assert_eq!(body["status"], "ready");
    Ok(())
}

#[tokio::test]
async fn a_control_character_in_any_query_parameter_is_a_validation_failure() -> TestResult {
    let app = spawn().await;
    common::create_admin(&app, "root@example.com").await;
    let pair = app.logged_in("root@example.com", PASSWORD).await;
    let token = common::str_of(&pair, "access_token");
    for control in ["%00", "%1F", "%7F", "%C2%85"] {
        for path in [
            format!("/v1/admin/users?email=root{control}"),
            format!("/v1/admin/users?email={control}&limit=5"),
            format!("/v1/admin/users?limit=5&{control}=1"),
            format!("/v1/auth/sessions?cursor=a{control}b"),
            format!("/v1/admin/audit?type=login{control}"),
        ] {
            let response = app.get(&path, token).await;
            let body =
                assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
                    .await;
            assert!(body["detail"].as_str().unwrap().contains("control"), "{path}: {body}");
        }
        // Before any authentication, too.
        let anonymous = app.client.get(app.url(&format!("/v1/auth/me?x={control}"))).send().await?;
        assert_problem(anonymous, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    // Encoded printable characters, and no query, are fine.
    let page =
        common::ok_json(app.get("/v1/admin/users?email=root%40ex&limit=5", token).await).await;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1), "{page}");
    Ok(())
}

#[tokio::test]
async fn the_jwks_publishes_an_ed25519_key_and_an_rsa_key_of_2048_bits() -> TestResult {
    use base64::Engine;
    let app = spawn().await;
    let jwks: Value =
        app.client.get(app.url("/.well-known/jwks.json")).send().await?.json().await?;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    let ed = keys.iter().find(|k| k["alg"] == "EdDSA").unwrap();
    assert_eq!(ed["kty"], "OKP");
    assert_eq!(ed["crv"], "Ed25519");
    let rsa = keys.iter().find(|k| k["alg"] == "RS256").unwrap();
    assert_eq!(rsa["kty"], "RSA");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(rsa["e"], "AQAB");
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap())?;
    assert_eq!(n.len(), 256, "a 2048-bit modulus");
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "the private part is never published: {key}");
        }
        // RFC 7638: the kid is the thumbprint, so a verifier can check it names this key.
        let required: Vec<(&str, &str)> = match key["kty"].as_str().unwrap() {
            "OKP" => vec![("crv", "Ed25519"), ("kty", "OKP"), ("x", key["x"].as_str().unwrap())],
            _ => vec![
                ("e", key["e"].as_str().unwrap()),
                ("kty", "RSA"),
                ("n", key["n"].as_str().unwrap()),
            ],
        };
        let canonical = format!(
            "{{{}}}",
            required.iter().map(|(k, v)| format!(r#""{k}":"{v}""#)).collect::<Vec<_>>().join(",")
        );
        use sha2::Digest;
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(key["kid"], thumbprint.as_str());
    }
    Ok(())
}

#[tokio::test]
async fn a_request_that_trickles_in_is_cut_off_with_408() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(&[("PORTCULLIS_REQUEST_TIMEOUT", "1s")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await?;
    let head = "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\"";
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await;
    assert!(read.is_ok(), "the server never answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    Ok(())
}
