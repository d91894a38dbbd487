//! The plain records that cross the store traits.

use std::fmt;

use super::Timestamp;
use crate::domain::{Email, Role, SessionId, UserId};

/// SHA-256 of an opaque token. Only hashes are stored, so a leaked database cannot be replayed.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
}

#[derive(Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub refresh_token: TokenHash,
    pub created_at: Timestamp,
    /// When the first refresh token expires; each rotation moves it, never past `ends_at`.
    pub expires_at: Timestamp,
    /// The session's absolute end (ASVS 7.3.2): its login plus `SESSION_LIFETIME`.
    pub ends_at: Timestamp,
    /// The device token the session logged in with, by its hash.
    pub device: Option<TokenHash>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    /// The device token the session logged in with, by its hash.
    pub device: Option<TokenHash>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Where a page of a user's sessions ends: the last session's creation time and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCursor {
    pub created_at: Timestamp,
    pub id: SessionId,
}

/// What became of a presented refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Exchanged: the successor is now the session's current token.
    Rotated { session: SessionId, user: UserId },
    /// Rotated moments ago, within the reuse grace: the caller hands out the same successor.
    Grace { session: SessionId, user: UserId },
    /// Rotated before: the session is now revoked.
    Reused { session: SessionId, user: UserId },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// One signing key as stored. `private_key` is the 32-byte Ed25519 seed.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub created_at: Timestamp,
}
