//! `UserStore` on SQL: accounts and the devices they logged in from.

use async_trait::async_trait;
use futures_util::FutureExt;

use super::rows::{UserRow, roles_column};
use super::{SqlStore, failed, losses};
use crate::domain::{Email, Role, UserId};
use crate::store::codec::millis;
use crate::store::{
    AdminGuard, NewUser, StoreError, Timestamp, TokenHash, UserCursor, UserRecord, UserStore,
};

/// The account of the statement's row is not an enabled admin, or another enabled admin exists
/// (the account's id is `$n`): a change to it leaves the deployment an enabled admin. Roles are
/// stored as names joined by commas.
macro_rules! keeps_an_admin {
    ($id:literal) => {
        concat!(
            "(disabled <> 0 OR (',' || roles || ',') NOT LIKE '%,admin,%'
              OR EXISTS (SELECT 1 FROM users o WHERE o.id <> ",
            $id,
            " AND o.disabled = 0 AND (',' || o.roles || ',') LIKE '%,admin,%'))"
        )
    };
}

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, roles, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(roles_column(&user.roles))
        .bind(millis(user.created_at))
        .execute(&self.write)
        .await
        .map_err(failed("insert user"))?;
        Ok(())
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
        // Every login reads it: tried once more if its connection turns out lost.
        let email = email.as_str().to_owned();
        let row: Option<UserRow> = losses::read(&self.read, |connection| {
            sqlx::query_as(SQL).bind(email.clone()).fetch_optional(connection).boxed()
        })
        .await
        .map_err(failed("read user by email"))?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        let id = id.to_string();
        let row: Option<UserRow> = self
            .hot
            .read(|connection| {
                sqlx::query_as(SQL).bind(id.clone()).fetch_optional(connection).boxed()
            })
            .await
            .map_err(failed("read user by id"))?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("set password hash"))?;
        Ok(())
    }

    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email_verified = $1 WHERE id = $2")
            .bind(i32::from(verified))
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("set email verified"))?;
        Ok(())
    }

    async fn set_name(&self, id: UserId, name: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("set name"))?;
        Ok(())
    }

    async fn bump_credential_epoch(&self, id: UserId) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET credential_epoch = credential_epoch + 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("move the credential epoch on"))?;
        Ok(())
    }

    async fn list_users(
        &self,
        prefix: Option<&str>,
        after: Option<&UserCursor>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // Two statements, not one with `$1 IS NULL OR …`, so that PostgreSQL plans each on its
        // own: newest first along `users_newest`, or a prefix range along the email index.
        // Emails compare by code point on both databases (byte-wise "C" on PostgreSQL, BINARY
        // on SQLite), so `prefix <= email < prefix_end(prefix)` is exactly "starts with", and
        // a range the planner estimates from its histogram. The row comparison is the cursor.
        const ALL: &str = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE (created_at, id) < ($1, $2)
              ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        const PREFIXED: &str = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE (created_at, id) < ($1, $2)
                AND email >= $4 AND email < $5
              ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let (before, before_id) = match after {
            Some(cursor) => (millis(cursor.created_at), cursor.id.to_string()),
            None => (i64::MAX, String::new()),
        };
        let query = match prefix {
            Some(prefix) => sqlx::query_as(PREFIXED)
                .bind(before)
                .bind(before_id)
                .bind(i64::from(limit))
                .bind(prefix.to_owned())
                // Only a prefix of U+10FFFF alone has no end; the bound above it is as good.
                .bind(prefix_end(prefix).unwrap_or_else(|| format!("{prefix}\u{10FFFF}"))),
            None => sqlx::query_as(ALL).bind(before).bind(before_id).bind(i64::from(limit)),
        };
        let rows: Vec<UserRow> = query.fetch_all(&self.read).await.map_err(failed("list users"))?;
        rows.into_iter().map(UserRecord::try_from).collect()
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<AdminGuard, StoreError> {
        const SQL: &str = concat!(
            "UPDATE users SET disabled = $1 WHERE id = $2 AND ($1 = 0 OR ",
            keeps_an_admin!("$2"),
            ")"
        );
        let change = sqlx::query(SQL).bind(i32::from(disabled)).bind(id.to_string());
        self.guarded(id, change, "set disabled").await
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<AdminGuard, StoreError> {
        const SQL: &str = concat!(
            "UPDATE users SET roles = $1 WHERE id = $2 AND ($3 <> 0 OR ",
            keeps_an_admin!("$2"),
            ")"
        );
        let change = sqlx::query(SQL)
            .bind(roles_column(roles))
            .bind(id.to_string())
            .bind(i32::from(roles.contains(&Role::Admin)));
        self.guarded(id, change, "set roles").await
    }

    async fn is_last_admin(&self, id: UserId) -> Result<bool, StoreError> {
        const SQL: &str =
            concat!("SELECT COUNT(*) FROM users WHERE id = $1 AND NOT ", keeps_an_admin!("$1"));
        let count: i64 = sqlx::query_scalar(SQL)
            .bind(id.to_string())
            .fetch_one(&self.read)
            .await
            .map_err(failed("read admins"))?;
        Ok(count > 0)
    }

    async fn record_login(&self, id: UserId, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(millis(at))
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("record login"))?;
        Ok(())
    }

    async fn change_email(&self, id: UserId, email: &Email) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email = $1, email_verified = 1 WHERE id = $2")
            .bind(email.as_str())
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(failed("change email"))?;
        Ok(())
    }

    async fn delete_user(&self, id: UserId) -> Result<AdminGuard, StoreError> {
        // Devices, sessions (with their refresh tokens) and mail tokens go with it (ON DELETE
        // CASCADE); the audit trail keeps its events.
        const SQL: &str = concat!("DELETE FROM users WHERE id = $1 AND ", keeps_an_admin!("$1"));
        let change = sqlx::query(SQL).bind(id.to_string());
        self.guarded(id, change, "delete user").await
    }

    async fn remember_device(
        &self,
        user: UserId,
        device: &TokenHash,
        now: Timestamp,
        keep: u32,
    ) -> Result<(), StoreError> {
        let failed = failed("remember device");
        let mut tx = self.write.begin().await.map_err(&failed)?;
        // A token of another user is never taken over: the update only touches this user's row.
        sqlx::query(
            "INSERT INTO devices (token_hash, user_id, created_at, last_used_at)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT (token_hash) DO UPDATE SET last_used_at = $3
             WHERE devices.user_id = $2",
        )
        .bind(&device.0[..])
        .bind(user.to_string())
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        // Only the most recently used `keep` devices stay known.
        sqlx::query(
            "DELETE FROM devices WHERE user_id = $1 AND token_hash NOT IN
                 (SELECT token_hash FROM devices WHERE user_id = $1
                  ORDER BY last_used_at DESC, token_hash DESC LIMIT $2)",
        )
        .bind(user.to_string())
        .bind(i64::from(keep))
        .execute(&mut *tx)
        .await
        .map_err(&failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn is_known_device(
        &self,
        user: UserId,
        device: &TokenHash,
        used_since: Timestamp,
    ) -> Result<bool, StoreError> {
        let row: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM devices WHERE token_hash = $1 AND user_id = $2 AND last_used_at >= $3",
        )
        .bind(&device.0[..])
        .bind(user.to_string())
        .bind(millis(used_since))
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read device"))?;
        Ok(row.is_some())
    }

    async fn purge_devices(&self, unused_since: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM devices WHERE last_used_at < $1")
            .bind(millis(unused_since))
            .execute(&self.write)
            .await
            .map_err(failed("purge devices"))?;
        Ok(done.rows_affected())
    }

    async fn forget_devices(
        &self,
        user: UserId,
        keep: Option<&TokenHash>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM devices WHERE user_id = $1 AND ($2 IS NULL OR token_hash <> $2)",
        )
        .bind(user.to_string())
        .bind(keep.map(|k| k.0.to_vec()))
        .execute(&self.write)
        .await
        .map_err(failed("forget devices"))?;
        Ok(done.rows_affected())
    }
}

