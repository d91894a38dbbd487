//! `/openapi.json` documents every route the server answers, and only those.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestResult, spawn};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn the_document_is_openapi_3_1_and_matches_the_routes() -> TestResult {
    let app = spawn().await;
    let response = app.client.get(app.url("/openapi.json")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await?;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 17);
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
            let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let response = app.client.request(method.clone(), app.url(&concrete)).send().await?;
            // Every documented operation is routed: no 404 from the fallback and no 405.
            let status = response.status();
            let body = response.text().await?;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("no such resource")),
                "{method} {path}"
            );
            for code in operation["responses"].as_object().unwrap().keys() {
                assert!(code.parse::<u16>().is_ok(), "{method} {path}: {code}");
            }
        }
    }
    Ok(())
}
