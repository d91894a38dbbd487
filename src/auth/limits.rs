//! Rate limits: one budget per client IP and one per account on the endpoints that check a
//! credential or mint or revoke a token, and one per user on the reads (OWASP Authentication
//! Cheat Sheet, "Protect Against Automated Attacks"). They are checked before anything costly,
//! so a refused request does no hashing. A login that carries a known device token takes from
//! that device's budget instead of the account's, and the requests that mail a link take from a
//! mail budget: strangers who spend an account's budget never keep its owner out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::{AuthError, Limits, Principal, RequestContext};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::domain::{Clock, Rate, UserId, client_ip_key};
use crate::metrics::Metrics;
use crate::store::RateLimitStore;

/// The account key of an attempted email (normalised). Junk longer than any address is hashed,
/// so that a key never holds more than a few dozen bytes.
pub(super) fn email_account_key(attempted: &str) -> String {
    if attempted.len() <= 254 {
        format!("email:{attempted}")
    } else {
        format!("email#{}", URL_SAFE_NO_PAD.encode(Sha256::digest(attempted.as_bytes())))
    }
}

/// Whose account a request names, for the account budget.
#[derive(Clone, Copy, Debug)]
pub enum Account<'a> {
    /// The attempted email, normalised.
    Email(&'a str),
    /// The user a token names.
    User(UserId),
    /// A known device of the user (by its token's hash): a budget of its own, which requests
    /// without the device's token cannot spend.
    Device(UserId, &'a crate::store::TokenHash),
}

/// One budget to take from, and who it is about (for the audit trail).
struct Budget<'a> {
    name: &'static str,
    key: String,
    rate: Rate,
    user: Option<UserId>,
    email: Option<&'a str>,
}

/// The request budgets, the first step of every use case: it holds only what taking from a
/// budget needs.
pub struct Budgets {
    limiter: Arc<dyn RateLimitStore>,
    audit: Audit,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl Budgets {
    pub fn new(
        limiter: Arc<dyn RateLimitStore>,
        audit: Audit,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self { limiter, audit, metrics, clock, limits }
    }

    /// Takes one request from the client's IP budget and, when the request names one, from the
    /// account's budget.
    pub async fn limit_credential_request(
        &self,
        context: &RequestContext,
        account: Option<Account<'_>>,
    ) -> Result<(), AuthError> {
        let limits = &self.limits;
        let ip = Budget {
            name: "ip",
            key: client_ip_key(context.ip),
            rate: limits.ip,
            user: None,
            email: None,
        };
        self.take(context, ip).await?;
        match account {
            None => Ok(()),
            Some(account) => self.take_account_budget(context, account).await,
        }
    }

    /// Takes one request from the account's budget alone (for a request whose account is known
    /// only after its IP budget was taken).
    pub async fn take_account_budget(
        &self,
        context: &RequestContext,
        account: Account<'_>,
    ) -> Result<(), AuthError> {
        let rate = self.limits.account;
        let budget = match account {
            Account::Email(email) => Budget {
                name: "account",
                key: format!("account:{}", email_account_key(email)),
                rate,
                user: None,
                email: Some(email),
            },
            Account::User(user) => Budget {
                name: "account",
                key: format!("account:user:{user}"),
                rate,
                user: Some(user),
                email: None,
            },
            Account::Device(user, device) => Budget {
                name: "device",
                key: format!("account:device:{}", URL_SAFE_NO_PAD.encode(device.0)),
                rate,
                user: Some(user),
                email: None,
            },
        };
        self.take(context, budget).await
    }

    /// Takes one message from the mail budget of an attempted email. Over it the request still
    /// answers as usual but sends nothing, so the answer tells nothing.
    pub async fn mail_budget_has_room(
        &self,
        context: &RequestContext,
        attempted: &str,
    ) -> Result<bool, AuthError> {
        let budget = Budget {
            name: "mail",
            key: format!("mail:{}", email_account_key(attempted)),
            rate: self.limits.mail,
            user: None,
            email: Some(attempted),
        };
        match self.take(context, budget).await {
            Ok(()) => Ok(true),
            Err(AuthError::RateLimited { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Takes one request to an OAuth endpoint from its address's budget, as large as the reads
    /// budget: an app's server sends every user's code exchange from one address.
    pub async fn limit_client_address(&self, context: &RequestContext) -> Result<(), AuthError> {
        let ip = Budget {
            name: "client_ip",
            key: format!("client-ip:{}", client_ip_key(context.ip)),
            rate: self.limits.reads,
            user: None,
            email: None,
        };
        self.take(context, ip).await
    }

    /// Takes one request of an authenticated OAuth client from its own budget
    /// (`RATE_LIMIT_CLIENT`).
    pub async fn limit_client(
        &self,
        context: &RequestContext,
        client_id: &str,
    ) -> Result<(), AuthError> {
        // Hashed, the key is bounded whatever the id's length.
        let id = URL_SAFE_NO_PAD.encode(&Sha256::digest(client_id.as_bytes())[..16]);
        let client = Budget {
            name: "client",
            key: format!("client:{id}"),
            rate: self.limits.client,
            user: None,
            email: None,
        };
        self.take(context, client).await
    }

    /// Takes one request from the user's budget for reads.
    pub async fn limit_read(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        let budget = Budget {
            name: "reads",
            key: format!("reads:{}", principal.user),
            rate: self.limits.reads,
            user: Some(principal.user),
            email: None,
        };
        self.take(context, budget).await
    }

    async fn take(&self, context: &RequestContext, budget: Budget<'_>) -> Result<(), AuthError> {
        let decision = self.limiter.take(&budget.key, budget.rate, self.clock.now()).await?;
        if decision.allowed {
            return Ok(());
        }
        self.metrics.refusal(budget.name);
        tracing::info!(
            budget = budget.name,
            retry_after_ms = decision.retry_after.as_millis() as u64,
            "rate limited"
        );
        self.record_refusal(context, &budget).await;
        Err(AuthError::RateLimited { limit: decision.limit, retry_after: decision.retry_after })
    }

    /// Writes a `rate_limited` event for the first refusal of a budget in each of its periods,
    /// not for every one: a flood of refused requests must stay cheap, not become a flood of
    /// audit writes. The sampling is itself a budget of one event per period.
    async fn record_refusal(&self, context: &RequestContext, budget: &Budget<'_>) {
        let sample = Rate { count: 1, period: budget.rate.period };
        let first =
            self.limiter.take(&format!("audit:{}", budget.key), sample, self.clock.now()).await;
        if !first.is_ok_and(|decision| decision.allowed) {
            return;
        }
        let mut event =
            AuditEvent::new(EventType::RateLimited, Outcome::Failure, context, self.clock.now())
                .detail(format!(
                    "{} budget spent; later refusals this period are not recorded",
                    budget.name
                ));
        event.user_id = budget.user;
        if let Some(email) = budget.email {
            event = event.email(email);
        }
        // The request is refused either way; a refusal the trail could not take is logged by
        // `record` and counted, and the answer stays 429.
        let _ = self.audit.record(event).await;
    }
}
