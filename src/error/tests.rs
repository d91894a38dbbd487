//! How each outcome maps to a status and a problem body.

use super::*;

#[test]
fn slugs_are_unique_snake_case_and_statuses_are_errors() {
    let mut seen = std::collections::HashSet::new();
    for code in ErrorCode::ALL {
        let slug = code.slug();
        assert!(seen.insert(slug), "{slug} twice");
        assert!(slug.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{slug}");
        let status = code.status();
        assert!(status.is_client_error() || status.is_server_error(), "{slug}");
        assert!(!code.title().is_empty() && !code.default_detail().is_empty(), "{slug}");
    }
}

#[test]
fn a_bare_status_maps_to_a_code_of_that_status() {
    for code in ErrorCode::ALL {
        let status = code.status();
        assert_eq!(ErrorCode::for_status(status).status(), status, "{}", code.slug());
    }
}

#[test]
fn every_503_carries_retry_after() {
    let errors = [
        ApiError::unavailable("down"),
        ApiError::from_status(StatusCode::SERVICE_UNAVAILABLE),
        ApiError::from(AuthError::Unavailable("down".into())),
    ];
    for error in errors {
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers().get(header::RETRY_AFTER);
        assert_eq!(retry_after, Some(&HeaderValue::from(UNAVAILABLE_RETRY_AFTER)));
    }
}

#[test]
fn the_problem_body_is_built_from_the_table() {
    let problem = ApiError::from(AuthError::InvalidCredentials).problem();
    assert_eq!(problem.0["type"], "/errors/invalid_credentials");
    assert_eq!(problem.0["title"], "Invalid credentials");
    assert_eq!(problem.0["status"], 401);
    assert_eq!(problem.0["code"], "invalid_credentials");
}
