//! Pure audit types: the kinds of security event, the event itself, the filter that reads the
//! trail, and the hash chain that makes it tamper-evident. (The `ToSchema` derives only describe
//! the types for the OpenAPI document.)

pub mod chain;

use serde::Serialize;
use uuid::Uuid;

use super::{RequestContext, Timestamp, UserId, escape_controls};

/// Longest attempted email kept in an event (RFC 5321 limits a path to 256 octets).
const MAX_EMAIL_CHARS: usize = 256;

/// Declares `EventType` from one table: each row is a variant and its name in the trail.
macro_rules! event_types {
    ($($variant:ident = $name:literal,)+) => {
        /// The kinds of security event of the contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every kind, in the order of the table.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    Registration = "registration",
    Login = "login",
    LoginFailed = "login_failed",
    Logout = "logout",
    LogoutAll = "logout_all",
    TokenRefresh = "token_refresh",
    TokenReused = "token_reused",
    PasswordChange = "password_change",
    Lockout = "lockout",
    Unlock = "unlock",
    SessionRevoked = "session_revoked",
    RateLimited = "rate_limited",
    EmailVerified = "email_verified",
    PasswordResetRequested = "password_reset_requested",
    PasswordReset = "password_reset",
    EmailChangeRequested = "email_change_requested",
    EmailChanged = "email_changed",
    AccountDeleted = "account_deleted",
    MfaEnabled = "mfa_enabled",
    MfaDisabled = "mfa_disabled",
    MfaFailed = "mfa_failed",
    RecoveryCodeUsed = "recovery_code_used",
    RecoveryCodesRegenerated = "recovery_codes_regenerated",
    PasskeyAdded = "passkey_added",
    PasskeyRemoved = "passkey_removed",
    UserCreated = "user_created",
    UserUpdated = "user_updated",
    UserDeleted = "user_deleted",
    SessionsRevoked = "sessions_revoked",
    ClientCreated = "client_created",
    ClientUpdated = "client_updated",
    ClientDeleted = "client_deleted",
    ClientSecretRotated = "client_secret_rotated",
    ConsentGranted = "consent_granted",
    GrantRevoked = "grant_revoked",
    AuthorizationCodeReused = "authorization_code_reused",
}

impl EventType {
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == raw)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One security event, as the contract's audit API shows it.
///
/// Every text field that can come from a request is escaped by the builders below
/// (`escape_controls`): the trail is read in terminals (`audit tail`) and dashboards, where a
/// raw control or bidirectional character could forge or disguise what an event says.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub user_id: Option<UserId>,
    /// The email as attempted (normalised), so failed logins for unknown accounts are traceable.
    pub email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// The admin whose action caused the event; `user_id` is then the account acted on.
    pub actor_id: Option<UserId>,
    /// The OAuth client the event concerns, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: EventType, outcome: Outcome, context: &RequestContext, at: Timestamp) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            at,
            user_id: None,
            email: None,
            ip: context.ip.map(|ip| ip.to_string()),
            user_agent: context.user_agent.as_deref().map(escaped),
            request_id: context.request_id.as_deref().map(escaped),
            outcome,
            detail: None,
            actor_id: None,
            client_id: None,
        }
    }

    /// The OAuth client concerned (an id is at most 100 visible characters).
    pub fn client(mut self, client_id: &str) -> Self {
        let cut: String = client_id.chars().take(100).collect();
        self.client_id = Some(escaped(&cut));
        self
    }

    /// The admin who acted.
    pub fn actor(mut self, actor: UserId) -> Self {
        self.actor_id = Some(actor);
        self
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    /// The email as attempted, cut to the longest valid address so that junk input stays small.
    pub fn email(mut self, email: &str) -> Self {
        let cut: String = email.chars().take(MAX_EMAIL_CHARS).collect();
        self.email = Some(escaped(&cut));
        self
    }

    pub fn detail(mut self, detail: impl AsRef<str>) -> Self {
        self.detail = Some(escaped(detail.as_ref()));
        self
    }
}

fn escaped(text: &str) -> String {
    escape_controls(text).into_owned()
}

/// Which audit events to read, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub user: Option<UserId>,
    pub kind: Option<EventType>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only events before this chain position (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}
