//! The server-rendered pages: the OAuth flow's login, second-factor and consent steps, its
//! error page and its `form_post` answer, and their static assets.
//!
//! Templates are MiniJinja, HTML-escaped by default; the built-in ones are compiled in. Every
//! page carries the strict CSP (no inline script or style, nothing third-party), and a form
//! whose post ends in a redirect to a client adds that client's origin to `form-action`, since
//! browsers apply it to the redirects after a post. Every post must carry the CSRF token the
//! page gave, and must not come from another site (`Sec-Fetch-Site`, `Origin`).

mod assets;
mod authorize;
pub mod cookies;
mod login;
mod logout;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;

use super::oauth::OwnBody;
use crate::auth::{AuthError, Authorization, BrowserSessions};
use crate::error::{ApiError, InternalCause};

pub use assets::asset;

pub use authorize::{
    __path_authorize_get, __path_authorize_post, authorize_get, authorize_post, respond,
};
pub use login::{consent_page, decide_consent, login_page, submit_login};
pub use logout::{
    __path_end_session_get, __path_end_session_post, confirm_logout, end_session_get,
    end_session_post,
};

/// What the page handlers use: the authorization, the browsers' sign-in sessions and the pages.
pub struct Browsing {
    pub authorization: Arc<Authorization>,
    pub browsers: Arc<BrowserSessions>,
    pub pages: Arc<Pages>,
}

impl<S> FromRequestParts<S> for Browsing
where
    S: Send + Sync,
    Arc<Authorization>: FromRef<S>,
    Arc<BrowserSessions>: FromRef<S>,
    Arc<Pages>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            authorization: Arc::from_ref(state),
            browsers: Arc::from_ref(state),
            pages: Arc::from_ref(state),
        })
    }
}

/// The built-in templates, by the names a `TEMPLATES_DIR` file replaces them under.
const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("../../../templates/base.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    ("consent.html", include_str!("../../../templates/consent.html")),
    ("form_post.html", include_str!("../../../templates/form_post.html")),
    ("message.html", include_str!("../../../templates/message.html")),
    ("logout.html", include_str!("../../../templates/logout.html")),
];

/// The templates and what every page shows.
pub struct Pages {
    env: Environment<'static>,
    /// `ISSUER`, without a trailing slash: the base of every address a page names.
    issuer: String,
    /// The issuer's origin, which a post must come from.
    origin: String,
    brand: String,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Pages {
    /// The built-in pages for a service at `issuer`, named `brand`.
    pub fn new(issuer: &str, brand: &str) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        let issuer = issuer.trim_end_matches('/').to_owned();
        Ok(Self {
            env,
            origin: origin_of(&issuer).unwrap_or_default(),
            issuer,
            brand: brand.into(),
        })
    }

    /// Renders `name` with what every page receives and `values`.
    fn render(&self, name: &str, values: minijinja::Value) -> Result<String, minijinja::Error> {
        let common = minijinja::context! {
            lang => "en",
            brand => &self.brand,
            assets => format!("{}/assets", self.issuer),
            stylesheet => assets::STYLESHEET.name(),
            form_post_script => assets::FORM_POST.name(),
        };
        self.env.get_template(name)?.render(minijinja::context! { ..values, ..common })
    }

    /// A page, or the error page if the template fails (a replaced template can).
    pub fn page(&self, status: StatusCode, name: &str, values: minijinja::Value) -> Page {
        match self.render(name, values) {
            Ok(html) => Page::new(status, html),
            Err(error) => {
                tracing::error!(template = name, error = %error, "a page failed to render");
                self.error(StatusCode::INTERNAL_SERVER_ERROR, "The page could not be shown.")
            }
        }
    }

    /// The error page.
    pub fn error(&self, status: StatusCode, message: &str) -> Page {
        let values = minijinja::context! { message => message };
        match self.render("error.html", values) {
            Ok(html) => Page::new(status, html),
            Err(_) => Page::new(status, String::from("Something went wrong.")),
        }
    }

    /// The page of a failure of the service: its status, and its cause for the log only.
    pub fn failure(&self, error: AuthError) -> Page {
        let api = ApiError::from(error).into_response();
        let status = api.status();
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "The service is unavailable. Try again in a moment."
        } else {
            "Something went wrong on our side. Try again."
        };
        let mut page = self.error(status, message);
        page.cause = api.extensions().get::<InternalCause>().cloned();
        page.retry_after = api.headers().get(header::RETRY_AFTER).cloned();
        page
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The origin posts must come from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The error pages of an endpoint that browsers visit, as the OpenAPI document lists them.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its OpenAPI description is used
pub enum PageErrors {
    /// The request cannot be answered; never a redirect to an address that is not the client's.
    #[response(status = 400, description = "The error page", content_type = "text/html")]
    BadRequest(String),
    #[response(
        status = 429, description = "The error page: over the address's budget",
        content_type = "text/html",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
    )]
    RateLimited(String),
    #[response(
        status = 500,
        description = "The error page: a failure of the service",
        content_type = "text/html"
    )]
    Internal(String),
    #[response(
        status = 503, description = "The error page: a backend is down",
        content_type = "text/html",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
    )]
    Unavailable(String),
}

/// An HTML answer, with the headers every page carries.
pub struct Page {
    status: StatusCode,
    html: String,
    /// An origin the page's forms may end at, besides ours.
    form_action: Option<String>,
    cookies: Vec<HeaderValue>,
    retry_after: Option<HeaderValue>,
    cause: Option<InternalCause>,
}

impl Page {
    fn new(status: StatusCode, html: String) -> Self {
        Self {
            status,
            html,
            form_action: None,
            cookies: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    /// Lets the page's forms end at `uri`'s origin.
    pub fn form_action(mut self, uri: &str) -> Self {
        self.form_action = csp_source(uri);
        self
    }

    pub fn cookies(mut self, cookies: Vec<HeaderValue>) -> Self {
        self.cookies.extend(cookies);
        self
    }

    pub fn retry_after(mut self, value: Option<HeaderValue>) -> Self {
        self.retry_after = value;
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
            self.form_action.map(|origin| format!(" {origin}")).unwrap_or_default()
        );
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        if let Ok(csp) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for cookie in self.cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
        if let Some(retry) = self.retry_after {
            headers.insert(header::RETRY_AFTER, retry);
        }
        response.extensions_mut().insert(OwnBody);
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// A 303 to `location`, setting `cookies`.
pub fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

/// The CSP source that allows `uri`: its origin, or its scheme for a private-use one.
fn csp_source(uri: &str) -> Option<String> {
    let parsed = url::Url::parse(uri).ok()?;
    match parsed.scheme() {
        "http" | "https" => Some(parsed.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_parses_and_escapes() {
        let pages = Pages::new("http://localhost:8080/", "portcullis").unwrap();
        assert_eq!(pages.issuer(), "http://localhost:8080");
        assert_eq!(pages.origin, "http://localhost:8080");
        let html = pages.render("error.html", minijinja::context! { message => "<b>&" }).unwrap();
        assert!(html.contains("&lt;b&gt;&amp;"), "{html}");
        assert!(!html.contains("<b>&"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("style="), "{html}");
    }

    #[test]
    fn a_form_may_end_at_the_clients_origin_only() {
        assert_eq!(csp_source("https://app.example/cb?x=1").unwrap(), "https://app.example");
        assert_eq!(csp_source("http://127.0.0.1:9000/cb").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(csp_source("com.example.app:/callback").unwrap(), "com.example.app:");
        assert!(csp_source("not a url").is_none());
    }
}
