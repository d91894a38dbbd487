//! The checks of an authorization request, each refusal with its error and where it goes.

use std::collections::HashMap;

use super::*;
use crate::auth::oauth::registration::NewClient;

fn client(public: bool) -> ClientSettings {
    let new: NewClient = serde_json::from_value(serde_json::json!({
        "name": "App",
        "type": if public { "public" } else { "confidential" },
        "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1/cb"],
    }))
    .unwrap();
    new.into_settings().unwrap()
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn params(extra: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    let mut all: HashMap<&str, &str> = [
        ("response_type", "code"),
        ("redirect_uri", "https://app.example.com/cb"),
        ("scope", "openid email"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .collect();
    for (name, value) in extra {
        if value.is_empty() {
            all.remove(name);
        } else {
            all.insert(name, value);
        }
    }
    all
}

fn check(
    public: bool,
    extra: &[(&'static str, &'static str)],
) -> Result<AuthorizationRequest, RequestError> {
    let all = params(extra);
    AuthorizationRequest::check("app", &client(public), |name| all.get(name).copied())
}

fn refused_with(
    result: Result<AuthorizationRequest, RequestError>,
) -> (&'static str, Option<String>) {
    match result {
        Err(RequestError::Refused { error: OAuthError::Refused { error, .. }, state, .. }) => {
            (error, state)
        }
        other => panic!("not a refusal to the client: {other:?}"),
    }
}

#[test]
fn a_well_formed_request_is_bound_to_what_it_asked() {
    let request =
        check(false, &[("nonce", "n-0S6"), ("prompt", "login consent"), ("max_age", "0")]).unwrap();
    assert_eq!(request.scopes, ["openid", "email"]);
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(request.nonce.as_deref(), Some("n-0S6"));
    assert_eq!(request.prompt, [Prompt::Login, Prompt::Consent]);
    assert_eq!(request.max_age, Some(0));
    assert_eq!(request.response_mode, ResponseMode::Query);
    let form_post = check(false, &[("response_mode", "form_post")]).unwrap();
    assert_eq!(form_post.response_mode, ResponseMode::FormPost);
    // RFC 8252 §7.3: a public client's loopback IP redirect URI may name any port.
    assert!(check(true, &[("redirect_uri", "http://127.0.0.1:51004/cb")]).is_ok());
    assert!(matches!(
        check(false, &[("redirect_uri", "http://127.0.0.1:51004/cb")]),
        Err(RequestError::Untrusted(_))
    ));
}

#[test]
fn a_redirect_uri_that_is_missing_or_not_the_clients_is_never_redirected_to() {
    for uri in [
        "",
        "https://app.example.com/cb/",
        "https://app.example.com/cb?x=1",
        "https://evil.example/cb",
    ] {
        assert!(
            matches!(check(false, &[("redirect_uri", uri)]), Err(RequestError::Untrusted(_))),
            "{uri}"
        );
    }
}

#[test]
fn every_other_refusal_goes_back_to_the_client_with_its_state() {
    for (extra, expected) in [
        (&[("response_type", "token")][..], "unsupported_response_type"),
        (&[("response_type", "")][..], "invalid_request"),
        (&[("scope", "openid admin")][..], "invalid_scope"),
        (&[("scope", "")][..], "invalid_scope"),
        (&[("code_challenge_method", "plain")][..], "invalid_request"),
        (&[("code_challenge_method", "")][..], "invalid_request"),
        (&[("code_challenge", "short")][..], "invalid_request"),
        (&[("code_challenge", ""), ("code_challenge_method", "")][..], "invalid_request"),
        (&[("prompt", "none login")][..], "invalid_request"),
        (&[("prompt", "create")][..], "invalid_request"),
        (&[("max_age", "-1")][..], "invalid_request"),
        (&[("response_mode", "fragment")][..], "invalid_request"),
        (&[("request", "eyJhbGciOiJub25lIn0.e30.")][..], "request_not_supported"),
    ] {
        let (error, state) = refused_with(check(false, extra));
        assert_eq!(error, expected, "{extra:?}");
        assert_eq!(state.as_deref(), Some("xyz"), "{extra:?}");
    }
}
