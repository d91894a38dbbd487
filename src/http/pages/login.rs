//! The login page (password, then the second factor) and the consent page of an
//! authorization. They call the same sign-in use case as `/v1/auth/login`: the same budgets,
//! lockout, enumeration rules and audit events.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Browsing;
use super::authorize::respond;
use super::cookies::{self, Cookies, csrf_token, post_allowed};
use super::{Page, Pages};
use crate::auth::{
    AuthError, Authorization, BrowserSessions, Pending, SecondFactor, SignIn, SignedIn, TokenPair,
};
use crate::domain::RequestContext;
use crate::error::ApiError;
use crate::http::extract::Context;

/// How long the device cookie lasts: as long as a device stays known.
const DEVICE_COOKIE_SECS: u64 = 365 * 86_400;

/// The fields of a posted form; a form that repeats one has none (its CSRF token is then
/// missing, and it is refused).
fn form(body: &[u8]) -> HashMap<String, String> {
    crate::http::extract::unique_pairs(body)
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// What the login and consent pages share: the pages, the authorization, the browsers.
struct Flow<'a> {
    pages: &'a Pages,
    authorization: &'a Authorization,
}

impl Flow<'_> {
    /// The waiting authorization `id` of this browser, or the page that says it is gone.
    async fn pending(&self, id: Option<&str>, cookies: &Cookies) -> Result<Pending, Page> {
        let gone = || {
            let message = "This sign-in has expired or was already completed. Return to the \
                           application and sign in again.";
            self.pages.error(StatusCode::BAD_REQUEST, message)
        };
        let (Some(id), Some(browser)) = (id, cookies.browser()) else { return Err(gone()) };
        match self.authorization.pending(id, browser).await {
            Ok(Some(pending)) => Ok(pending),
            Ok(None) => Err(gone()),
            Err(error) => Err(self.pages.failure(error)),
        }
    }
}

/// The login form (or its second step) for `pending`, with a message and the status to answer.
struct LoginForm<'a> {
    id: &'a str,
    pending: &'a Pending,
    browser: &'a str,
    email: &'a str,
    mfa_token: Option<&'a str>,
    error: Option<&'a str>,
}

impl LoginForm<'_> {
    fn render(&self, pages: &Pages, status: StatusCode) -> Page {
        let values = minijinja::context! {
            step => if self.mfa_token.is_some() { "second_factor" } else { "password" },
            action => format!("{}/login", pages.issuer()),
            csrf => csrf_token(self.browser),
            interaction => self.id,
            client_name => &self.pending.client_name,
            email => self.email,
            mfa_token => self.mfa_token.unwrap_or_default(),
            error => self.error.unwrap_or_default(),
        };
        pages.page(status, "login.html", values).form_action(&self.pending.request.redirect_uri)
    }
}

/// GET /login?interaction=: the login form of an authorization.
pub async fn login_page(
    Browsing { authorization, pages, .. }: Browsing,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let cookies = Cookies::read(&headers);
    let flow = Flow { pages: &pages, authorization: &authorization };
    let id = query.get("interaction").map(String::as_str);
    let pending = match flow.pending(id, &cookies).await {
        Ok(pending) => pending,
        Err(page) => return page.into_response(),
    };
    let (Some(id), Some(browser)) = (id, cookies.browser()) else {
        return pages.error(StatusCode::BAD_REQUEST, "The sign-in has expired.").into_response();
    };
    let email = pending.request.login_hint.clone().unwrap_or_default();
    let form =
        LoginForm { id, pending: &pending, browser, email: &email, mfa_token: None, error: None };
    form.render(&pages, StatusCode::OK).into_response()
}

