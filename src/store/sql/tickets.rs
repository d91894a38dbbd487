//! `TicketStore` on SQL: one row per ticket; a take is one `UPDATE … RETURNING` that counts the
//! takes, so the row's lock (PostgreSQL) or the single writer (SQLite) makes exactly one of
//! concurrent takes the first.

use async_trait::async_trait;

use super::{SqlStore, failed};
use crate::store::codec::millis;
use crate::store::{StoreError, Taken, TicketKind, TicketStore, Timestamp, TokenHash};

#[async_trait]
impl TicketStore for SqlStore {
    async fn put_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        value: &[u8],
        keep_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO oauth_tickets (kind, key, value, keep_until, takes)
             VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (kind, key) DO UPDATE
             SET value = excluded.value, keep_until = excluded.keep_until, takes = 0
             WHERE oauth_tickets.keep_until <= $5",
        )
        .bind(kind.as_str())
        .bind(key.0.as_slice())
        .bind(value)
        .bind(millis(keep_until))
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("store ticket"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Taken, StoreError> {
        let row: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "UPDATE oauth_tickets SET takes = takes + 1
             WHERE kind = $1 AND key = $2 AND keep_until > $3
             RETURNING value, takes",
        )
        .bind(kind.as_str())
        .bind(key.0.as_slice())
        .bind(millis(now))
        .fetch_optional(&self.write)
        .await
        .map_err(failed("take ticket"))?;
        Ok(match row {
            None => Taken::Missing,
            Some((value, 1)) => Taken::First(value),
            Some((value, _)) => Taken::Again(value),
        })
    }

    async fn read_ticket(
        &self,
        kind: TicketKind,
        key: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT value FROM oauth_tickets
             WHERE kind = $1 AND key = $2 AND keep_until > $3 AND takes = 0",
        )
        .bind(kind.as_str())
        .bind(key.0.as_slice())
        .bind(millis(now))
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read ticket"))?;
        Ok(row.map(|(value,)| value))
    }

    async fn purge_tickets(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_tickets WHERE keep_until <= $1")
            .bind(millis(now))
            .execute(&self.write)
            .await
            .map_err(failed("purge tickets"))?;
        Ok(done.rows_affected())
    }
}
