//! Who is asking: the facts about a request that the use cases record and rate-limit on.

use std::net::IpAddr;

/// Facts about the HTTP request behind a use case, taken by `http/` and recorded in audit events.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Whether the request comes from a page (a browser's form) rather than the JSON API: a
    /// login there opens the session of the browser's sign-in cookie.
    pub from_page: bool,
}
