//! Rows as the SQL store reads them, decoded by `FromRow` (a bad column is an error, never a
//! panic), and their conversion into the records of the store traits.

use sqlx::FromRow;

use crate::domain::audit::chain::Link;
use crate::domain::audit::{AuditEvent, EventType, Outcome};
use crate::domain::{Amr, Email, Role, SessionId, SignatureAlg, UserId};
use crate::store::codec::{from_millis, parse_id};
use crate::store::{
    ChallengeRecord, Factors, KindColumns, PasskeyRecord, SessionKind, SessionRecord,
    SigningKeyRecord, StoreError, TokenHash, TotpRecord, UserRecord,
};

/// The columns of a `UserRow`, as a literal for `concat!`, so that no SQL is formatted per call.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, roles, created_at, email_verified, disabled, last_login_at,
         credential_epoch, name,
         (SELECT COUNT(*) FROM totp_factors t
          WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS totp,
         (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = users.id) AS passkeys"
    };
}

#[derive(FromRow)]
pub struct UserRow {
    id: String,
    email: String,
    password_hash: String,
    roles: String,
    created_at: i64,
    email_verified: i64,
    disabled: i64,
    last_login_at: Option<i64>,
    credential_epoch: i64,
    name: Option<String>,
    totp: i64,
    passkeys: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(UserRecord {
            id: parse_id(&row.id, UserId::parse)?,
            email: Email::from_trusted(row.email),
            password_hash: row.password_hash,
            roles: row.roles.split(',').filter_map(Role::parse).collect(),
            created_at: from_millis(row.created_at)?,
            email_verified: row.email_verified != 0,
            factors: Factors { totp: row.totp > 0, passkeys: row.passkeys > 0 },
            disabled: row.disabled != 0,
            last_login_at: row.last_login_at.map(from_millis).transpose()?,
            credential_epoch: row.credential_epoch,
            name: row.name,
        })
    }
}

/// Roles as stored: names joined by commas.
pub fn roles_column(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// The columns of a `SessionRow`, from `sessions s`.
macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.created_at, s.last_used_at, s.ip, s.user_agent, s.device_hash, s.amr, \
         s.kind, s.client_id, s.scope, s.parent_id, s.auth_time"
    };
}

#[derive(FromRow)]
pub struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    ip: Option<String>,
    user_agent: Option<String>,
    device_hash: Option<Vec<u8>>,
    amr: String,
    kind: String,
    client_id: Option<String>,
    scope: Option<String>,
    parent_id: Option<String>,
    auth_time: Option<i64>,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(SessionRecord {
            id: parse_id(&row.id, SessionId::parse)?,
            user_id: parse_id(&row.user_id, UserId::parse)?,
            created_at: from_millis(row.created_at)?,
            last_used_at: from_millis(row.last_used_at)?,
            ip: row.ip,
            user_agent: row.user_agent,
            device: row.device_hash.map(|h| token_hash(&h)).transpose()?,
            amr: Amr::from_column(&row.amr),
            kind: SessionKind::from_columns(KindColumns {
                kind: row.kind,
                client_id: row.client_id,
                scope: row.scope,
                parent_id: row.parent_id,
                auth_time: row.auth_time,
            }),
        })
    }
}

/// A stored token hash, which is 32 bytes.
pub fn token_hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash)
        .map_err(|_| StoreError::backend("decode", "a token hash is not 32 bytes"))
}

/// Why a refresh token could not be claimed: its state and its session's, read inside the
/// rotation's transaction.
#[derive(FromRow)]
pub struct RotationRow {
    pub session_id: String,
    pub user_id: String,
    pub amr: String,
    pub login_at: i64,
    pub rotated_at: Option<i64>,
    pub successor: Option<Vec<u8>>,
    pub revoked_at: Option<i64>,
    pub session_expires_at: i64,
    /// 1 when the recorded successor is itself still unrotated.
    pub successor_current: Option<i64>,
}

