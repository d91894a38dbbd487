//! Rate limits: one budget per client IP and one per account on the endpoints that check a
//! credential or mint or revoke a token, and one per user on the reads (OWASP Authentication
//! Cheat Sheet, "Protect Against Automated Attacks"). They are checked before anything costly,
//! so a refused request does no hashing and no lookup.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{AuthError, AuthService, Principal, RequestContext};
use crate::domain::{Rate, UserId, client_ip_key};

/// The account key of an attempted email (normalised). Junk longer than any address is hashed,
/// so that a key never holds more than a few dozen bytes.
pub(super) fn email_account_key(attempted: &str) -> String {
    if attempted.len() <= 254 {
        format!("email:{attempted}")
    } else {
        format!("email#{}", URL_SAFE_NO_PAD.encode(Sha256::digest(attempted.as_bytes())))
    }
}

pub(super) fn user_account_key(user: UserId) -> String {
    format!("user:{user}")
}

impl AuthService {
    /// Takes one request from the client's IP budget and, when the request names one, from the
    /// account's budget.
    pub(super) async fn limit_credential_request(
        &self,
        context: &RequestContext,
        account: Option<&str>,
    ) -> Result<(), AuthError> {
        let limits = &self.settings.limits;
        self.take(&client_ip_key(context.ip), limits.ip).await?;
        if let Some(account) = account {
            self.take(&format!("account:{account}"), limits.account).await?;
        }
        Ok(())
    }

    /// Takes one request from the user's budget for reads.
    pub async fn limit_read(&self, principal: &Principal) -> Result<(), AuthError> {
        self.take(&format!("reads:{}", principal.user), self.settings.limits.reads).await
    }

    async fn take(&self, key: &str, rate: Rate) -> Result<(), AuthError> {
        let decision = self.limiter.take(key, rate).await?;
        if decision.allowed {
            return Ok(());
        }
        let budget = key.split(':').next().unwrap_or_default();
        self.metrics.refusal(budget);
        tracing::info!(
            budget,
            retry_after_ms = decision.retry_after.as_millis() as u64,
            "rate limited"
        );
        Err(AuthError::RateLimited { limit: decision.limit, retry_after: decision.retry_after })
    }
}