/// POST /login: the password, or the second factor after it.
pub async fn submit_login(
    Browsing { authorization, browsers, pages }: Browsing,
    State(sign_in): State<Arc<SignIn>>,
    Context(mut context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let cookies = Cookies::read(&headers);
    if !post_allowed(&headers, &cookies, field(&fields, "csrf"), pages.origin()) {
        return forbidden(&pages);
    }
    context.from_page = true;
    let flow = Flow { pages: &pages, authorization: &authorization };
    let id = field(&fields, "interaction");
    let pending = match flow.pending(id, &cookies).await {
        Ok(pending) => pending,
        Err(page) => return page.into_response(),
    };
    let (Some(id), Some(browser)) = (id, cookies.browser()) else { return forbidden(&pages) };
    let email = field(&fields, "email").unwrap_or_default();
    let mfa_token = field(&fields, "mfa_token");
    let attempt = match mfa_token {
        Some(token) => {
            let code = field(&fields, "code").unwrap_or_default();
            sign_in.login_second_factor(&context, token, SecondFactor::either(code)).await
        }
        None => {
            let password = field(&fields, "password").unwrap_or_default();
            sign_in.login(&context, email, password, cookies.device()).await
        }
    };
    let form =
        |mfa_token, error| LoginForm { id, pending: &pending, browser, email, mfa_token, error };
    match attempt {
        Ok(pair) => {
            let flow = Flow { pages: &pages, authorization: &authorization };
            signed_in(&flow, &browsers, &context, &cookies, (id, browser), pair).await
        }
        Err(AuthError::MfaRequired { mfa_token }) => {
            form(Some(mfa_token.0.as_str()), None).render(&pages, StatusCode::OK).into_response()
        }
        Err(error) => match refusal_message(&error, mfa_token.is_some()) {
            Some(message) => {
                let api = ApiError::from(error).into_response();
                let retry = api.headers().get(header::RETRY_AFTER).cloned();
                let page = form(mfa_token, Some(message)).render(&pages, api.status());
                page.retry_after(retry).into_response()
            }
            None => pages.failure(error).into_response(),
        },
    }
}

/// The browser is signed in: its session cookie (a new value: one planted before signs in no
/// one), its device cookie, and the authorization's next step.
async fn signed_in(
    flow: &Flow<'_>,
    browsers: &BrowserSessions,
    context: &RequestContext,
    cookies: &Cookies,
    (id, browser): (&str, &str),
    pair: TokenPair,
) -> Response {
    let (pages, authorization) = (flow.pages, flow.authorization);
    let steps = async {
        if let Some(old) = cookies.session() {
            browsers.end(context, old).await?;
        }
        let secret = browsers.start(pair.session).await?;
        let who = browsers.current(Some(&secret)).await?.ok_or(AuthError::Unauthorized)?;
        let next = authorization.signed_in(id, browser, who).await?;
        Ok::<_, AuthError>((secret, next))
    };
    match steps.await {
        Ok((secret, next)) => {
            let mut set: Vec<HeaderValue> =
                cookies::set(cookies::SESSION, &secret, None).into_iter().collect();
            if let Some(device) = &pair.device_token {
                set.extend(cookies::set(cookies::DEVICE, device, Some(DEVICE_COOKIE_SECS)));
            }
            match next {
                Some(next) => respond(pages, next, set),
                None => {
                    let message = "This sign-in has expired or was already completed. Return to \
                                   the application and sign in again.";
                    pages.error(StatusCode::BAD_REQUEST, message).cookies(set).into_response()
                }
            }
        }
        Err(error) => pages.failure(error).into_response(),
    }
}

/// The message the form shows for a refused login (`None`: a failure of the service); the
/// status and `Retry-After` are the JSON API's.
fn refusal_message(error: &AuthError, second_step: bool) -> Option<&'static str> {
    match error {
        AuthError::InvalidCredentials => Some("The email or the password is wrong."),
        AuthError::InvalidMfaCode => Some("The code is wrong. Try again."),
        AuthError::InvalidToken if second_step => {
            Some("This step has expired. Start again with your password.")
        }
        AuthError::Locked { .. } => {
            Some("Too many failed attempts. Sign-in is paused for this account; try again later.")
        }
        AuthError::RateLimited { .. } => Some("Too many attempts. Wait a moment and try again."),
        AuthError::AccountDisabled => Some("This account is disabled."),
        AuthError::EmailNotVerified => {
            Some("Confirm your email address first: follow the link we sent you.")
        }
        _ => None,
    }
}

fn forbidden(pages: &Pages) -> Response {
    let message = "The form was not accepted: it expired, or it was sent from another site. \
                   Reload the page and try again.";
    pages.error(StatusCode::FORBIDDEN, message).into_response()
}

/// The scopes in words.
fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account's identifier)".to_owned(),
        "profile" => "See your name".to_owned(),
        "email" => "See your email address and whether it is confirmed".to_owned(),
        "offline_access" => "Stay connected when you are not signed in".to_owned(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// The browser's sign-in, if it is the one the authorization `pending` waits on.
async fn signed_in_for(
    browsers: &BrowserSessions,
    cookies: &Cookies,
    pending: &Pending,
) -> Result<Option<SignedIn>, AuthError> {
    let who = browsers.current(cookies.session()).await?;
    Ok(who.filter(|w| pending.signed_in == Some((w.user, w.session))))
}

/// GET /consent?interaction=: the client's name and the scopes it asks for.
pub async fn consent_page(
    Browsing { authorization, browsers, pages }: Browsing,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let cookies = Cookies::read(&headers);
    let flow = Flow { pages: &pages, authorization: &authorization };
    let id = query.get("interaction").map(String::as_str);
    let pending = match flow.pending(id, &cookies).await {
        Ok(pending) => pending,
        Err(page) => return page.into_response(),
    };
    match signed_in_for(&browsers, &cookies, &pending).await {
        Ok(Some(_)) => {}
        Ok(None) => return forbidden(&pages),
        Err(error) => return pages.failure(error).into_response(),
    }
    let values = minijinja::context! {
        action => format!("{}/consent", pages.issuer()),
        csrf => cookies.browser().map(csrf_token).unwrap_or_default(),
        interaction => id.unwrap_or_default(),
        client_name => &pending.client_name,
        scopes => pending.request.scopes.iter().map(|s| describe(s)).collect::<Vec<_>>(),
    };
    pages
        .page(StatusCode::OK, "consent.html", values)
        .form_action(&pending.request.redirect_uri)
        .into_response()
}

/// POST /consent: `decision=allow` or `deny`.
pub async fn decide_consent(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let cookies = Cookies::read(&headers);
    if !post_allowed(&headers, &cookies, field(&fields, "csrf"), pages.origin()) {
        return forbidden(&pages);
    }
    let allow = match field(&fields, "decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return pages.error(StatusCode::BAD_REQUEST, "Choose Allow or Deny.").into_response(),
    };
    let flow = Flow { pages: &pages, authorization: &authorization };
    let id = field(&fields, "interaction");
    let pending = match flow.pending(id, &cookies).await {
        Ok(pending) => pending,
        Err(page) => return page.into_response(),
    };
    let (Some(id), Some(browser)) = (id, cookies.browser()) else { return forbidden(&pages) };
    let who = match signed_in_for(&browsers, &cookies, &pending).await {
        Ok(Some(who)) => who,
        Ok(None) => return forbidden(&pages),
        Err(error) => return pages.failure(error).into_response(),
    };
    match authorization.consented(&context, id, browser, who, allow).await {
        Ok(Some(next)) => respond(&pages, next, Vec::new()),
        Ok(None) => forbidden(&pages),
        Err(error) => pages.failure(error).into_response(),
    }
}
