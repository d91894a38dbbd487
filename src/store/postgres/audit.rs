//! `AuditStore` on PostgreSQL: an append-only table.

use async_trait::async_trait;

use super::{PostgresStore, map_error, millis};
use crate::audit::AuditEvent;
use crate::store::{AuditStore, StoreError};

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events
                 (id, type, at, user_id, email, ip, user_agent, request_id, outcome, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event.id.to_string())
        .bind(event.kind.as_str())
        .bind(millis(event.at))
        .bind(event.user_id.map(|u| u.to_string()))
        .bind(&event.email)
        .bind(&event.ip)
        .bind(&event.user_agent)
        .bind(&event.request_id)
        .bind(event.outcome.as_str())
        .bind(&event.detail)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }
}
