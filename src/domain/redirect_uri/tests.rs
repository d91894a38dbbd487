//! Registration rules and exact matching, with the tricks that broke other providers.

use super::{check_redirect_uri, redirect_uri_matches};

#[test]
fn the_usual_redirect_uris_register() {
    for uri in [
        "https://app.example.com/callback",
        "https://app.example.com",
        "https://app.example.com:8443/cb?tenant=a",
        "http://localhost:3000/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
    ] {
        assert_eq!(check_redirect_uri(uri, false), Ok(()), "{uri}");
        assert_eq!(check_redirect_uri(uri, true), Ok(()), "{uri}");
    }
}

#[test]
fn a_private_use_scheme_is_for_public_clients_only() {
    for uri in ["com.example.app:/callback", "com.example.app:/oauth2redirect/example-provider"] {
        assert_eq!(check_redirect_uri(uri, true), Ok(()), "{uri}");
        assert!(check_redirect_uri(uri, false).is_err(), "{uri}");
    }
    for uri in ["myapp:/cb", ".example:/cb", "com..example:/cb"] {
        assert!(check_redirect_uri(uri, true).is_err(), "{uri}");
    }
}

#[test]
fn dangerous_or_loose_redirect_uris_are_refused() {
    for uri in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox",
        "http://app.example.com/cb",
        "https://*.example.com/cb",
        "https://app.example.com/*",
        "https://app.example.com/cb#frag",
        "https://app.example.com/cb#",
        // Keycloak CVE-2026-7504: userinfo that makes a trusted name the user part.
        "https://app.example.com@evil.example/cb",
        "https://user:pass@app.example.com/cb",
        // Keycloak CVE-2026-3872: path segments servers resolve differently.
        "https://app.example.com/cb/..;/admin",
        "https://app.example.com/a/../b",
        "https://app.example.com/a/./b",
        "https://app.example.com/a/%2e%2e/b",
        "https://app.example.com\\@evil.example/cb",
        "https://app.example.com/c b",
        "https://app.example.com/cb\n",
        "/relative/cb",
        "",
    ] {
        assert!(check_redirect_uri(uri, true).is_err(), "{uri:?}");
        assert!(check_redirect_uri(uri, false).is_err(), "{uri:?}");
    }
    assert!(
        check_redirect_uri(&format!("https://a.example/{}", "x".repeat(2_000)), false).is_err()
    );
}

#[test]
fn a_redirect_uri_matches_only_as_the_identical_string() {
    let registered = "https://app.example.com/callback";
    assert!(redirect_uri_matches(registered, registered, false));
    for presented in [
        "https://app.example.com/callback/",
        "https://app.example.com/callback?x=1",
        "https://app.example.com/Callback",
        "https://APP.example.com/callback",
        "https://app.example.com:443/callback",
        "https://app.example.com/callback/..;/evil",
        "https://app.example.com/callback@evil.example",
        "https://app.example.com@evil.example/callback",
        "https://app.example.com.evil.example/callback",
        "http://app.example.com/callback",
    ] {
        assert!(!redirect_uri_matches(registered, presented, false), "{presented}");
        assert!(!redirect_uri_matches(registered, presented, true), "{presented}");
    }
}

#[test]
fn only_a_public_client_s_loopback_ip_uri_may_change_its_port() {
    // Keycloak CVE-2024-8883: loopback leniency must not reach other hosts or clients.
    for (registered, presented) in [
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1:51004/cb"),
        ("http://127.0.0.1:8000/cb", "http://127.0.0.1/cb"),
        ("http://[::1]/cb", "http://[::1]:51004/cb"),
    ] {
        assert!(redirect_uri_matches(registered, presented, true), "{registered} {presented}");
        assert!(!redirect_uri_matches(registered, presented, false), "{registered} {presented}");
    }
    for (registered, presented) in [
        ("http://localhost/cb", "http://localhost:51004/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/other"),
        ("http://127.0.0.1/cb", "http://127.0.0.2:51004/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1.evil.example:51004/cb"),
        ("http://127.0.0.1/cb", "https://127.0.0.1:51004/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb?x=1"),
        ("http://[::1]/cb", "http://127.0.0.1:51004/cb"),
        ("https://app.example.com/cb", "https://app.example.com:8443/cb"),
    ] {
        assert!(!redirect_uri_matches(registered, presented, true), "{registered} {presented}");
    }
}