impl SqlStore {
    /// Runs `change`, a statement on the account `id` whose condition refuses to take the last
    /// enabled admin away, in a transaction that serialises such changes (see
    /// `Dialect::serialise_admin_changes`), and says which it was when it changed nothing.
    async fn guarded<'q>(
        &self,
        id: UserId,
        change: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        operation: &'static str,
    ) -> Result<AdminGuard, StoreError> {
        let failed = failed(operation);
        let mut tx = self.write.begin().await.map_err(&failed)?;
        if let Some(serialise) = self.dialect.serialise_admin_changes() {
            sqlx::query(serialise).execute(&mut *tx).await.map_err(&failed)?;
        }
        let done = change.execute(&mut *tx).await.map_err(&failed)?;
        let outcome = if done.rows_affected() > 0 {
            AdminGuard::Done
        } else {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(&failed)?;
            if exists.is_some() { AdminGuard::LastAdmin } else { AdminGuard::NoAccount }
        };
        tx.commit().await.map_err(failed)?;
        Ok(outcome)
    }
}

/// The least string above every string that starts with `prefix` in code point order (which is
/// byte order in UTF-8): the prefix with its last character incremented, such as `ada` → `adb`.
/// A bound the planner estimates from its histogram, where a bound of `prefix || U+10FFFF` looks
/// like a rare value and misleads it. `None` when no such string exists.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_its_last_character_incremented() {
        assert_eq!(prefix_end("ada").as_deref(), Some("adb"));
        assert_eq!(prefix_end("user1").as_deref(), Some("user2"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"), "past the surrogates");
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        for (prefix, inside) in [("ada", "ada@example.com"), ("é", "éa"), ("a-", "a-\u{10FFFF}")]
        {
            let end = prefix_end(prefix).unwrap_or_default();
            assert!(inside < end.as_str() && inside >= prefix, "{prefix} {inside} {end}");
        }
    }
}
