//! `MailStore` on SQL: tokens sent by mail, by their hash, and the outbox.
//!
//! A sender claims due messages by setting their lease in one conditional `UPDATE` (the
//! statement is the dialect's): on PostgreSQL it skips rows another sender has locked and
//! re-checks the lease on the rows it locks, so two instances never take the same message; on
//! SQLite the single writer serialises the claims.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::FromRow;

use super::{SqlStore, failed};
use crate::domain::{Email, UserId};
use crate::store::codec::{duration_millis, from_millis, millis, parse_id};
use crate::store::{
    EmailTokenRecord, MailStore, NewEmailToken, OutboxState, QueuedMail, StoreError, Timestamp,
    TokenHash, TokenPurpose,
};

#[derive(FromRow)]
struct TokenRow {
    user_id: String,
    address: String,
}

impl TryFrom<TokenRow> for EmailTokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(EmailTokenRecord {
            user: parse_id(&row.user_id, UserId::parse)?,
            address: Email::from_trusted(row.address),
        })
    }
}

#[derive(FromRow)]
struct MailRow {
    id: String,
    created_at: i64,
    attempts: i64,
    message: Vec<u8>,
}

impl TryFrom<MailRow> for QueuedMail {
    type Error = StoreError;

    fn try_from(row: MailRow) -> Result<Self, StoreError> {
        Ok(QueuedMail {
            id: row.id,
            created_at: from_millis(row.created_at)?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            message: row.message,
        })
    }
}

const INSERT_MAIL: &str = "INSERT INTO mail_outbox (id, created_at, due_at, attempts, message) VALUES ($1, $2, $2, 0, $3)";

#[async_trait]
impl MailStore for SqlStore {
    async fn issue_token(
        &self,
        token: &NewEmailToken,
        void_older: bool,
        mail: &QueuedMail,
    ) -> Result<(), StoreError> {
        let failed = failed("issue mail token");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        if void_older {
            sqlx::query(
                "UPDATE email_tokens SET used_at = $1
                 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(millis(token.created_at))
            .bind(token.user.to_string())
            .bind(token.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        }
        sqlx::query(
            "INSERT INTO email_tokens
                 (token_hash, user_id, purpose, address, created_at, expires_at, credential_epoch)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.hash.0[..])
        .bind(token.user.to_string())
        .bind(token.purpose.as_str())
        .bind(token.address.as_str())
        .bind(millis(token.created_at))
        .bind(millis(token.expires_at))
        .bind(token.epoch)
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        sqlx::query(INSERT_MAIL)
            .bind(&mail.id)
            .bind(millis(mail.created_at))
            .bind(&mail.message)
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError> {
        sqlx::query(INSERT_MAIL)
            .bind(&mail.id)
            .bind(millis(mail.created_at))
            .bind(&mail.message)
            .execute(&self.write)
            .await
            .map_err(failed("queue mail"))?;
        Ok(())
    }

    async fn peek_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT user_id, address FROM email_tokens
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
               AND credential_epoch =
                   (SELECT u.credential_epoch FROM users u WHERE u.id = email_tokens.user_id)",
        )
        .bind(&hash.0[..])
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read mail token"))?;
        row.map(EmailTokenRecord::try_from).transpose()
    }

    async fn spend_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<EmailTokenRecord>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "UPDATE email_tokens SET used_at = $1
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1
               AND credential_epoch =
                   (SELECT u.credential_epoch FROM users u WHERE u.id = email_tokens.user_id)
             RETURNING user_id, address",
        )
        .bind(millis(now))
        .bind(&hash.0[..])
        .bind(purpose.as_str())
        .fetch_optional(&self.write)
        .await
        .map_err(failed("spend mail token"))?;
        row.map(EmailTokenRecord::try_from).transpose()
    }

    async fn void_tokens(
        &self,
        user: UserId,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE email_tokens SET used_at = $1
             WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(millis(now))
        .bind(user.to_string())
        .bind(purpose.as_str())
        .execute(&self.write)
        .await
        .map_err(failed("void mail tokens"))?;
        Ok(done.rows_affected())
    }

    async fn purge_tokens(&self, now: Timestamp, retention: Duration) -> Result<u64, StoreError> {
        let before = millis(now) - duration_millis(retention);
        let done = sqlx::query("DELETE FROM email_tokens WHERE expires_at < $1 OR used_at < $1")
            .bind(before)
            .execute(&self.write)
            .await
            .map_err(failed("purge mail tokens"))?;
        Ok(done.rows_affected())
    }

    async fn claim_mail(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let now_ms = millis(now);
        let rows: Vec<MailRow> = sqlx::query_as(self.dialect.claim_mail())
            .bind(now_ms + duration_millis(lease))
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await
            .map_err(failed("claim mail"))?;
        rows.into_iter().map(QueuedMail::try_from).collect()
    }

    async fn remove_mail(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mail_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(failed("remove mail"))?;
        Ok(())
    }

    async fn defer_mail(&self, id: &str, due: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_outbox SET due_at = $1, lease_until = NULL WHERE id = $2")
            .bind(millis(due))
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(failed("defer mail"))?;
        Ok(())
    }

    async fn outbox_state(&self) -> Result<OutboxState, StoreError> {
        let (waiting, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM mail_outbox")
                .fetch_one(&self.read)
                .await
                .map_err(failed("read outbox"))?;
        Ok(OutboxState {
            waiting: u64::try_from(waiting).unwrap_or(0),
            oldest: oldest.map(from_millis).transpose()?,
        })
    }
}
