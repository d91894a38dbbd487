//! `KeyStore` on SQL: signing keys and server-side secrets.

use async_trait::async_trait;

use super::rows::SigningKeyRow;
use super::{SqlStore, failed};
use crate::domain::SignatureAlg;
use crate::store::codec::millis;
use crate::store::{KeyStore, SigningKeyRecord, StoreError};

#[async_trait]
impl KeyStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows: Vec<SigningKeyRow> = sqlx::query_as(
            "SELECT kid, alg, private_key, created_at, COALESCE(signs_at, created_at) AS signs_at
             FROM signing_keys ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.read)
        .await
        .map_err(failed("read signing keys"))?;
        rows.into_iter().map(SigningKeyRecord::try_from).collect()
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let failed = failed("insert first signing key");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        // A marker row decides which of several instances starting together stores its key: the
        // unique name makes the others wait for the first and then insert nothing (a bare
        // `WHERE NOT EXISTS` lets each of them insert on PostgreSQL, whose concurrent
        // transactions do not see each other's uncommitted rows).
        let marker = match key.alg {
            SignatureAlg::EdDsa => "first signing key".to_owned(),
            other => format!("first {} signing key", other.as_str()),
        };
        let won = sqlx::query(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(marker)
        .bind(key.kid.as_bytes())
        .execute(&mut *tx)
        .await
        .map_err(&failed)?
        .rows_affected()
            == 1;
        if won {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_key, created_at, signs_at)
                 SELECT $1, $5, $2, $3, $4 WHERE NOT EXISTS
                     (SELECT 1 FROM signing_keys WHERE alg = $5)",
            )
            .bind(&key.kid)
            .bind(&key.private_key)
            .bind(millis(key.created_at))
            .bind(millis(key.signs_at))
            .bind(key.alg.as_str())
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, created_at, signs_at)
             VALUES ($1, $5, $2, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.private_key)
        .bind(millis(key.created_at))
        .bind(millis(key.signs_at))
        .bind(key.alg.as_str())
        .execute(&self.write)
        .await
        .map_err(failed("insert signing key"))?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.write)
            .await
            .map_err(failed("delete signing key"))?;
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

    async fn replace_signing_key(&self, kid: &str, private_key: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
            .bind(private_key)
            .bind(kid)
            .execute(&self.write)
            .await
            .map_err(failed("replace signing key"))?;
        Ok(())
    }

    async fn replace_secret(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE secrets SET value = $1 WHERE name = $2")
            .bind(value)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(failed("replace secret"))?;
        Ok(())
    }
}
