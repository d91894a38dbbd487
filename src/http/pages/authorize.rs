//! `/oauth2/authorize`, GET and POST (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1): the
//! browser arrives from a client and leaves for the client, or for the login or consent page.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Browsing;
use super::cookies::Cookies;
use super::{PageErrors, Pages, see_other};
use crate::auth::{Authorization, BrowserSessions, ClientAnswer, Next, ResponseMode};
use crate::domain::RequestContext;
use crate::http::extract::Context;

pub(super) use crate::http::extract::unique_pairs as parameters;

/// GET /oauth2/authorize: the request in the query.
#[utoipa::path(
    get, path = "/oauth2/authorize", tag = "oauth",
    summary = "Authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2)",
    description = "A browser's request: answered with a redirect to the client's redirect URI \
        (`code`, `state`, `iss`; or `error`), to the login or consent page, or with a `form_post` \
        page. An unknown client or an unregistered redirect URI answers 400 with an HTML page \
        and never redirects.",
    responses(
        (status = 303, description = "To the client, or to the login or consent page"),
        (status = 200, description = "The form_post answer", content_type = "text/html"),
        PageErrors,
    ),
)]
pub async fn authorize_get(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default().as_bytes();
    authorize(&authorization, &browsers, &pages, (&context, &headers), query).await
}

/// POST /oauth2/authorize: the request in a form body.
#[utoipa::path(
    post, path = "/oauth2/authorize", tag = "oauth",
    summary = "Authorization endpoint, with the parameters in a form",
    description = "As GET, with the parameters in an `application/x-www-form-urlencoded` body.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the client, or to the login or consent page"),
        (status = 200, description = "The form_post answer", content_type = "text/html"),
        PageErrors,
    ),
)]
pub async fn authorize_post(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(&authorization, &browsers, &pages, (&context, &headers), &body).await
}

async fn authorize(
    authorization: &Authorization,
    browsers: &BrowserSessions,
    pages: &Pages,
    (context, headers): (&RequestContext, &HeaderMap),
    raw: &[u8],
) -> Response {
    // Every request may store an interaction: the address's budget bounds them.
    if let Err(error) = authorization.admit(context).await {
        return pages.failure(error).into_response();
    }
    let params = match parameters(raw) {
        Ok(params) => params,
        Err(name) => {
            let message = format!("The request is malformed: {name} is sent more than once.");
            return pages.error(StatusCode::BAD_REQUEST, &message).into_response();
        }
    };
    let get = |name: &str| {
        params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    };
    let cookies = Cookies::read(headers);
    let (browser, set_browser) = cookies.browser_or_new();
    let set: Vec<HeaderValue> = set_browser.into_iter().collect();
    let answer = async {
        let who = browsers.current(cookies.session()).await?;
        authorization.begin(get, who, &browser).await
    };
    match answer.await {
        Ok(next) => respond(pages, next, set),
        Err(error) => pages.failure(error).into_response(),
    }
}

/// Where the browser goes next, as an answer that also sets `cookies`.
pub fn respond(pages: &Pages, next: Next, cookies: Vec<HeaderValue>) -> Response {
    match next {
        Next::ErrorPage(message) => {
            pages.error(StatusCode::BAD_REQUEST, &message).cookies(cookies).into_response()
        }
        Next::Page(location) => see_other(&location, cookies),
        Next::Client(answer) => to_client(pages, &answer, cookies),
    }
}

/// The answer for the client: a redirect with the parameters in the query, or the `form_post`
/// page (OAuth 2.0 Form Post Response Mode), whose form posts them to the redirect URI.
fn to_client(pages: &Pages, answer: &ClientAnswer, cookies: Vec<HeaderValue>) -> Response {
    match answer.mode {
        ResponseMode::Query => see_other(&answer.location(), cookies),
        ResponseMode::FormPost => {
            let values = minijinja::context! {
                redirect_uri => &answer.redirect_uri,
                params => answer.params.iter().map(|(n, v)| (*n, v.as_str())).collect::<Vec<_>>(),
            };
            pages
                .page(StatusCode::OK, "form_post.html", values)
                .form_action(&answer.redirect_uri)
                .cookies(cookies)
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parameters;

    #[test]
    fn a_parameter_is_taken_once() {
        assert_eq!(parameters(b"a=1&b=%20").unwrap().len(), 2);
        assert_eq!(parameters(b"a=1&a=2").unwrap_err(), "a");
    }
}
