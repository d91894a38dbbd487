//! `AuditStore` on SQL: an append-only, hash-chained table.
//!
//! Each append takes the chain's head row first (`UPDATE ... RETURNING`), which holds SQLite's
//! write lock or PostgreSQL's row lock until commit: concurrent appends queue there, so the chain
//! never forks. An append is a batch: it moves the head past all of its events at once and
//! inserts them in multi-row statements, so the head is taken once per batch, not per event.

use std::sync::LazyLock;

use async_trait::async_trait;

use super::rows::AuditRow;
use super::{SqlStore, failed};
use crate::domain::audit::chain::{self, HeadSignature, Link};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::store::codec::{from_millis, millis};
use crate::store::{AuditStore, StoreError};

/// The rows one insert statement carries. A batch is written in the fewest statements of these
/// sizes, so there are only four statements to prepare and cache on each connection.
const INSERT_ROWS: [usize; 4] = [1, 4, 16, 64];

/// The columns of one event, in the order `append` binds them.
const COLUMNS: usize = 15;

/// The insert statements, one per size of `INSERT_ROWS`, written once.
static INSERTS: LazyLock<[String; 4]> = LazyLock::new(|| INSERT_ROWS.map(insert_rows));

fn insert_rows(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events
             (id, type, at, user_id, email, ip, user_agent, request_id, outcome, detail,
              chain_seq, prev_hash, hash, actor_id, client_id)
         VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * COLUMNS + column + 1));
        }
        sql.push(')');
    }
    sql
}

fn insert_statement(rows: usize) -> &'static str {
    let index = INSERT_ROWS.iter().position(|&n| n == rows).unwrap_or(0);
    &INSERTS[index]
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let failed = failed("append audit event");
        let count = i64::try_from(events.len())
            .map_err(|_| StoreError::backend("append audit event", "batch too large"))?;
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let (last, previous): (i64, Vec<u8>) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
                .bind(count)
                .fetch_one(&mut *tx)
                .await
                .map_err(&failed)?;
        let mut previous = <[u8; 32]>::try_from(previous.as_slice())
            .map_err(|_| StoreError::backend("append audit event", "malformed chain head"))?;
        let mut links = Vec::with_capacity(events.len());
        for (seq, event) in (last - count + 1..).zip(events) {
            let hash = chain::link(&previous, seq, event);
            links.push((seq, previous, hash, event));
            previous = hash;
        }
        let mut rest = &links[..];
        while !rest.is_empty() {
            let rows = INSERT_ROWS.iter().copied().rev().find(|&n| n <= rest.len()).unwrap_or(1);
            let (now, later) = rest.split_at(rows);
            let mut insert = sqlx::query(insert_statement(rows));
            for (seq, prev, hash, event) in now {
                insert = insert
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
                    .bind(*seq)
                    .bind(&prev[..])
                    .bind(&hash[..])
                    .bind(event.actor_id.map(|a| a.to_string()))
                    .bind(&event.client_id);
            }
            insert.execute(&mut *tx).await.map_err(&failed)?;
            rest = later;
        }
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&previous[..])
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn query(&self, filter: &AuditFilter) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events
             WHERE chain_seq IS NOT NULL
               AND ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR type = $2)
               AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at <= $4)
               AND ($5 IS NULL OR chain_seq < $5)
             ORDER BY chain_seq DESC LIMIT $6"
        );
        let rows: Vec<AuditRow> = sqlx::query_as(SQL)
            .bind(filter.user.map(|u| u.to_string()))
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.since.map(millis))
            .bind(filter.until.map(millis))
            .bind(filter.before)
            .bind(i64::from(filter.limit))
            .fetch_all(&self.read)
            .await
            .map_err(failed("query audit events"))?;
        rows.into_iter()
            .map(|row| {
                let link = Link::try_from(row)?;
                Ok((link.seq.unwrap_or_default(), link.event))
            })
            .collect()
    }

    async fn links(&self, after: i64, limit: u32) -> Result<Vec<Link>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2"
        );
        let rows: Vec<AuditRow> = sqlx::query_as(SQL)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(failed("read audit chain"))?;
        rows.into_iter().map(Link::try_from).collect()
    }

    async fn unchained(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE chain_seq IS NULL")
                .fetch_one(&self.read)
                .await
                .map_err(failed("count unchained audit events"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn head(&self) -> Result<(i64, Vec<u8>), StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.read)
            .await
            .map_err(failed("read audit head"))
    }

    async fn add_head_signature(
        &self,
        signature: &HeadSignature,
        seen: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let failed = failed("sign audit head");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        // The head's row lock (PostgreSQL) or the write lock (SQLite), held until commit:
        // signers, and appends, take turns here, so the newest read below stays the newest.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        let newest: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, signature FROM audit_head_signatures ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(&failed)?;
        let statement = match &newest {
            Some((_, stored)) if Some(&stored[..]) != seen => return Ok(false),
            None if seen.is_some() => return Ok(false),
            Some((seq, _)) if *seq > signature.seq => return Ok(false),
            Some((seq, _)) if *seq == signature.seq => {
                "UPDATE audit_head_signatures
                 SET hash = $2, signature = $3, signed_at = $4, previous = $5 WHERE seq = $1"
            }
            _ => {
                "INSERT INTO audit_head_signatures (seq, hash, signature, signed_at, previous)
                 VALUES ($1, $2, $3, $4, $5)"
            }
        };
        sqlx::query(statement)
            .bind(signature.seq)
            .bind(&signature.hash)
            .bind(&signature.signature)
            .bind(millis(signature.signed_at))
            .bind(signature.previous.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn newest_head_signature(&self) -> Result<Option<HeadSignature>, StoreError> {
        let row: Option<SignatureRow> = sqlx::query_as(
            "SELECT seq, hash, signature, signed_at, previous FROM audit_head_signatures
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read audit head signatures"))?;
        row.map(signature_of).transpose()
    }

    async fn head_signatures(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<HeadSignature>, StoreError> {
        let rows: Vec<SignatureRow> = sqlx::query_as(
            "SELECT seq, hash, signature, signed_at, previous FROM audit_head_signatures
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(failed("read audit head signatures"))?;
        rows.into_iter().map(signature_of).collect()
    }
}

/// A head signature as stored: position, hash, signature, time, link.
type SignatureRow = (i64, Vec<u8>, Vec<u8>, i64, Option<Vec<u8>>);

fn signature_of(
    (seq, hash, signature, at, previous): SignatureRow,
) -> Result<HeadSignature, StoreError> {
    Ok(HeadSignature { seq, hash, signature, signed_at: from_millis(at)?, previous })
}
