//! `SessionStore` on SQL: sessions and their refresh tokens.
//!
//! Rotation is one transaction whose first statement is the conditional `UPDATE` that claims the
//! presented token: of several concurrent rotations of the same token exactly one finds
//! `rotated_at IS NULL` and wins (SQLite runs one writer at a time; on PostgreSQL the others wait
//! on the row's lock and re-check the condition once the winner commits), and the others see it
//! rotated.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;

use super::rows::{RotationRow, SessionRow};
use super::{SqlStore, failed};
use crate::domain::{Amr, SessionId, UserId};
use crate::store::codec::{duration_millis, from_millis, millis, parse_id};
use crate::store::{
    NewSession, Rotation, SessionCursor, SessionRecord, SessionStore, StoreError, Timestamp,
    TokenHash,
};

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        session: &NewSession,
        max_sessions: u32,
    ) -> Result<u64, StoreError> {
        let failed = failed("create session");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let now = millis(session.created_at);
        let kind = session.kind.columns();
        sqlx::query(
            "INSERT INTO sessions
                 (id, user_id, created_at, last_used_at, expires_at, ends_at, ip, user_agent,
                  device_hash, amr, kind, client_id, scope, parent_id, auth_time)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(now)
        .bind(millis(session.expires_at.min(session.ends_at)))
        .bind(millis(session.ends_at))
        .bind(&session.ip)
        .bind(&session.user_agent)
        .bind(session.device.as_ref().map(|d| d.0.to_vec()))
        .bind(session.amr.to_column())
        .bind(kind.kind)
        .bind(kind.client_id)
        .bind(kind.scope)
        .bind(kind.parent_id)
        .bind(kind.auth_time)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.refresh_token.0[..])
        .bind(session.id.to_string())
        .bind(now)
        .bind(millis(session.expires_at.min(session.ends_at)))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        // Past the cap, the oldest live sessions end. The offset skips the newest `max`, the new
        // one included; the limit only satisfies SQLite, which wants one with an offset.
        let ended = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE id IN
                 (SELECT id FROM sessions
                  WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
                  ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4)",
        )
        .bind(session.user_id.to_string())
        .bind(now)
        .bind(i64::MAX)
        .bind(i64::from(max_sessions.max(1)))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(ended.rows_affected())
    }

    async fn rotate_refresh_token(
        &self,
        user: Option<UserId>,
        presented: &TokenHash,
        successor: &TokenHash,
        now: Timestamp,
        expires_at: Timestamp,
        grace: Duration,
    ) -> Result<Rotation, StoreError> {
        let failed = failed("rotate refresh token");
        let now_ms = millis(now);
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET rotated_at = $1, successor = $2
             WHERE token_hash = $3 AND rotated_at IS NULL AND expires_at > $1
               AND session_id IN
                   (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > $1
                      AND ($4 IS NULL OR user_id = $4))
             RETURNING session_id",
        )
        .bind(now_ms)
        .bind(&successor.0[..])
        .bind(&presented.0[..])
        .bind(user.map(|u| u.to_string()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(&failed)?;

        if let Some(session) = claimed {
            // Never past the session's absolute end, however often it is refreshed.
            let (user, expires_at, amr, login_at): (String, i64, String, i64) = sqlx::query_as(
                "UPDATE sessions SET last_used_at = $1,
                     expires_at = CASE WHEN ends_at < $2 THEN ends_at ELSE $2 END
                 WHERE id = $3
                 RETURNING user_id, expires_at, amr, created_at",
            )
            .bind(now_ms)
            .bind(millis(expires_at))
            .bind(&session)
            .fetch_one(&mut *tx)
            .await
            .map_err(&failed)?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&successor.0[..])
            .bind(&session)
            .bind(now_ms)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
            tx.commit().await.map_err(&failed)?;
            return Ok(Rotation::Rotated {
                session: parse_id(&session, SessionId::parse)?,
                user: parse_id(&user, UserId::parse)?,
                amr: Amr::from_column(&amr),
                login_at: from_millis(login_at)?,
            });
        }

        // Not claimable: find out why, still inside the write transaction.
        let row: Option<RotationRow> = sqlx::query_as(
            "SELECT t.session_id, s.user_id, s.amr, s.created_at AS login_at, t.rotated_at, t.successor, s.revoked_at,
                    s.expires_at AS session_expires_at,
                    (SELECT CASE WHEN n.rotated_at IS NULL THEN 1 ELSE 0 END
                       FROM refresh_tokens n WHERE n.token_hash = t.successor)
                        AS successor_current
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1 AND ($2 IS NULL OR s.user_id = $2)",
        )
        .bind(&presented.0[..])
        .bind(user.map(|u| u.to_string()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(&failed)?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        let (Some(rotated_at), None, true) =
            (row.rotated_at, row.revoked_at, row.session_expires_at > now_ms)
        else {
            return Ok(Rotation::Invalid);
        };
        let session = parse_id(&row.session_id, SessionId::parse)?;
        let user = parse_id(&row.user_id, UserId::parse)?;
        // A grace of 0s means none: not within the same millisecond, nor for a request whose
        // clock reading came before the rotation it lost to (instances racing on one token).
        let grace_ms = duration_millis(grace);
        let within_grace = grace_ms > 0 && now_ms - rotated_at < grace_ms;
        if within_grace
            && row.successor.as_deref() == Some(&successor.0[..])
            && row.successor_current == Some(1)
        {
            let (amr, login_at) = (Amr::from_column(&row.amr), from_millis(row.login_at)?);
            return Ok(Rotation::Grace { session, user, amr, login_at });
        }
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(&row.session_id)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Rotation::Reused { session, user })
    }

    async fn live_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
               AND s.user_id = $3"
        );
        let (id, now, user) = (id.to_string(), millis(now), user.to_string());
        let row: Option<SessionRow> = self
            .hot
            .read(|connection| {
                let query = sqlx::query_as(SQL).bind(id.clone()).bind(now).bind(user.clone());
                query.fetch_optional(connection).boxed()
            })
            .await
            .map_err(failed("read session"))?;
        row.map(SessionRecord::try_from).transpose()
    }

    async fn session_of_refresh_token(
        &self,
        user: Option<UserId>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.expires_at > $2
               AND s.revoked_at IS NULL AND s.expires_at > $2 AND ($3 IS NULL OR s.user_id = $3)"
        );
        let row: Option<SessionRow> = sqlx::query_as(SQL)
            .bind(&token.0[..])
            .bind(millis(now))
            .bind(user.map(|u| u.to_string()))
            .fetch_optional(&self.read)
            .await
            .map_err(failed("read session of refresh token"))?;
        row.map(SessionRecord::try_from).transpose()
    }

    async fn sessions_of(
        &self,
        user: UserId,
        now: Timestamp,
        after: Option<&SessionCursor>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        // Newest first; a page continues strictly after the cursor's (created_at, id).
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
               AND ($3 IS NULL OR s.created_at < $3 OR (s.created_at = $3 AND s.id < $4))
             ORDER BY s.created_at DESC, s.id DESC LIMIT $5"
        );
        let rows: Vec<SessionRow> = sqlx::query_as(SQL)
            .bind(user.to_string())
            .bind(millis(now))
            .bind(after.map(|c| millis(c.created_at)))
            .bind(after.map(|c| c.id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(failed("list sessions"))?;
        rows.into_iter().map(SessionRecord::try_from).collect()
    }

    async fn count_sessions(&self, user: UserId, now: Timestamp) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(user.to_string())
        .bind(millis(now))
        .fetch_one(&self.read)
        .await
        .map_err(failed("count sessions"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(millis(now))
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&self.write)
        .await
        .map_err(failed("revoke session"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_sessions_of(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1
               AND ($3 IS NULL OR id <> $3)",
        )
        .bind(millis(now))
        .bind(user.to_string())
        .bind(keep.map(|k| k.to_string()))
        .execute(&self.write)
        .await
        .map_err(failed("revoke sessions of user"))?;
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError> {
        let cutoff = millis(now).saturating_sub(duration_millis(retention));
        let done = sqlx::query(
            "DELETE FROM sessions
             WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&self.write)
        .await
        .map_err(failed("purge sessions"))?;
        Ok(done.rows_affected())
    }
}
