//! `GrantStore` on SQL: one row per (user, client), its scopes space-separated.

use async_trait::async_trait;

use super::{SqlStore, failed};
use crate::domain::UserId;
use crate::store::codec::{from_millis, millis};
use crate::store::{
    GrantRecord, GrantStore, MAX_GRANTS_LISTED, StoreError, Timestamp, merged_scopes,
};

type GrantRow = (String, String, i64, i64);

fn record(
    (client_id, scopes, created_at, last_used_at): GrantRow,
) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        client_id,
        scopes: scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        created_at: from_millis(created_at)?,
        last_used_at: from_millis(last_used_at)?,
    })
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn put_grant(
        &self,
        user: UserId,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Two consents of one user to one client at the same moment may keep only one's new
        // scopes: the user is then asked again for the other's, and nothing is granted that
        // was not consented to.
        let old = self.grant(user, client_id).await?;
        let all = merged_scopes(old.as_ref().map_or(&[][..], |g| &g.scopes), scopes);
        sqlx::query(
            "INSERT INTO oauth_grants (user_id, client_id, scopes, created_at, last_used_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE
             SET scopes = excluded.scopes, last_used_at = excluded.last_used_at",
        )
        .bind(user.to_string())
        .bind(client_id)
        .bind(all.join(" "))
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("store grant"))?;
        Ok(())
    }

    async fn grant(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        let row: Option<GrantRow> = sqlx::query_as(
            "SELECT client_id, scopes, created_at, last_used_at FROM oauth_grants
             WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user.to_string())
        .bind(client_id)
        .fetch_optional(&self.write)
        .await
        .map_err(failed("read grant"))?;
        row.map(record).transpose()
    }

    async fn use_grant(
        &self,
        user: UserId,
        client_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE oauth_grants SET last_used_at = $3 WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user.to_string())
        .bind(client_id)
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(failed("use grant"))?;
        Ok(())
    }

    async fn grants_of(&self, user: UserId) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT client_id, scopes, created_at, last_used_at FROM oauth_grants
             WHERE user_id = $1 ORDER BY created_at, client_id LIMIT $2",
        )
        .bind(user.to_string())
        .bind(i64::try_from(MAX_GRANTS_LISTED).unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await
        .map_err(failed("list grants"))?;
        rows.into_iter().map(record).collect()
    }

    async fn delete_grant(&self, user: UserId, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_grants WHERE user_id = $1 AND client_id = $2")
            .bind(user.to_string())
            .bind(client_id)
            .execute(&self.write)
            .await
            .map_err(failed("delete grant"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_grants_of(&self, user: UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_grants WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("delete grants"))?;
        Ok(())
    }
}
