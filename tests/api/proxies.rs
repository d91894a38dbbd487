//! The client IP behind a trusted proxy, for each `CLIENT_IP_HEADER`: the session shows the
//! forwarded client, the IP budget is the forwarded client's, the headers of the other modes are
//! ignored, a proxy that names no client is the client, and an untrusted peer's headers change
//! nothing. The test client connects from 127.0.0.1, which plays the proxy.

use crate::common;

use common::{PASSWORD, TestApp, spawn_with, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every header a client could use to pick its address, each naming someone else, so that a
/// mode that read the wrong one would show it.
const DECOYS: [(&str, &str); 3] = [
    ("x-forwarded-for", "6.6.6.6, 198.51.100.66"),
    ("forwarded", "for=6.6.6.6, for=\"[2001:db8::66]:4711\""),
    ("x-real-ip", "203.0.113.66"),
];

/// `headers` as sent (repeated names are separate lines), plus every decoy of the other modes.
async fn login_with(
    app: &TestApp,
    mode: &str,
    headers: &[(&str, &str)],
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = app.client.post(app.url("/v1/auth/login"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    for (name, value) in DECOYS {
        if name != mode {
            request = request.header(name, value);
        }
    }
    request.json(&json!({ "email": email, "password": password })).send().await.unwrap()
}

async fn proxied(mode: &str) -> TestApp {
    spawn_with(&[
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("PORTCULLIS_CLIENT_IP_HEADER", mode),
    ])
    .await
}

/// The `ip` of the session that a login with `headers` opens.
async fn session_ip(app: &TestApp, mode: &str, headers: &[(&str, &str)], email: &str) -> Value {
    assert_eq!(app.register(email, PASSWORD).await.status(), StatusCode::CREATED);
    let response = login_with(app, mode, headers, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
    let pair: Value = response.json().await.unwrap();
    let list: Value =
        app.get("/v1/auth/sessions", str_of(&pair, "access_token")).await.json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    sessions[0]["ip"].clone()
}

#[tokio::test]
async fn x_forwarded_for_names_the_right_most_untrusted_hop() {
    let mode = "x-forwarded-for";
    let app = proxied(mode).await;
    let hops = [(mode, "7.7.7.7, 198.51.100.1")];
    assert_eq!(session_ip(&app, mode, &hops, "a@example.com").await, "198.51.100.1");
    let lines = [(mode, "7.7.7.7"), (mode, "2001:db8::1, 127.0.0.1")];
    assert_eq!(session_ip(&app, mode, &lines, "b@example.com").await, "2001:db8::1");
}

#[tokio::test]
async fn forwarded_names_the_right_most_untrusted_for() {
    let mode = "forwarded";
    let app = proxied(mode).await;
    let rfc = [(mode, "for=192.0.2.60;proto=http;by=203.0.113.43")];
    assert_eq!(session_ip(&app, mode, &rfc, "a@example.com").await, "192.0.2.60");
    // Two header lines, a forged left-most element, IPv6 with a port, and the proxy's own hop.
    let lines = [
        (mode, "for=7.7.7.7"),
        (mode, "For=\"[2001:db8:cafe::17]:4711\", for=\"127.0.0.1:8080\";proto=https"),
    ];
    assert_eq!(session_ip(&app, mode, &lines, "b@example.com").await, "2001:db8:cafe::17");
    let quoted_v4 = [(mode, "for=\"198.51.100.17:4711\"")];
    assert_eq!(session_ip(&app, mode, &quoted_v4, "c@example.com").await, "198.51.100.17");
}

#[tokio::test]
async fn x_real_ip_names_the_one_address_the_proxy_set() {
    let mode = "x-real-ip";
    let app = proxied(mode).await;
    let real = [(mode, "198.51.100.1")];
    assert_eq!(session_ip(&app, mode, &real, "a@example.com").await, "198.51.100.1");
    let v6 = [(mode, "2001:db8::7")];
    assert_eq!(session_ip(&app, mode, &v6, "b@example.com").await, "2001:db8::7");
}

/// Without a usable header from the trusted proxy (none, `unknown`, an obfuscated name, junk),
/// the client is the proxy, in every mode; the decoys of the other modes do not count.
#[tokio::test]
async fn a_trusted_proxy_that_names_no_client_is_the_client() {
    let unusable: [(&str, &[&str]); 3] = [
        ("x-forwarded-for", &["unknown", "not-an-ip", ""]),
        ("forwarded", &["for=unknown", "for=\"_hidden\"", "by=127.0.0.1;proto=https", "for="]),
        ("x-real-ip", &["unknown", "198.51.100.1, 198.51.100.2", "[::1"]),
    ];
    for (mode, values) in unusable {
        let app = proxied(mode).await;
        let none = session_ip(&app, mode, &[], "none@example.com").await;
        assert_eq!(none, "127.0.0.1", "{mode} without the header");
        for (i, value) in values.iter().enumerate() {
            let email = format!("junk{i}@example.com");
            let ip = session_ip(&app, mode, &[(mode, value)], &email).await;
            assert_eq!(ip, "127.0.0.1", "{mode}: {value:?}");
        }
    }
}

/// Two failed logins spend the budget of two; a third from the same address is refused.
async fn spend(app: &TestApp, mode: &str, headers: &[(&str, &str)], tag: &str) {
    for i in 0..2 {
        let email = format!("{tag}{i}@example.com");
        let response = login_with(app, mode, headers, &email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{mode} {headers:?} #{i}");
    }
}

async fn status_of(app: &TestApp, mode: &str, headers: &[(&str, &str)], email: &str) -> StatusCode {
    login_with(app, mode, headers, email, PASSWORD).await.status()
}

/// Per mode: clients behind the proxy have budgets of their own, the proxy without a header has
/// its own, and changing the headers of the other modes does not move a client to a new budget.
#[tokio::test]
async fn the_ip_budget_is_the_forwarded_clients() {
    let modes: [(&str, [&str; 2]); 3] = [
        ("x-forwarded-for", ["198.51.100.1", "6.6.6.6, 198.51.100.2"]),
        ("forwarded", ["for=198.51.100.1", "for=6.6.6.6, for=\"[2001:db8::2]:80\""]),
        ("x-real-ip", ["198.51.100.1", "198.51.100.2"]),
    ];
    for (mode, [first, second]) in modes {
        let app = spawn_with(&[
            ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("PORTCULLIS_CLIENT_IP_HEADER", mode),
            ("PORTCULLIS_RATE_LIMIT_IP", "2/min"),
        ])
        .await;
        spend(&app, mode, &[(mode, first)], "first").await;
        let again = status_of(&app, mode, &[(mode, first)], "first9@example.com").await;
        assert_eq!(again, StatusCode::TOO_MANY_REQUESTS, "{mode}: the first client is spent");
        // Spoofed headers of the other modes, each new: still the first client.
        for (i, (name, _)) in DECOYS.iter().enumerate().filter(|(_, (name, _))| *name != mode) {
            let spoof = match *name {
                "forwarded" => format!("for=192.0.2.{i}"),
                _ => format!("192.0.2.{i}"),
            };
            let mut request = app.client.post(app.url("/v1/auth/login")).header(mode, first);
            request = request.header(*name, spoof.as_str());
            let response = request
                .json(&json!({ "email": "spoof@example.com", "password": PASSWORD }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{mode} spoofing {name}");
        }
        let other = status_of(&app, mode, &[(mode, second)], "second@example.com").await;
        assert_eq!(other, StatusCode::UNAUTHORIZED, "{mode}: the second client has its own");
        spend(&app, mode, &[], "proxy").await;
        let proxy = status_of(&app, mode, &[], "proxy9@example.com").await;
        assert_eq!(proxy, StatusCode::TOO_MANY_REQUESTS, "{mode}: the proxy is one client");
        let third = status_of(&app, mode, &[(mode, second)], "third@example.com").await;
        assert_eq!(third, StatusCode::UNAUTHORIZED, "{mode}: the second client's budget is apart");
    }
}

/// With no trusted proxy, every header is the client's own words: the peer is the client.
#[tokio::test]
async fn an_untrusted_peers_headers_are_ignored() {
    for mode in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let app = spawn_with(&[
            ("PORTCULLIS_TRUSTED_PROXIES", ""),
            ("PORTCULLIS_CLIENT_IP_HEADER", mode),
            ("PORTCULLIS_RATE_LIMIT_IP", "2/min"),
        ])
        .await;
        let value = if mode == "forwarded" { "for=198.51.100.1" } else { "198.51.100.1" };
        assert_eq!(session_ip(&app, mode, &[(mode, value)], "a@example.com").await, "127.0.0.1");
        // Registration and login spent the budget; another claimed address does not help.
        let value = if mode == "forwarded" { "for=198.51.100.2" } else { "198.51.100.2" };
        let refused = status_of(&app, mode, &[(mode, value)], "b@example.com").await;
        assert_eq!(refused, StatusCode::TOO_MANY_REQUESTS, "{mode}");
    }
}
