//! `KeyStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, from_millis, map_error, millis};
use crate::store::{KeyStore, SigningKeyRecord, StoreError};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_key, created_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: row.get("kid"),
                    private_key: row.get("private_key"),
                    created_at: from_millis(row.get("created_at"))?,
                })
            })
            .collect()
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, created_at)
             SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(&key.kid)
        .bind(&key.private_key)
        .bind(millis(key.created_at))
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?, ?, ?)")
            .bind(&key.kid)
            .bind(&key.private_key)
            .bind(millis(key.created_at))
            .execute(&self.writer)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .map_err(map_error)
    }
}
