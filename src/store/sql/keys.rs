//! `KeyStore` on SQL: signing keys and server-side secrets.

use async_trait::async_trait;

use super::rows::SigningKeyRow;
use super::{SqlStore, failed};
use crate::store::codec::millis;
use crate::store::{KeyStore, SigningKeyRecord, StoreError};

#[async_trait]
impl KeyStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows: Vec<SigningKeyRow> = sqlx::query_as(
            "SELECT kid, private_key, created_at FROM signing_keys
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.read)
        .await
        .map_err(failed("read signing keys"))?;
        rows.into_iter().map(SigningKeyRecord::try_from).collect()
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, created_at)
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(&key.kid)
        .bind(&key.private_key)
        .bind(millis(key.created_at))
        .execute(&self.write)
        .await
        .map_err(failed("insert first signing key"))?;
        Ok(())
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(&key.private_key)
            .bind(millis(key.created_at))
            .execute(&self.write)
            .await
            .map_err(failed("insert signing key"))?;
        Ok(())
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let failed = failed("read or create secret");
        sqlx::query(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.write)
        .await
        .map_err(&failed)?;
        // From the writer: on SQLite it has seen its own insert (or the one that won).
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await
            .map_err(failed)
    }
}
