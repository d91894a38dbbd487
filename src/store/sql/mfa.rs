//! `MfaStore` on SQL: TOTP factors, recovery codes, passkeys and ceremonies in progress. Every
//! check that must succeed once (a time step, a recovery code, a counter, a challenge) is one
//! conditional `UPDATE` or `DELETE ... RETURNING`, so concurrent attempts get exactly one winner.

use async_trait::async_trait;

use super::rows::{ChallengeRow, PASSKEY_COLUMNS, PasskeyRow, TotpRow};
use super::{SqlStore, failed};
use crate::domain::UserId;
use crate::store::codec::{millis, parse_id};
use crate::store::{
    ChallengePurpose, ChallengeRecord, MfaStore, PasskeyRecord, StoreError, Timestamp, TokenHash,
    TotpRecord,
};

impl SqlStore {
    async fn insert_recovery_codes(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user: UserId,
        codes: &[TokenHash],
        failed: &impl Fn(sqlx::Error) -> StoreError,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut **tx)
            .await
            .map_err(failed)?;
        for code in codes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.to_string())
                .bind(&code.0[..])
                .execute(&mut **tx)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

#[async_trait]
impl MfaStore for SqlStore {
    async fn start_totp(
        &self,
        user: UserId,
        secret: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO totp_factors (user_id, secret, created_at, last_step)
             VALUES ($1, $2, $3, -1)
             ON CONFLICT (user_id) DO UPDATE SET secret = $2, created_at = $3, last_step = -1
             WHERE totp_factors.confirmed_at IS NULL",
        )
        .bind(user.to_string())
        .bind(secret)
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("start totp enrolment"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
        let row: Option<TotpRow> = sqlx::query_as(
            "SELECT secret, confirmed_at, last_step FROM totp_factors WHERE user_id = $1",
        )
        .bind(user.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read totp"))?;
        Ok(row.map(TotpRecord::from))
    }

    async fn totp_secrets(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<(UserId, Vec<u8>)>, StoreError> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT user_id, secret FROM totp_factors WHERE ($1 IS NULL OR user_id > $1)
             ORDER BY user_id LIMIT $2",
        )
        .bind(after.map(|u| u.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(failed("list totp secrets"))?;
        rows.into_iter()
            .map(|(user, secret)| Ok((parse_id(&user, UserId::parse)?, secret)))
            .collect()
    }

    async fn replace_totp_secret(&self, user: UserId, secret: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE totp_factors SET secret = $2 WHERE user_id = $1")
            .bind(user.to_string())
            .bind(secret)
            .execute(&self.write)
            .await
            .map_err(failed("reseal totp secret"))?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let failed = failed("confirm totp");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let done = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = $3, last_step = $2
             WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $2",
        )
        .bind(user.to_string())
        .bind(step)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        Self::insert_recovery_codes(&mut tx, user, recovery_codes, &failed).await?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = $2
             WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
        )
        .bind(user.to_string())
        .bind(step)
        .execute(&self.write)
        .await
        .map_err(failed("accept totp step"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_totp(&self, user: UserId) -> Result<bool, StoreError> {
        let failed = failed("remove totp");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let done = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        Self::insert_recovery_codes(&mut tx, user, &[], &failed).await?;
        tx.commit().await.map_err(failed)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[TokenHash],
    ) -> Result<(), StoreError> {
        let failed = failed("replace recovery codes");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        Self::insert_recovery_codes(&mut tx, user, codes, &failed).await?;
        tx.commit().await.map_err(failed)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user.to_string())
        .bind(&code.0[..])
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("use recovery code"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO passkeys
                 (id, user_id, credential_id, name, credential, sign_count, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&passkey.id)
        .bind(passkey.user.to_string())
        .bind(&passkey.credential_id)
        .bind(&passkey.name)
        .bind(&passkey.credential)
        .bind(i64::from(passkey.sign_count))
        .bind(millis(passkey.created_at))
        .execute(&self.write)
        .await
        .map_err(failed("add passkey"))?;
        Ok(())
    }

    async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<PasskeyRow> = sqlx::query_as(&sql)
            .bind(user.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(failed("list passkeys"))?;
        rows.into_iter().map(PasskeyRecord::try_from).collect()
    }

    async fn passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        let sql = format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1");
        let row: Option<PasskeyRow> = sqlx::query_as(&sql)
            .bind(credential_id)
            .fetch_optional(&self.read)
            .await
            .map_err(failed("read passkey"))?;
        row.map(PasskeyRecord::try_from).transpose()
    }

    async fn record_passkey_use(
        &self,
        id: &str,
        credential: &str,
        sign_count: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = $4
             WHERE id = $1 AND (sign_count < $3 OR (sign_count = 0 AND $3 = 0))",
        )
        .bind(id)
        .bind(credential)
        .bind(i64::from(sign_count))
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("record passkey use"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_passkey(&self, user: UserId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
            .bind(user.to_string())
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(failed("remove passkey"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_factors(&self, user: UserId) -> Result<u64, StoreError> {
        let failed = failed("remove second factors");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        let (totp, passkeys): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM totp_factors
                     WHERE user_id = $1 AND confirmed_at IS NOT NULL),
                    (SELECT COUNT(*) FROM passkeys WHERE user_id = $1)",
        )
        .bind(user.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(&failed)?;
        for sql in [
            "DELETE FROM totp_factors WHERE user_id = $1",
            "DELETE FROM recovery_codes WHERE user_id = $1",
            "DELETE FROM passkeys WHERE user_id = $1",
            "DELETE FROM challenges WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user.to_string()).execute(&mut *tx).await.map_err(&failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(u64::try_from(totp + passkeys).unwrap_or_default())
    }

    async fn put_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        record: &ChallengeRecord,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO challenges (id_hash, purpose, user_id, state, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id.0[..])
        .bind(purpose.as_str())
        .bind(record.user.map(|u| u.to_string()))
        .bind(&record.state)
        .bind(millis(expires_at))
        .execute(&self.write)
        .await
        .map_err(failed("store challenge"))?;
        Ok(())
    }

    async fn peek_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        now: Timestamp,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let row: Option<ChallengeRow> = sqlx::query_as(
            "SELECT user_id, state FROM challenges
             WHERE id_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(&id.0[..])
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read challenge"))?;
        row.map(ChallengeRecord::try_from).transpose()
    }

    async fn take_challenge(
        &self,
        id: &TokenHash,
        purpose: ChallengePurpose,
        now: Timestamp,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let row: Option<ChallengeRow> = sqlx::query_as(
            "DELETE FROM challenges WHERE id_hash = $1 AND purpose = $2 AND expires_at > $3
             RETURNING user_id, state",
        )
        .bind(&id.0[..])
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&self.write)
        .await
        .map_err(failed("take challenge"))?;
        row.map(ChallengeRecord::try_from).transpose()
    }

    async fn drop_challenges(&self, user: UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM challenges WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("drop challenges"))?;
        Ok(done.rows_affected())
    }

    async fn purge_challenges(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM challenges WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.write)
            .await
            .map_err(failed("purge challenges"))?;
        Ok(done.rows_affected())
    }
}
