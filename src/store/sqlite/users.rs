//! `UserStore` on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, from_millis, map_error, millis, parse_id};
use crate::domain::{Email, Role, UserId};
use crate::store::{NewUser, StoreError, Timestamp, TokenHash, UserRecord, UserStore};

const USER_COLUMNS: &str = "id, email, password_hash, roles, created_at";

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    let roles: String = row.get("roles");
    Ok(UserRecord {
        id: parse_id(row.get("id"), UserId::parse)?,
        email: Email::from_trusted(row.get("email")),
        password_hash: row.get("password_hash"),
        roles: roles.split(',').filter_map(Role::parse).collect(),
        created_at: from_millis(row.get("created_at"))?,
    })
}

pub(crate) fn roles_column(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, roles, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(roles_column(&user.roles))
        .bind(millis(user.created_at))
        .execute(&self.writer)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?");
        let row = sqlx::query(&sql)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn remember_device(
        &self,
        user: UserId,
        device: &TokenHash,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO devices (token_hash, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&device.0[..])
            .bind(user.to_string())
            .bind(millis(now))
            .execute(&self.writer)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn is_known_device(&self, user: UserId, device: &TokenHash) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM devices WHERE token_hash = ? AND user_id = ?")
            .bind(&device.0[..])
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.is_some())
    }
}
