//! Who is asking: the holder of a valid access token.

use crate::domain::{Amr, Role, SessionId, Timestamp, UserId};
use crate::store::TokenHash;

pub use crate::domain::RequestContext;

/// The holder of a valid access token whose session is still live.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<Role>,
    /// The device token the session logged in with, by its hash: its lock, not the email's,
    /// holds the session's credential checks.
    pub device: Option<TokenHash>,
    /// What the session's login proved, and when it happened: a recent enough login stands in
    /// for the password (and code) before a change of the factors.
    pub amr: Amr,
    pub signed_in_at: Timestamp,
}
