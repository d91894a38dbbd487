//! The use cases: register, login, refresh, logout, sessions, password change, the mail flows
//! (verification, reset, email change, deletion), and the second factors (TOTP, recovery codes,
//! passkeys).
//!
//! One service per capability, each holding only the stores and services it uses: `SignIn`,
//! `Sessions`, `Registration` and `Accounts`, `Factors`, `Recovery`, `Administration`, `Events`.
//! They share the steps written once beneath them: `Budgets`, `Lockouts`, `Passwords` (the
//! account of a token, password checks), `Proofs` (password and second factor), and `Notifier`
//! (the outbox). They speak only to the store traits and know nothing of HTTP; `UseCases` builds
//! them all once. Each use case is one public method, built from small named steps.

mod accounts;
mod admin;
mod assemble;
mod context;
mod error;
mod events;
mod factors;
mod limits;
mod lockout;
mod notify;
mod oauth;
mod paging;
mod passwords;
mod recovery;
mod sessions;
mod sign_in;
mod views;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::audit::Audit;
use crate::config::EmailVerification;
use crate::crypto::tokens;
use crate::domain::{Clock, LockoutPolicy, PasswordPolicy, Rate, chrono_duration};
use crate::mail::Outbox;
use crate::store::{
    ClientStore, GrantStore, LockoutStore, MfaStore, RateLimitStore, SessionStore, TicketStore,
    UserStore,
};

pub use accounts::{Accounts, Registration};
pub use admin::{
    AccountChange, Actor, AdminUserPage, AdminUserView, Administration, MAX_USERS_PAGE,
};
pub use assemble::{UseCases, administration};
pub use context::{Principal, RequestContext};
pub use error::{AuthError, MfaToken};
pub use events::Events;
pub use factors::{CEREMONY_TTL, Factors, PasskeyOptions, PasskeyView, Proofs};
pub use factors::{
    MFA_METHODS, Proof, RECENT_SIGN_IN, RecoveryCodes, SecondFactor, SecondFactors, TotpEnrolment,
};
pub use limits::Budgets;
pub use lockout::Lockouts;
pub use notify::Notifier;
pub use oauth::{
    AuthenticatedClient, Authorization, AuthorizeSettings, BrowserSessions, ClientAnswer,
    ClientCredentials, ClientEndpoints, ClientPage, ClientSecret, ClientSettings, ClientType,
    ClientUpdate, ClientView, Clients, Consent, Decided, FileClient, FileSecret, GrantSettings,
    GrantType, GrantView, Grants, IdTokenAlg, InteractionClient, InteractionView, Introspection,
    Logout, MAX_CLIENTS_PAGE, NewClient, Next, OAuthError, Pending, PushedRequest, Redirect,
    ResponseMode, SignedIn, TokenResponse, UserClaims, UserInfo, UserInfoError,
};
pub use passwords::Passwords;
pub use recovery::Recovery;
pub use sessions::{SessionPage, SessionSettings, Sessions};
pub use sign_in::{SignIn, SignInSettings};
pub use views::UserView;

/// The request budgets.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Per client IP, shared by the endpoints that check a credential or mint or revoke a token.
    pub ip: Rate,
    /// Per account (email or user id) on those endpoints.
    pub account: Rate,
    /// Per user on the reads.
    pub reads: Rate,
    /// Per account, on the requests that mail a link to an address anyone can name.
    pub mail: Rate,
    /// Per OAuth client, where it authenticates.
    pub client: Rate,
}

/// The settings the use cases depend on.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub password_policy: PasswordPolicy,
    pub limits: Limits,
    pub lockout: LockoutPolicy,
    /// A new login past this many live sessions ends the user's oldest one.
    pub max_sessions_per_user: u32,
    /// A session ends this long after its login, however often it is refreshed.
    pub session_lifetime: Duration,
    /// A device token unused this long no longer spares its owner a lockout.
    pub device_token_ttl: Duration,
    pub mail: MailFlows,
    /// The authorization endpoint's settings.
    pub authorization: AuthorizeSettings,
}

/// What the mail flows depend on.
#[derive(Clone, Copy, Debug)]
pub struct MailFlows {
    pub verification: EmailVerification,
    /// How long a verification or email-change link works.
    pub email_token_ttl: Duration,
    /// How long a reset link works.
    pub password_reset_ttl: Duration,
}

/// The stores the use cases work on.
pub struct AuthStores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub limiter: Arc<dyn RateLimitStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    /// TOTP, recovery codes, passkeys and ceremonies in progress.
    pub factors: Arc<dyn MfaStore>,
    /// The OAuth clients.
    pub clients: Arc<dyn ClientStore>,
    /// The single-use tickets of OAuth authorizations in progress.
    pub tickets: Arc<dyn TicketStore>,
    /// The apps each user has authorised.
    pub grants: Arc<dyn GrantStore>,
    pub audit: Audit,
    /// Where messages wait to be delivered.
    pub outbox: Outbox,
    /// Where every use case reads the time.
    pub clock: Arc<dyn Clock>,
}

/// Tokens handed to a client after login or refresh. Its `Debug` shows `..` for each token: any
/// of them is a credential (OWASP Logging Cheat Sheet: never log session tokens).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// The session the tokens belong to: a browser's sign-in session is bound to it.
    #[serde(skip)]
    pub session: (crate::domain::UserId, crate::domain::SessionId),
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = format_args!("..");
        f.debug_struct("TokenPair")
            .field("access_token", &hidden)
            .field("refresh_token", &hidden)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("device_token", &self.device_token.as_ref().map(|_| hidden))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::TokenPair;

    #[test]
    fn a_token_pair_debug_reveals_no_token() {
        let pair = TokenPair {
            access_token: "eyJhbGciOiJFZERTQSJ9.access-secret.signature".to_owned(),
            refresh_token: "refresh-secret-43-characters-long-xxxxxxxxx".to_owned(),
            token_type: "Bearer",
            expires_in: 900,
            refresh_expires_in: 1_209_600,
            device_token: Some("device-secret-43-characters-long-xxxxxxxxxx".to_owned()),
            session: (crate::domain::UserId::new(), crate::domain::SessionId::new()),
        };
        let text = format!("{pair:?}");
        for secret in ["access-secret", "refresh-secret", "device-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("expires_in: 900"), "{text}");
    }
}
