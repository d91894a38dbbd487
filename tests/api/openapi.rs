//! `/openapi.json` documents every route the server answers, and only those; it is valid
//! OpenAPI 3.1; and every operation lists its responses, each problem one referencing `Problem`.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{TestApp, TestResult, spawn};
use portcullis::audit::query::{DEFAULT_LIMIT, MAX_LIMIT};
use portcullis::error::ErrorCode;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const PROBLEM_REF: &str = "#/components/schemas/Problem";
const HTTP_METHODS: [&str; 8] =
    ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn served_document(app: &TestApp) -> Result<Value, Box<dyn std::error::Error>> {
    let response = app.client.get(app.url("/openapi.json")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    Ok(response.json().await?)
}

/// (method, path) of every operation of the document, methods upper-case.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if HTTP_METHODS.contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// Every operation of the document, with its path and method.
fn each_operation(document: &Value) -> Vec<(String, String, &Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if HTTP_METHODS.contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    operations
}

fn app_url(app: &TestApp, path: &str) -> String {
    match (path, app.metrics_address) {
        ("/metrics", Some(address)) => format!("http://{address}/metrics"),
        _ => app.url(path),
    }
}

#[tokio::test]
async fn the_router_and_the_document_list_the_same_operations() -> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    let documented = documented_operations(&document);
    let routed: BTreeSet<(String, String)> = portcullis::http::route_table()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routed but not documented: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    assert!(documented.len() >= 17, "{documented:?}");
    Ok(())
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() -> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    let documented = documented_operations(&document);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let response = app
                .client
                .request(Method::from_bytes(method.as_bytes())?, app_url(&app, &concrete))
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            if documented.contains(&(method.to_owned(), path.clone())) {
                // Routed: not axum's 405, and not the fallback's 404 (a handler's own 404 for an
                // unknown id would say more, but none is reached without a bearer token).
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
                assert!(
                    !(status == StatusCode::NOT_FOUND && body.contains("no such resource")),
                    "{method} {path} answers the fallback: {body}"
                );
            } else if !(path == "/metrics" && app.metrics_address.is_some()) {
                // A method the document does not list is not served on a documented path.
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
                let problem: Value = serde_json::from_str(&body)?;
                if path.starts_with("/oauth2/") {
                    // The OAuth endpoints answer RFC 6749 objects, even for a wrong method.
                    assert_eq!(problem["error"], "invalid_request", "{method} {path}");
                } else {
                    assert_eq!(problem["code"], "method_not_allowed", "{method} {path}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() -> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    assert_eq!(document["info"]["title"], "portcullis");

    let installed = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openapi-spec-validator must be installed in CI (pip install openapi-spec-validator)"
        );
        eprintln!("openapi-spec-validator is not installed: the document is not validated");
        return Ok(());
    }
    let file = tempfile::Builder::new().suffix(".json").tempfile()?;
    std::fs::write(file.path(), serde_json::to_vec_pretty(&document)?)?;
    let output = tokio::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(file.path())
        .output()
        .await?;
    assert!(
        output.status.success(),
        "openapi-spec-validator refuses the document:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The `$ref`s anywhere under `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// The codes a problem response narrows `code` to.
fn narrowed_codes(schema: &Value) -> Vec<String> {
    schema["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["properties"]["code"]["enum"].as_array())
        .flatten()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_operation_lists_its_responses_and_problems_reference_the_problem_schema()
-> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    let components = &document["components"];

    let all_slugs: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.slug()).collect();
    let problem = &components["schemas"]["Problem"];
    assert_eq!(problem["properties"]["code"]["enum"], serde_json::json!(all_slugs));
    for member in ["type", "title", "status", "code", "detail", "request_id"] {
        assert!(problem["required"].as_array().unwrap().contains(&member.into()), "{member}");
    }
    let bearer = &components["securitySchemes"]["bearer"];
    assert_eq!((&bearer["type"], &bearer["scheme"]), (&"http".into(), &"bearer".into()));
    assert_eq!(bearer["bearerFormat"], "JWT");

    for (method, path, operation) in each_operation(&document) {
        let name = format!("{method} {path}");
        let responses = operation["responses"].as_object().unwrap();
        let successes: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(successes.len(), 1, "{name}: one success status, not {successes:?}");
        assert!(responses.contains_key("500"), "{name}: no 500");
        let needs_bearer = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().all(|requirement| requirement.get("bearer").is_some()));
        for (status, response) in responses {
            let code: u16 = status.parse().unwrap_or_else(|_| panic!("{name}: status {status}"));
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{name}");
            if code < 400 {
                continue;
            }
            if path == "/oauth2/authorize" || path == "/oauth2/logout" {
                // A browser's request: every error is a page (or a redirect to the client).
                assert!(response["content"].get("text/html").is_some(), "{name} {status}");
                continue;
            }
            if path.starts_with("/oauth2/") {
                // RFC 6749 §5.2 objects, not problem details.
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/OAuthErrorBody",
                    "{name} {status}"
                );
                let header = match code {
                    401 => Some("WWW-Authenticate"),
                    429 | 503 => Some("Retry-After"),
                    _ => None,
                };
                if let Some(header) = header {
                    assert!(response["headers"].get(header).is_some(), "{name} {status}");
                }
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"];
            let mut found = Vec::new();
            references(schema, &mut found);
            assert!(found.iter().any(|r| r == PROBLEM_REF), "{name} {status}: {schema}");
            let codes = narrowed_codes(schema);
            assert!(!codes.is_empty(), "{name} {status}: no codes");
            for slug in &codes {
                let error = ErrorCode::ALL.iter().find(|c| c.slug() == slug);
                let error = error.unwrap_or_else(|| panic!("{name} {status}: unknown code {slug}"));
                assert_eq!(error.status().as_u16(), code, "{name}: {slug} under {status}");
            }
            let headers = &response["headers"];
            if codes.iter().any(|c| c == "rate_limited" || c == "account_locked") {
                assert!(headers.get("Retry-After").is_some(), "{name} {status}");
            }
            if codes.iter().any(|c| c == "unauthorized") {
                assert!(headers.get("WWW-Authenticate").is_some(), "{name} {status}");
            }
        }
        // `/oauth2/userinfo` answers RFC 6750 errors, not problem details.
        if needs_bearer && !path.starts_with("/oauth2/") {
            let unauthorized =
                narrowed_codes(&responses["401"]["content"]["application/problem+json"]["schema"]);
            assert!(unauthorized.contains(&"unauthorized".to_owned()), "{name}");
        }
        if operation.get("requestBody").is_some() && !path.starts_with("/oauth2/") {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{name}: a body but no {status}");
            }
        }
    }

    // Every reference resolves.
    let mut found = Vec::new();
    references(&document, &mut found);
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference}"));
        assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
    }
    Ok(())
}

