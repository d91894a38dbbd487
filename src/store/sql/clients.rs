//! `ClientStore` on SQL: one row per client, its registration kept as JSON text.

use async_trait::async_trait;

use super::{SqlStore, failed};
use crate::store::codec::{from_millis, millis};
use crate::store::{ClientCursor, ClientRecord, ClientStore, StoreError, Timestamp};

macro_rules! columns {
    () => {
        "client_id, registration, secret_hash, previous_secret_hash, previous_secret_until, \
         from_file, created_at"
    };
}

type ClientRow = (String, String, Option<String>, Option<String>, Option<i64>, i64, i64);

fn record(row: ClientRow) -> Result<ClientRecord, StoreError> {
    let (client_id, registration, secret_hash, previous_hash, previous_until, from_file, created) =
        row;
    let previous_secret = match (previous_hash, previous_until) {
        (Some(hash), Some(until)) => Some((hash, from_millis(until)?)),
        _ => None,
    };
    Ok(ClientRecord {
        client_id,
        registration,
        secret_hash,
        previous_secret,
        from_file: from_file != 0,
        created_at: from_millis(created)?,
    })
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let (previous_hash, previous_until) = match &client.previous_secret {
            Some((hash, until)) => (Some(hash.as_str()), Some(millis(*until))),
            None => (None, None),
        };
        const INSERT: &str = concat!(
            "INSERT INTO oauth_clients (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        sqlx::query(INSERT)
            .bind(&client.client_id)
            .bind(&client.registration)
            .bind(client.secret_hash.as_deref())
            .bind(previous_hash)
            .bind(previous_until)
            .bind(i64::from(client.from_file))
            .bind(millis(client.created_at))
            .execute(&self.write)
            .await
            .map_err(failed("insert client"))?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        const SELECT: &str =
            concat!("SELECT ", columns!(), " FROM oauth_clients WHERE client_id = $1");
        let row: Option<ClientRow> = sqlx::query_as(SELECT)
            .bind(client_id)
            .fetch_optional(&self.read)
            .await
            .map_err(failed("read client"))?;
        row.map(record).transpose()
    }

    async fn list_clients(
        &self,
        after: Option<&ClientCursor>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let (before, before_id) = match after {
            Some(cursor) => (millis(cursor.created_at), cursor.client_id.clone()),
            None => (i64::MAX, String::new()),
        };
        const PAGE: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM oauth_clients WHERE (created_at, client_id) < ($1, $2)
              ORDER BY created_at DESC, client_id DESC LIMIT $3"
        );
        let rows: Vec<ClientRow> = sqlx::query_as(PAGE)
            .bind(before)
            .bind(before_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(failed("list clients"))?;
        rows.into_iter().map(record).collect()
    }

    async fn update_client(&self, client_id: &str, registration: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE oauth_clients SET registration = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(registration)
            .execute(&self.write)
            .await
            .map_err(failed("update client"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        keep_previous_until: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        // The right-hand sides read the row as it was, so the old hash moves to `previous`.
        let query = match keep_previous_until {
            Some(until) => sqlx::query(
                "UPDATE oauth_clients SET previous_secret_hash = secret_hash,
                   previous_secret_until = $3, secret_hash = $2 WHERE client_id = $1",
            )
            .bind(client_id)
            .bind(secret_hash)
            .bind(millis(until)),
            None => sqlx::query(
                "UPDATE oauth_clients SET previous_secret_hash = NULL,
                   previous_secret_until = NULL, secret_hash = $2 WHERE client_id = $1",
            )
            .bind(client_id)
            .bind(secret_hash),
        };
        let done = query.execute(&self.write).await.map_err(failed("replace client secret"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_file_client(&self, client: &ClientRecord) -> Result<bool, StoreError> {
        // A file client's secret is the file's: a rotation through the API is refused, so no
        // previous secret is ever kept for one.
        let done = sqlx::query(
            "INSERT INTO oauth_clients (client_id, registration, secret_hash, from_file, created_at)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (client_id) DO UPDATE SET registration = $2, secret_hash = $3,
               previous_secret_hash = NULL, previous_secret_until = NULL
             WHERE oauth_clients.from_file = 1",
        )
        .bind(&client.client_id)
        .bind(&client.registration)
        .bind(client.secret_hash.as_deref())
        .bind(millis(client.created_at))
        .execute(&self.write)
        .await
        .map_err(failed("put file client"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.write)
            .await
            .map_err(failed("delete client"))?;
        Ok(done.rows_affected() == 1)
    }
}
