//! Who is asking: the holder of a valid access token.

use crate::domain::{Role, SessionId, UserId};

pub use crate::domain::RequestContext;

/// The holder of a valid access token whose session is still live.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<Role>,
}
