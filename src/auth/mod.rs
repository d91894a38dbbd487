//! The use cases: register, login, refresh, logout, sessions, password change, the mail flows
//! (verification, reset, email change, deletion), and the second factors (TOTP, recovery codes,
//! passkeys).
//!
//! `AuthService` owns the policy and speaks only to the store traits; it knows nothing of HTTP.
//! Each use case is one public method in its own file, built from small named steps.

mod admin;
mod context;
mod error;
mod events;
mod factors;
mod limits;
mod lockout;
mod login;
mod paging;
mod password;
mod recovery;
mod register;
mod sessions;
mod views;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::audit::Audit;
use crate::config::EmailVerification;
use crate::crypto::tokens;
use crate::crypto::{AccessTokens, PasswordHasher, SuccessorKey};
use crate::domain::{Clock, LockoutPolicy, PasswordPolicy, Rate, Timestamp, chrono_duration};
use crate::mail::{Outbox, Templates};
use crate::metrics::Metrics;
use crate::store::{LockoutStore, RateLimitStore, SessionStore, UserRecord, UserStore};

pub use admin::{AccountChange, Actor, AdminUserPage, AdminUserView, MAX_USERS_PAGE};
pub use context::{Principal, RequestContext};
pub use error::{AuthError, MfaToken};
pub use events::Events;
pub use factors::{CEREMONY_TTL, PasskeyOptions, PasskeyView};
pub use factors::{
    MFA_METHODS, Proof, RECENT_SIGN_IN, RecoveryCodes, SecondFactor, SecondFactors, TotpEnrolment,
};
pub use limits::Budgets;
pub use lockout::Lockouts;
pub use sessions::{SessionPage, SessionParts, SessionSettings, Sessions};
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
    pub audit: Audit,
    /// Where messages wait to be delivered.
    pub outbox: Outbox,
    /// Where every use case reads the time.
    pub clock: Arc<dyn Clock>,
    /// TOTP, recovery codes and passkeys, with the keys they rest on.
    pub factors: SecondFactors,
}

/// Everything a use case needs, built once by `startup`.
pub struct AuthService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    budgets: Arc<Budgets>,
    lockout: Lockouts,
    session: Arc<Sessions>,
    events: Arc<Events>,
    audit: Audit,
    outbox: Outbox,
    templates: Templates,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    factors: SecondFactors,
    settings: AuthSettings,
    metrics: Arc<Metrics>,
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

impl AuthService {
    pub fn new(
        stores: AuthStores,
        hasher: PasswordHasher,
        access: Arc<AccessTokens>,
        successors: SuccessorKey,
        settings: AuthSettings,
        templates: Templates,
        metrics: Arc<Metrics>,
    ) -> Self {
        let AuthStores { users, sessions, limiter, lockouts, audit, outbox, clock, factors } =
            stores;
        let budgets = Arc::new(Budgets::new(
            limiter,
            audit.clone(),
            metrics.clone(),
            clock.clone(),
            settings.limits,
        ));
        let session = Arc::new(Sessions::new(SessionParts {
            users: users.clone(),
            sessions: sessions.clone(),
            access,
            successors,
            budgets: budgets.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            settings: SessionSettings {
                refresh_token_ttl: settings.refresh_token_ttl,
                refresh_reuse_grace: settings.refresh_reuse_grace,
                session_lifetime: settings.session_lifetime,
                max_sessions_per_user: settings.max_sessions_per_user,
            },
        }));
        let lockout = Lockouts::new(
            lockouts,
            audit.clone(),
            metrics.clone(),
            clock.clone(),
            settings.lockout,
        );
        let events = Arc::new(Events::new(audit.clone(), budgets.clone()));
        Self {
            users,
            sessions,
            budgets,
            lockout,
            session,
            events,
            audit,
            outbox,
            templates,
            clock,
            hasher,
            factors,
            settings,
            metrics,
        }
    }

    /// The outbox the use cases queue mail in: the sender of this instance works on the same one,
    /// so a queued message wakes it at once.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The audit trail, for the operator's command line.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The trail as its readers see it.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// The sessions and their tokens, a service of their own that this one opens sessions in.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.session
    }

    /// The current time, from the injected clock.
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The first step of a change to the caller's own account: the IP and account budgets, then
    /// the account as it is now (one deleted meanwhile is `Unauthorized`).
    async fn own_account_to_change(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<UserRecord, AuthError> {
        let account = Some(limits::Account::User(principal.user));
        self.budgets.limit_credential_request(context, account).await?;
        self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)
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
        };
        let text = format!("{pair:?}");
        for secret in ["access-secret", "refresh-secret", "device-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("expires_in: 900"), "{text}");
    }
}
