//! Lockout after repeated failed logins, which an attacker cannot turn against the owner.
//!
//! Failures are counted per email, whether or not an account exists (so a 423 tells nothing).
//! A login that presents a device token this account got from an earlier successful login is
//! counted against that device alone and is not held by the email's lock: an attacker can lock
//! strangers out, never the owner on a device used before (OWASP, "Slow Down Online Guessing
//! Attacks with Device Cookies").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::sync::Arc;
use std::time::Duration;

use super::{AuthError, RequestContext};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::domain::{Clock, LockoutPolicy, UserId};
use crate::metrics::Metrics;
use crate::store::{AttemptGate, LockKey, LockoutStore, TokenHash};

pub(super) fn email_lock_key(attempted: &str) -> LockKey {
    LockKey::subject(super::limits::email_account_key(attempted))
}

pub(super) fn device_lock_key(user: UserId, device: &TokenHash) -> LockKey {
    LockKey::member(device_group(user), URL_SAFE_NO_PAD.encode(device.0))
}

pub(super) fn device_group(user: UserId) -> String {
    format!("device:{user}")
}

/// Lockout, the shared step of every check of a credential: it holds only what counting,
/// refusing and lifting locks needs.
pub struct Lockouts {
    store: Arc<dyn LockoutStore>,
    audit: Audit,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    policy: LockoutPolicy,
}

impl Lockouts {
    pub fn new(
        store: Arc<dyn LockoutStore>,
        audit: Audit,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        policy: LockoutPolicy,
    ) -> Self {
        Self { store, audit, metrics, clock, policy }
    }

    /// Counts an attempt on `key` before its credential is checked; refuses it if `key` is
    /// locked. Returns whether this attempt engaged the lock.
    pub async fn begin_attempt(&self, key: &LockKey) -> Result<bool, AuthError> {
        match self.store.begin_attempt(key, self.policy, self.clock.now()).await? {
            AttemptGate::Proceed { locks } => Ok(locks),
            AttemptGate::Locked { retry_after } => {
                self.metrics.refusal("locked");
                Err(AuthError::Locked { retry_after })
            }
        }
    }

    /// Gives back an attempt `begin_attempt` counted on `key`, when no credential was checked
    /// (or the right one must ask for its second step first).
    pub async fn release(&self, key: &LockKey) -> Result<(), AuthError> {
        Ok(self.store.release_attempt(key, self.policy, self.clock.now()).await?)
    }

    /// How long `attempted`'s email stays locked, if it is.
    pub async fn email_locked_for(&self, attempted: &str) -> Result<Option<Duration>, AuthError> {
        Ok(self.store.locked_for(&email_lock_key(attempted), self.clock.now()).await?)
    }

    /// Lifts the locks of every device of `user`.
    pub async fn clear_devices(&self, user: UserId) -> Result<(), AuthError> {
        self.store.clear_group(&device_group(user)).await?;
        Ok(())
    }

    /// Forgets the failures of `key` after a successful check.
    pub async fn forgive(&self, key: &LockKey) -> Result<(), AuthError> {
        Ok(self.store.clear(key).await?)
    }

    /// Records that a failure engaged a lock.
    pub async fn record_lockout(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        on_device: bool,
    ) -> Result<(), AuthError> {
        let mut event =
            AuditEvent::new(EventType::Lockout, Outcome::Failure, context, self.clock.now())
                .email(attempted)
                .detail(if on_device { "device" } else { "email" });
        event.user_id = user;
        Ok(self.audit.record(event).await?)
    }

    pub async fn lift_locks(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        by: &str,
    ) -> Result<(), AuthError> {
        self.lift_locks_by(context, attempted, user, by, None).await
    }

    /// Lifts the locks, recording `actor`, the admin who asked, if one did.
    pub async fn lift_locks_by(
        &self,
        context: &RequestContext,
        attempted: &str,
        user: Option<UserId>,
        by: &str,
        actor: Option<UserId>,
    ) -> Result<(), AuthError> {
        self.store.clear(&email_lock_key(attempted)).await?;
        if let Some(user) = user {
            self.store.clear_group(&device_group(user)).await?;
        }
        let mut event =
            AuditEvent::new(EventType::Unlock, Outcome::Success, context, self.clock.now())
                .email(attempted)
                .detail(by);
        event.user_id = user;
        event.actor_id = actor;
        self.audit.record(event).await?;
        Ok(())
    }
}
