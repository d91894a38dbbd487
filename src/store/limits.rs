//! The traits that slow attackers down: request budgets (GCRA) and failed-attempt counters
//! with their locks.

use std::time::Duration;

use async_trait::async_trait;

use super::{AttemptGate, LockoutPolicy, StoreError, Timestamp};
use crate::domain::Rate;

/// The outcome of taking one request from a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The budget's burst size.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// When refused: the time until a request would be allowed.
    pub retry_after: Duration,
}

/// Request budgets (GCRA). One call is one atomic decision: there is no read-then-write window
/// in which two requests could both take the last unit.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Takes one request from the budget `key` at `now`.
    async fn take(&self, key: &str, rate: Rate, now: Timestamp)
    -> Result<RateDecision, StoreError>;
}

/// What a failure counter counts: one subject (an email), or one member of a group (a device of
/// a user), so that a whole group can be forgotten at once without a scan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockKey {
    group: String,
    member: Option<String>,
}

impl LockKey {
    pub fn subject(group: impl Into<String>) -> Self {
        Self { group: group.into(), member: None }
    }

    pub fn member(group: impl Into<String>, member: impl Into<String>) -> Self {
        Self { group: group.into(), member: Some(member.into()) }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn member_name(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// The key as one string, `group` or `group:member`, for stores keyed by text.
    pub fn joined(&self) -> String {
        match &self.member {
            Some(member) => format!("{}:{member}", self.group),
            None => self.group.clone(),
        }
    }
}

/// Failed-attempt counters and locks, by key (an email or a device).
///
/// An attempt is counted before its password is checked and forgiven on success, so that any
/// number of parallel guesses gets at most `threshold` checks: the count and the lock are one
/// atomic decision.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    async fn begin_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError>;
    /// Takes back one attempt counted by `begin_attempt` whose credential was right but did not
    /// complete a login (a password that still needs its second factor): the failures before
    /// it stay counted, and a lock this attempt engaged is lifted again.
    async fn release_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Forgets the failures and any lock of `key` (after a success, or by an operator).
    async fn clear(&self, key: &LockKey) -> Result<(), StoreError>;
    /// Forgets every key of `group`, its members included; returns how many there were.
    async fn clear_group(&self, group: &str) -> Result<u64, StoreError>;
    /// Whether `key` is locked now, and for how long.
    async fn locked_for(
        &self,
        key: &LockKey,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;
    /// Deletes counters whose window and lock have passed and whose last failure is older than
    /// the policy's memory.
    async fn purge_lockouts(
        &self,
        now: Timestamp,
        policy: LockoutPolicy,
    ) -> Result<u64, StoreError>;
}
