//! The plain records that cross the store traits.

use std::fmt;

use super::Timestamp;
use crate::domain::{Amr, Email, Role, SessionId, SignatureAlg, UserId};

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
    /// Whether a link sent to `email` has come back.
    pub email_verified: bool,
    /// The second factors in use.
    pub factors: Factors,
    /// Refused at login, by an admin.
    pub disabled: bool,
    pub last_login_at: Option<Timestamp>,
    /// Moves on with every change of the credentials (see `UserStore::bump_credential_epoch`).
    pub credential_epoch: i64,
    /// The name the user gave, if any.
    pub name: Option<String>,
}

/// Where a page of accounts ends: the last account's creation time and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: Timestamp,
    pub id: UserId,
}

/// The second factors an account has: a confirmed TOTP, passkeys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: bool,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("email_verified", &self.email_verified)
            .field("factors", &self.factors)
            .field("disabled", &self.disabled)
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
    /// What the login proved; every access token of the session carries it.
    pub amr: Amr,
    pub kind: SessionKind,
}

/// A session's kind as it is stored: its name, and a grant's client, scope and parent session.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KindColumns<K = &'static str> {
    pub kind: K,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// A grant's sign-in time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// How a session was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SessionKind {
    /// A login through the JSON API.
    #[default]
    Api,
    /// A login on the pages: the session a browser's sign-in cookie stands for.
    Browser,
    /// An OAuth client's grant: the tokens a code gave it, for the scopes the user granted,
    /// the browser's session that granted them, and when that session's sign-in was.
    Grant { client_id: String, scope: String, parent: Option<SessionId>, auth_time: Timestamp },
}

impl SessionKind {
    /// The stored columns.
    pub fn columns(&self) -> KindColumns {
        match self {
            Self::Api => KindColumns { kind: "api", ..KindColumns::default() },
            Self::Browser => KindColumns { kind: "browser", ..KindColumns::default() },
            Self::Grant { client_id, scope, parent, auth_time } => KindColumns {
                kind: "grant",
                client_id: Some(client_id.clone()),
                scope: Some(scope.clone()),
                parent_id: parent.map(|p| p.to_string()),
                auth_time: Some(auth_time.timestamp_millis()),
            },
        }
    }

    /// Reads the stored columns; anything unknown is a session of the API (those from before
    /// kinds were kept).
    pub fn from_columns(columns: KindColumns<String>) -> Self {
        match (columns.kind.as_str(), columns.client_id, columns.scope) {
            ("browser", _, _) => Self::Browser,
            ("grant", Some(client_id), Some(scope)) => Self::Grant {
                client_id,
                scope,
                parent: columns.parent_id.as_deref().and_then(SessionId::parse),
                auth_time: columns
                    .auth_time
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .unwrap_or_default(),
            },
            _ => Self::Api,
        }
    }

    /// The client whose grant this is.
    pub fn client(&self) -> Option<&str> {
        match self {
            Self::Grant { client_id, .. } => Some(client_id),
            _ => None,
        }
    }
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
    pub amr: Amr,
    pub kind: SessionKind,
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
    /// Exchanged: the successor is now the session's current token. `amr` is what the
    /// session's login proved and `login_at` when, for the new access token.
    Rotated { session: SessionId, user: UserId, amr: Amr, login_at: Timestamp },
    /// Rotated moments ago, within the reuse grace: the caller hands out the same successor.
    Grace { session: SessionId, user: UserId, amr: Amr, login_at: Timestamp },
    /// Rotated before: the session is now revoked.
    Reused { session: SessionId, user: UserId },
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// One signing key as stored. `private_key` is the 32-byte Ed25519 seed, or the PKCS#8 document
/// of an RSA key.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// What it signs with: EdDSA keys sign access tokens and ID tokens, RS256 keys ID tokens.
    pub alg: SignatureAlg,
    pub private_key: Vec<u8>,
    pub created_at: Timestamp,
    /// When it starts to sign; until then it is only published.
    pub signs_at: Timestamp,
}

/// What a token sent by mail is for. A token answers only where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Confirms that the account's address reaches its owner.
    Verify,
    /// Confirms a new address before the account switches to it.
    ChangeEmail,
    /// Lets the owner set a new password.
    Reset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::ChangeEmail => "change_email",
            Self::Reset => "reset",
        }
    }
}

/// A token to store, by its hash, with the address it was sent to.
#[derive(Debug)]
pub struct NewEmailToken {
    pub hash: TokenHash,
    pub user: UserId,
    pub purpose: TokenPurpose,
    pub address: Email,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The account's credential epoch when the request that sent it was checked: the token
    /// works only while the account is still at that epoch.
    pub epoch: i64,
}

/// A current token: whose it is and the address it was sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailTokenRecord {
    pub user: UserId,
    pub address: Email,
}

/// A message in the outbox: sealed, so its token is not readable in the database.
#[derive(Clone)]
pub struct QueuedMail {
    pub id: String,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub message: Vec<u8>,
}

impl fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How the outbox stands: messages waiting, and when the oldest was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxState {
    pub waiting: u64,
    pub oldest: Option<Timestamp>,
}

/// An account's TOTP factor as stored: its secret sealed, whether the enrolment is confirmed,
/// and the last time step accepted.
#[derive(Clone)]
pub struct TotpRecord {
    pub secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: i64,
}

impl fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpRecord")
            .field("confirmed", &self.confirmed)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// A passkey as stored. `credential` is the verified credential (public key, counter, flags) as
/// JSON; nothing in it is secret.
#[derive(Clone, Debug)]
pub struct PasskeyRecord {
    pub id: String,
    pub user: UserId,
    pub credential_id: Vec<u8>,
    pub name: String,
    pub credential: String,
    pub sign_count: u32,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// What a ceremony in progress is for; a challenge answers only where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The second step of a login whose password was right.
    MfaLogin,
    PasskeyRegistration,
    PasskeyLogin,
}

impl ChallengePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MfaLogin => "mfa_login",
            Self::PasskeyRegistration => "passkey_registration",
            Self::PasskeyLogin => "passkey_login",
        }
    }
}

/// A ceremony in progress: whose it is, if known, and its state (sealed).
#[derive(Clone)]
pub struct ChallengeRecord {
    pub user: Option<UserId>,
    pub state: Vec<u8>,
}

impl fmt::Debug for ChallengeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeRecord").field("user", &self.user).finish_non_exhaustive()
    }
}
