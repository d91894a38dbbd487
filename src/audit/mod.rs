//! Typed security events and the trail they are written to.
//!
//! Every use case in `auth` records what happened through `Audit`; the event is also emitted as a
//! structured log line, so an operator sees it even before querying the trail. A failure to write
//! the trail is logged and does not undo the action it describes: the action has already happened.

pub mod chain;
pub mod query;

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::auth::RequestContext;
use crate::domain::UserId;
use crate::metrics::Metrics;
use crate::store::{AuditFilter, AuditStore, StoreError, Timestamp};

/// Longest attempted email kept in an event (RFC 5321 limits a path to 256 octets).
const MAX_EMAIL_CHARS: usize = 256;

/// The kinds of security event of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Registration,
    Login,
    LoginFailed,
    Logout,
    LogoutAll,
    TokenRefresh,
    TokenReused,
    PasswordChange,
    Lockout,
    Unlock,
    SessionRevoked,
    RateLimited,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::Registration,
        EventType::Login,
        EventType::LoginFailed,
        EventType::Logout,
        EventType::LogoutAll,
        EventType::TokenRefresh,
        EventType::TokenReused,
        EventType::PasswordChange,
        EventType::Lockout,
        EventType::Unlock,
        EventType::SessionRevoked,
        EventType::RateLimited,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Registration => "registration",
            EventType::Login => "login",
            EventType::LoginFailed => "login_failed",
            EventType::Logout => "logout",
            EventType::LogoutAll => "logout_all",
            EventType::TokenRefresh => "token_refresh",
            EventType::TokenReused => "token_reused",
            EventType::PasswordChange => "password_change",
            EventType::Lockout => "lockout",
            EventType::Unlock => "unlock",
            EventType::SessionRevoked => "session_revoked",
            EventType::RateLimited => "rate_limited",
        }
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
}

impl AuditEvent {
    pub fn new(kind: EventType, outcome: Outcome, context: &RequestContext) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            at: crate::store::now(),
            user_id: None,
            email: None,
            ip: context.ip.map(|ip| ip.to_string()),
            user_agent: context.user_agent.clone(),
            request_id: context.request_id.clone(),
            outcome,
            detail: None,
        }
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    /// The email as attempted, cut to the longest valid address so that junk input stays small.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.chars().take(MAX_EMAIL_CHARS).collect());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Writes events to the trail.
#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn AuditStore>,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub fn new(store: Arc<dyn AuditStore>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    pub async fn record(&self, event: AuditEvent) {
        self.metrics.security_event(event.kind.as_str(), event.outcome.as_str());
        tracing::info!(
            target: "portcullis::audit",
            event_id = %event.id,
            event_type = event.kind.as_str(),
            outcome = event.outcome.as_str(),
            user_id = event.user_id.map(|u| u.to_string()),
            ip = event.ip.as_deref(),
            request_id = event.request_id.as_deref(),
            detail = event.detail.as_deref(),
            "security event"
        );
        if let Err(error) = self.store.append(&event).await {
            tracing::error!(event_id = %event.id, %error, "could not write the audit event");
        }
    }

    /// One page of events matching `filter`, newest first.
    pub async fn page(&self, filter: AuditFilter) -> Result<query::Page, StoreError> {
        let limit = filter.limit;
        let mut found = self.store.query(&AuditFilter { limit: limit + 1, ..filter }).await?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let next_cursor =
            more.then(|| found.last().map(|(seq, _)| query::encode_cursor(*seq))).flatten();
        Ok(query::Page { events: found.into_iter().map(|(_, e)| e).collect(), next_cursor })
    }

    /// Checks the whole chain, in batches.
    pub async fn verify(&self) -> Result<chain::Report, StoreError> {
        let mut verifier = chain::Verifier::default();
        loop {
            let links = self.store.links(verifier.last_seq(), 1000).await?;
            if links.is_empty() {
                break;
            }
            for link in &links {
                verifier.check(link);
            }
        }
        let (head_seq, head_hash) = self.store.head().await?;
        let unchained = self.store.unchained().await?;
        let mut report = verifier.finish(head_seq, &head_hash);
        if unchained > 0 {
            report.problems.push(format!("{unchained} events are outside the chain"));
        }
        Ok(report)
    }

    /// Up to `limit` events after chain position `after`, oldest first, with their positions.
    pub async fn after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let links = self.store.links(after, limit).await?;
        Ok(links.into_iter().filter_map(|l| l.seq.map(|seq| (seq, l.event))).collect())
    }

    /// The chain's last position.
    pub async fn last_position(&self) -> Result<i64, StoreError> {
        Ok(self.store.head().await?.0)
    }
}