#[derive(FromRow)]
pub struct SigningKeyRow {
    kid: String,
    alg: String,
    private_key: Vec<u8>,
    created_at: i64,
    signs_at: i64,
}

impl TryFrom<SigningKeyRow> for SigningKeyRecord {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> Result<Self, StoreError> {
        let alg = SignatureAlg::parse(&row.alg)
            .ok_or_else(|| StoreError::backend("read signing key", "an unknown algorithm"))?;
        Ok(SigningKeyRecord {
            kid: row.kid,
            alg,
            private_key: row.private_key,
            created_at: from_millis(row.created_at)?,
            signs_at: from_millis(row.signs_at)?,
        })
    }
}

#[derive(FromRow)]
pub struct LockoutRow {
    pub locked_until: Option<i64>,
    pub last_gate: String,
}

/// The columns of an `AuditRow`.
macro_rules! audit_columns {
    () => {
        "id, type, at, user_id, email, ip, user_agent, request_id, outcome, detail, chain_seq, \
         prev_hash, hash, actor_id, client_id"
    };
}

#[derive(FromRow)]
pub struct AuditRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    at: i64,
    user_id: Option<String>,
    email: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    outcome: String,
    detail: Option<String>,
    chain_seq: Option<i64>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
    actor_id: Option<String>,
    client_id: Option<String>,
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::backend("read audit event", format!("malformed {what}"))
}

impl TryFrom<AuditRow> for Link {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let event = AuditEvent {
            id: uuid::Uuid::parse_str(&row.id).map_err(|_| corrupt("id"))?,
            kind: EventType::parse(&row.kind).ok_or_else(|| corrupt("type"))?,
            at: from_millis(row.at)?,
            user_id: row
                .user_id
                .map(|u| UserId::parse(&u).ok_or_else(|| corrupt("user id")))
                .transpose()?,
            email: row.email,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            outcome: Outcome::parse(&row.outcome).ok_or_else(|| corrupt("outcome"))?,
            detail: row.detail,
            actor_id: row
                .actor_id
                .map(|a| UserId::parse(&a).ok_or_else(|| corrupt("actor id")))
                .transpose()?,
            client_id: row.client_id,
        };
        Ok(Link { seq: row.chain_seq, prev_hash: row.prev_hash, hash: row.hash, event })
    }
}

#[derive(FromRow)]
pub struct TotpRow {
    secret: Vec<u8>,
    confirmed_at: Option<i64>,
    last_step: i64,
}

impl From<TotpRow> for TotpRecord {
    fn from(row: TotpRow) -> Self {
        TotpRecord {
            secret: row.secret,
            confirmed: row.confirmed_at.is_some(),
            last_step: row.last_step,
        }
    }
}

#[derive(FromRow)]
pub struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: Vec<u8>,
    name: String,
    credential: String,
    sign_count: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

/// The columns of a `PasskeyRow`, in the order it reads them.
pub const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at";

impl TryFrom<PasskeyRow> for PasskeyRecord {
    type Error = StoreError;

    fn try_from(row: PasskeyRow) -> Result<Self, StoreError> {
        Ok(PasskeyRecord {
            id: row.id,
            user: parse_id(&row.user_id, UserId::parse)?,
            credential_id: row.credential_id,
            name: row.name,
            credential: row.credential,
            sign_count: u32::try_from(row.sign_count)
                .map_err(|e| StoreError::backend("read passkey", e))?,
            created_at: from_millis(row.created_at)?,
            last_used_at: row.last_used_at.map(from_millis).transpose()?,
        })
    }
}

#[derive(FromRow)]
pub struct ChallengeRow {
    user_id: Option<String>,
    state: Vec<u8>,
}

impl TryFrom<ChallengeRow> for ChallengeRecord {
    type Error = StoreError;

    fn try_from(row: ChallengeRow) -> Result<Self, StoreError> {
        let user = row.user_id.map(|id| parse_id(&id, UserId::parse)).transpose()?;
        Ok(ChallengeRecord { user, state: row.state })
    }
}
