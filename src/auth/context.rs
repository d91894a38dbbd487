//! Who is asking: the facts about a request that the use cases record and, later, rate-limit on.

use std::net::IpAddr;

use crate::domain::{Role, SessionId, UserId};

/// Facts about the HTTP request behind a use case, taken by `http/` and recorded in audit events.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// The holder of a valid access token whose session is still live.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<Role>,
}
