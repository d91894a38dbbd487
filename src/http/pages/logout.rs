//! `/oauth2/logout` (RP-Initiated Logout 1.0) and its confirmation page, `/logout`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Browsing;
use super::authorize::parameters;
use super::cookies::{self, Cookies, csrf_token, post_allowed};
use super::{PageErrors, Pages, see_other};
use crate::auth::{Authorization, BrowserSessions, Logout};
use crate::domain::RequestContext;
use crate::http::extract::Context;

/// The parameters a confirmation carries over to its post.
const KEPT: [&str; 3] = ["client_id", "post_logout_redirect_uri", "state"];

/// GET /oauth2/logout.
#[utoipa::path(
    get, path = "/oauth2/logout", tag = "oauth",
    summary = "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)",
    description = "With a valid `id_token_hint` for the browser's sign-in session, ends it at \
        once; otherwise shows a confirmation page. Then redirects to `post_logout_redirect_uri` \
        (with `state`) when it is registered for the client the hint or `client_id` names, or \
        shows the signed-out page. An unregistered one gets a 400 page, never a redirect.",
    responses(
        (status = 303, description = "Signed out: to the post-logout redirect URI"),
        (status = 200, description = "The confirmation page, or the signed-out page", content_type = "text/html"),
        PageErrors,
    ),
)]
pub async fn end_session_get(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let raw = uri.query().unwrap_or_default().as_bytes();
    let steps = Steps { authorization: &authorization, browsers: &browsers, pages: &pages };
    steps.end_session(&context, &headers, raw).await
}

/// POST /oauth2/logout: as GET, with the parameters in a form.
#[utoipa::path(
    post, path = "/oauth2/logout", tag = "oauth", summary = "RP-initiated logout, by POST",
    request_body(content = Option<String>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: to the post-logout redirect URI"),
        (status = 200, description = "The confirmation page, or the signed-out page", content_type = "text/html"),
        PageErrors,
    ),
)]
pub async fn end_session_post(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let steps = Steps { authorization: &authorization, browsers: &browsers, pages: &pages };
    steps.end_session(&context, &headers, &body).await
}

/// POST /logout: the confirmation page's answer.
pub async fn confirm_logout(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cookies = Cookies::read(&headers);
    let Ok(params) = parameters(&body) else {
        return pages.error(StatusCode::BAD_REQUEST, "The form is malformed.").into_response();
    };
    let get = |name: &str| {
        params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    };
    if !post_allowed(&headers, &cookies, get("csrf"), pages.origin()) {
        let message = "The form was not accepted: it expired, or it was sent from another site.";
        return pages.error(StatusCode::FORBIDDEN, message).into_response();
    }
    let steps = Steps { authorization: &authorization, browsers: &browsers, pages: &pages };
    // The confirmation carries no hint: it was shown because there was none to trust.
    let checked =
        authorization.logout(|name| if name == "id_token_hint" { None } else { get(name) });
    match checked.await {
        Ok(Ok(logout)) => steps.sign_out(&context, &cookies, logout).await,
        Ok(Err(message)) => pages.error(StatusCode::BAD_REQUEST, &message).into_response(),
        Err(error) => pages.failure(error).into_response(),
    }
}

struct Steps<'a> {
    authorization: &'a Authorization,
    browsers: &'a BrowserSessions,
    pages: &'a Pages,
}

impl Steps<'_> {
    async fn end_session(
        &self,
        context: &RequestContext,
        headers: &HeaderMap,
        raw: &[u8],
    ) -> Response {
        let pages = self.pages;
        let params = match parameters(raw) {
            Ok(params) => params,
            Err(name) => {
                let message = format!("The request is malformed: {name} is sent more than once.");
                return pages.error(StatusCode::BAD_REQUEST, &message).into_response();
            }
        };
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let logout = match self.authorization.logout(get).await {
            Ok(Ok(logout)) => logout,
            Ok(Err(message)) => {
                return pages.error(StatusCode::BAD_REQUEST, &message).into_response();
            }
            Err(error) => return pages.failure(error).into_response(),
        };
        let cookies = Cookies::read(headers);
        let who = match self.browsers.current(cookies.session()).await {
            Ok(who) => who,
            Err(error) => return pages.failure(error).into_response(),
        };
        match who {
            Some(who) if logout.hinted != Some(who.user) => {
                let (browser, set) = cookies.browser_or_new();
                let mut kept: Vec<(&str, &str)> =
                    KEPT.iter().filter_map(|name| get(name).map(|v| (*name, v))).collect();
                // The client a hint named, which the confirmation's post carries without the hint.
                if get("client_id").is_none()
                    && let Some(client_id) = &logout.client_id
                {
                    kept.push(("client_id", client_id));
                }
                let values = minijinja::context! {
                    action => format!("{}/logout", pages.issuer()),
                    csrf => csrf_token(&browser),
                    params => kept,
                    client_name => logout.client_name.as_deref().unwrap_or_default(),
                };
                let mut page = pages.page(StatusCode::OK, "logout.html", values);
                if let Some(redirect) = &logout.redirect {
                    page = page.form_action(redirect);
                }
                page.cookies(set.into_iter().collect()).into_response()
            }
            _ => self.sign_out(context, &cookies, logout).await,
        }
    }

    /// Ends the browser's sign-in session, if it has one, and answers where the logout goes.
    async fn sign_out(
        &self,
        context: &RequestContext,
        cookies: &Cookies,
        logout: Logout,
    ) -> Response {
        if let Some(session) = cookies.session()
            && let Err(error) = self.browsers.end(context, session).await
        {
            return self.pages.failure(error).into_response();
        }
        let clear: Vec<HeaderValue> =
            cookies::set(cookies::SESSION, "", Some(0)).into_iter().collect();
        match logout.redirect {
            Some(redirect) => see_other(redirect.as_str(), clear),
            None => {
                let values = minijinja::context! {
                    title => "You are signed out",
                    message => "You can close this window.",
                };
                self.pages
                    .page(StatusCode::OK, "message.html", values)
                    .cookies(clear)
                    .into_response()
            }
        }
    }
}
