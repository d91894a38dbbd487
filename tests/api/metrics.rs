//! `/metrics`: Prometheus text with bounded labels, on the main listener or on its own.

use crate::common;

use common::{PASSWORD, TestResult, spawn, spawn_with, str_of};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn requests_events_and_hashes_are_counted_by_route_pattern() -> TestResult {
    let app = spawn().await;
    let pair = app.signed_in("alice@example.com").await;
    let path = format!("/v1/auth/sessions/{}", uuid::Uuid::new_v4());
    app.request(Method::DELETE, &path, Some(str_of(&pair, "access_token")), None).await;
    app.client.get(app.url("/no/such/path/123")).send().await?;
    let login =
        r#"portcullis_http_requests_total{method="POST",route="/v1/auth/login",status="200"}"#;
    assert_eq!(app.metric(login).await, 1.0);
    let delete = r#"portcullis_http_requests_total{method="DELETE",route="/v1/auth/sessions/{id}",status="404"}"#;
    assert_eq!(app.metric(delete).await, 1.0, "the route pattern, not the path");
    let unmatched =
        r#"portcullis_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(app.metric(unmatched).await, 1.0);
    let event = r#"portcullis_security_events_total{outcome="success",type="login"}"#;
    assert_eq!(app.metric(event).await, 1.0);
    assert_eq!(app.metric("portcullis_password_hashes_total").await, 2.0);
    let response = app.client.get(app.url("/metrics")).send().await?;
    assert!(response.headers()["content-type"].to_str()?.starts_with("text/plain"));
    assert!(response.text().await?.contains("portcullis_http_request_duration_seconds_bucket"));
    Ok(())
}

#[tokio::test]
async fn refusals_are_counted_by_reason() -> TestResult {
    let limited = spawn_with(&[("PORTCULLIS_RATE_LIMIT_ACCOUNT", "1/min")]).await;
    limited.login("bob@example.com", PASSWORD).await;
    let refused = limited.login("bob@example.com", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.metric(r#"portcullis_refusals_total{reason="account"}"#).await, 1.0);

    let locking = spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "1")]).await;
    locking.login("carol@example.com", PASSWORD).await;
    let locked = locking.login("carol@example.com", PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::LOCKED);
    assert_eq!(locking.metric(r#"portcullis_refusals_total{reason="locked"}"#).await, 1.0);
    Ok(())
}

#[tokio::test]
async fn with_a_metrics_bind_the_main_listener_does_not_serve_them() -> TestResult {
    let app = spawn_with(&[("PORTCULLIS_METRICS_BIND", "127.0.0.1:0")]).await;
    let main = app.client.get(app.url("/metrics")).send().await?;
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let address = app.metrics_address.expect("a metrics listener");
    let own = app.client.get(format!("http://{address}/metrics")).send().await?;
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await?.contains("portcullis_password_hashes_waiting"));
    Ok(())
}

#[tokio::test]
async fn unknown_methods_do_not_grow_the_metrics() -> TestResult {
    let app = spawn().await;
    let scrape = || async { app.client.get(app.url("/metrics")).send().await?.text().await };
    // Warm up: the scrape itself and one extension method create their series once.
    let warm_up = Method::from_bytes(b"WARMUP")?;
    app.client.request(warm_up, app.url("/healthz")).send().await?;
    scrape().await?;
    let before = scrape().await?.len();
    for i in 0..500 {
        let method = Method::from_bytes(format!("X-CUSTOM-{i}").as_bytes())?;
        let response = app.client.request(method, app.url("/healthz")).send().await?;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = scrape().await?;
    // Only counter values change (a few more digits), no new series.
    assert!(after.len() < before + 256, "grew from {before} to {} bytes", after.len());
    assert!(after.contains(r#"method="other""#));
    assert!(!after.contains("X-CUSTOM"));
    Ok(())
}
