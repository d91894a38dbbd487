//! `SessionStore` on SQLite.
//!
//! Rotation is one transaction whose first statement is the conditional `UPDATE` that claims the
//! presented token: SQLite runs one writer at a time, so of several concurrent rotations of the
//! same token exactly one finds `rotated_at IS NULL` and wins; the others see it rotated.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, duration_millis, from_millis, map_error, millis, parse_id};
use crate::domain::{SessionId, UserId};
use crate::store::{
    NewSession, Rotation, SessionRecord, SessionStore, StoreError, Timestamp, TokenHash,
};

const SESSION_COLUMNS: &str = "s.id, s.user_id, s.created_at, s.last_used_at, s.ip, s.user_agent";

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: parse_id(row.get("id"), SessionId::parse)?,
        user_id: parse_id(row.get("user_id"), UserId::parse)?,
        created_at: from_millis(row.get("created_at"))?,
        last_used_at: from_millis(row.get("last_used_at"))?,
        ip: row.get("ip"),
        user_agent: row.get("user_agent"),
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(millis(session.created_at))
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .bind(&session.ip)
        .bind(&session.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&session.refresh_token.0[..])
        .bind(session.id.to_string())
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError> {
        let now_ms = millis(now);
        let mut tx = self.writer.begin().await.map_err(map_error)?;
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?1, successor = ?2
             WHERE token_hash = ?3 AND rotated_at IS NULL AND expires_at > ?1
               AND session_id IN
                   (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1)
             RETURNING session_id",
        )
        .bind(now_ms)
        .bind(&successor.0[..])
        .bind(&presented.0[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;

        if let Some(row) = claimed {
            let session: String = row.get("session_id");
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&successor.0[..])
            .bind(&session)
            .bind(now_ms)
            .bind(millis(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
            let user: String = sqlx::query_scalar(
                "UPDATE sessions SET last_used_at = ?, expires_at = ? WHERE id = ? RETURNING user_id",
            )
            .bind(now_ms)
            .bind(millis(expires_at))
            .bind(&session)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
            tx.commit().await.map_err(map_error)?;
            return Ok(Rotation::Rotated {
                session: parse_id(&session, SessionId::parse)?,
                user: parse_id(&user, UserId::parse)?,
            });
        }

        // Not claimable: find out why, still inside the write transaction.
        let row = sqlx::query(
            "SELECT t.session_id, t.rotated_at, t.successor, s.user_id,
                    s.revoked_at, s.expires_at AS session_expires_at,
                    (SELECT n.rotated_at IS NULL FROM refresh_tokens n
                      WHERE n.token_hash = t.successor) AS successor_current
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ?",
        )
        .bind(&presented.0[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        let revoked_at: Option<i64> = row.get("revoked_at");
        let session_expires_at: i64 = row.get("session_expires_at");
        let rotated_at: Option<i64> = row.get("rotated_at");
        let (Some(rotated_at), None, true) = (rotated_at, revoked_at, session_expires_at > now_ms)
        else {
            return Ok(Rotation::Invalid);
        };
        let session_raw: String = row.get("session_id");
        let session = parse_id(&session_raw, SessionId::parse)?;
        let user = parse_id(row.get("user_id"), UserId::parse)?;
        let recorded_successor: Option<Vec<u8>> = row.get("successor");
        let successor_current: Option<bool> = row.get("successor_current");
        // Strictly less: a grace of 0s means none, even within the same millisecond.
        let within_grace = now_ms - rotated_at < duration_millis(grace);
        if within_grace
            && recorded_successor.as_deref() == Some(&successor.0[..])
            && successor_current == Some(true)
        {
            return Ok(Rotation::Grace { session, user });
        }
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(&session_raw)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(Rotation::Reused { session, user })
    }

    async fn live_session(
        &self,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s
             WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ?"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn session_of_refresh_token(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ?1 AND t.rotated_at IS NULL AND t.expires_at > ?2
               AND s.revoked_at IS NULL AND s.expires_at > ?2"
        );
        let row = sqlx::query(&sql)
            .bind(&token.0[..])
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s
             WHERE s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
             ORDER BY s.created_at DESC, s.id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1
             WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL AND expires_at > ?1",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1
             WHERE user_id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR id <> ?3)",
        )
        .bind(millis(now))
        .bind(user.to_string())
        .bind(keep.map(|k| k.to_string()))
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError> {
        let cutoff = millis(now).saturating_sub(duration_millis(retention));
        let done = sqlx::query(
            "DELETE FROM sessions WHERE expires_at < ?1 OR (revoked_at IS NOT NULL AND revoked_at < ?1)",
        )
        .bind(cutoff)
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}