#[tokio::test]
async fn the_audit_parameters_match_the_limits_the_server_applies() -> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    for path in ["/v1/admin/audit", "/v1/auth/events"] {
        let parameters = document["paths"][path]["get"]["parameters"].as_array().unwrap();
        let names: Vec<&str> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["type", "user_id", "since", "until", "limit", "cursor"], "{path}");
        let limit = &parameters[4]["schema"];
        assert_eq!(limit["maximum"], MAX_LIMIT, "{path}");
        assert_eq!(limit["default"], DEFAULT_LIMIT, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn every_string_query_parameter_says_control_characters_are_refused() -> TestResult {
    let app = spawn().await;
    let document = served_document(&app).await?;
    let mut checked = 0;
    for (method, path, operation) in each_operation(&document) {
        let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
        for parameter in parameters.iter().filter(|p| p["in"] == "query") {
            let kind = &parameter["schema"]["type"];
            let is_string =
                kind == "string" || kind.as_array().is_some_and(|k| k.contains(&"string".into()));
            if is_string {
                let pattern = parameter["schema"]["pattern"].as_str().unwrap_or_default();
                assert!(
                    pattern.contains("u0000-"),
                    "{method} {path} {}: {pattern:?}",
                    parameter["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "the cursors and filters: {checked}");
    Ok(())
}
