//! `AuditStore` on SQLite: an append-only, hash-chained table.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, from_millis, map_error, millis};
use crate::audit::chain::{self, Link};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::domain::UserId;
use crate::store::{AuditFilter, AuditStore, StoreError};

const COLUMNS: &str = "id, type, at, user_id, email, ip, user_agent, request_id, outcome, detail, chain_seq, prev_hash, hash";

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("malformed audit event: {what}"))
}

fn event_from_row(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let id: String = row.get("id");
    let kind: String = row.get("type");
    let outcome: String = row.get("outcome");
    let user: Option<String> = row.get("user_id");
    Ok(AuditEvent {
        id: uuid::Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
        kind: EventType::parse(&kind).ok_or_else(|| corrupt("type"))?,
        at: from_millis(row.get("at"))?,
        user_id: user.map(|u| UserId::parse(&u).ok_or_else(|| corrupt("user id"))).transpose()?,
        email: row.get("email"),
        ip: row.get("ip"),
        user_agent: row.get("user_agent"),
        request_id: row.get("request_id"),
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome"))?,
        detail: row.get("detail"),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_error)?;
        // The first statement writes, so this transaction holds SQLite's write lock from here on.
        let head =
            sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *tx)
                .await
                .map_err(map_error)?;
        let seq: i64 = head.get("seq");
        let previous: Vec<u8> = head.get("hash");
        let previous = <[u8; 32]>::try_from(previous.as_slice()).map_err(|_| corrupt("head"))?;
        let hash = chain::link(&previous, seq, event);
        sqlx::query(
            "INSERT INTO audit_events
                 (id, type, at, user_id, email, ip, user_agent, request_id, outcome, detail,
                  chain_seq, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(seq)
        .bind(&previous[..])
        .bind(&hash[..])
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query("UPDATE audit_head SET hash = ? WHERE id = 1")
            .bind(&hash[..])
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }

    async fn query(&self, filter: &AuditFilter) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events
             WHERE chain_seq IS NOT NULL
               AND (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR type = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at <= ?4)
               AND (?5 IS NULL OR chain_seq < ?5)
             ORDER BY chain_seq DESC LIMIT ?6"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.user.map(|u| u.to_string()))
            .bind(filter.kind.map(EventType::as_str))
            .bind(filter.since.map(millis))
            .bind(filter.until.map(millis))
            .bind(filter.before)
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter().map(|row| Ok((row.get("chain_seq"), event_from_row(row)?))).collect()
    }

    async fn links(&self, after: i64, limit: u32) -> Result<Vec<Link>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE chain_seq > ? ORDER BY chain_seq LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(Link {
                    seq: row.get("chain_seq"),
                    prev_hash: row.get("prev_hash"),
                    hash: row.get("hash"),
                    event: event_from_row(row)?,
                })
            })
            .collect()
    }

    async fn unchained(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE chain_seq IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn head(&self) -> Result<(i64, Vec<u8>), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok((row.get("seq"), row.get("hash")))
    }
}
