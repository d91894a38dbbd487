//! `LockoutStore` on SQL: one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` per attempt, so
//! the count, the lock and the decision are one atomic step even with many writers (SQLite runs
//! one writer at a time; PostgreSQL holds the row's lock).

use std::time::Duration;

use async_trait::async_trait;

use super::rows::LockoutRow;
use super::{SqlStore, failed};
use crate::domain::PERMANENT_LOCK_MS;
use crate::store::codec::{duration_millis, millis, remaining};
use crate::store::{AttemptGate, LockKey, LockoutPolicy, LockoutStore, StoreError, Timestamp};

/// `$1` key, `$2` now, `$3` window, `$4` threshold, `$5` lock duration, `$6` most consecutive
/// failures, `$7` how long they are remembered, `$8` the permanent lock (times in milliseconds).
/// Every `SET` expression sees the row as it was, so a lock that is still running leaves the row
/// alone and answers 'locked'; a lock or window that has passed starts a fresh count, but not a
/// fresh count of consecutive failures.
const BEGIN_ATTEMPT: &str = "
INSERT INTO lockouts AS l
    (key, failures, window_start, locked_until, last_gate, consecutive, last_failure_at)
VALUES ($1, 1, $2, CASE WHEN 1 >= $6 THEN $8 WHEN 1 >= $4 THEN $2 + $5 END, 'counted', 1, $2)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE
        WHEN l.locked_until > $2 THEN l.failures
        WHEN l.locked_until IS NOT NULL OR l.window_start <= $2 - $3 THEN 1
        ELSE l.failures + 1 END,
    window_start = CASE
        WHEN l.locked_until > $2 THEN l.window_start
        WHEN l.locked_until IS NOT NULL OR l.window_start <= $2 - $3 THEN $2
        ELSE l.window_start END,
    consecutive = CASE
        WHEN l.locked_until > $2 THEN l.consecutive
        WHEN l.last_failure_at <= $2 - $7 THEN 1
        ELSE l.consecutive + 1 END,
    last_failure_at = CASE WHEN l.locked_until > $2 THEN l.last_failure_at ELSE $2 END,
    locked_until = CASE
        WHEN l.locked_until > $2 THEN l.locked_until
        WHEN (CASE WHEN l.last_failure_at <= $2 - $7 THEN 1
                   ELSE l.consecutive + 1 END) >= $6 THEN $8
        WHEN (CASE WHEN l.locked_until IS NOT NULL OR l.window_start <= $2 - $3 THEN 1
                   ELSE l.failures + 1 END) >= $4 THEN $2 + $5
        ELSE NULL END,
    last_gate = CASE WHEN l.locked_until > $2 THEN 'locked' ELSE 'counted' END
RETURNING locked_until, last_gate";

#[async_trait]
impl LockoutStore for SqlStore {
    async fn begin_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<AttemptGate, StoreError> {
        let now_ms = millis(now);
        let row: LockoutRow = sqlx::query_as(BEGIN_ATTEMPT)
            .bind(key.joined())
            .bind(now_ms)
            .bind(duration_millis(policy.window))
            .bind(i64::from(policy.threshold))
            .bind(duration_millis(policy.duration))
            .bind(i64::from(policy.max_failures))
            .bind(duration_millis(policy.memory))
            .bind(PERMANENT_LOCK_MS)
            .fetch_one(&self.write)
            .await
            .map_err(failed("count attempt"))?;
        Ok(match (row.last_gate.as_str(), row.locked_until) {
            ("locked", Some(until)) => {
                AttemptGate::Locked { retry_after: remaining(until, now_ms) }
            }
            (_, until) => AttemptGate::Proceed { locks: until.is_some() },
        })
    }

    /// Every `SET` expression sees the row as it was, so the lock is kept only if the counts
    /// without this attempt still reach the threshold or the most consecutive failures.
    async fn release_attempt(
        &self,
        key: &LockKey,
        policy: LockoutPolicy,
        _: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE lockouts SET
                 failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END,
                 consecutive = CASE WHEN consecutive > 0 THEN consecutive - 1 ELSE 0 END,
                 locked_until = CASE WHEN failures - 1 >= $2 OR consecutive - 1 >= $3
                                     THEN locked_until END
             WHERE key = $1",
        )
        .bind(key.joined())
        .bind(i64::from(policy.threshold))
        .bind(i64::from(policy.max_failures))
        .execute(&self.write)
        .await
        .map_err(failed("release attempt"))?;
        Ok(())
    }

    async fn clear(&self, key: &LockKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM lockouts WHERE key = $1")
            .bind(key.joined())
            .execute(&self.write)
            .await
            .map_err(failed("clear lockout"))?;
        Ok(())
    }

    async fn clear_group(&self, group: &str) -> Result<u64, StoreError> {
        let members = LockKey::member(group, "").joined();
        let done =
            sqlx::query("DELETE FROM lockouts WHERE key = $1 OR substr(key, 1, length($2)) = $2")
                .bind(group)
                .bind(members)
                .execute(&self.write)
                .await
                .map_err(failed("clear lockouts of a group"))?;
        Ok(done.rows_affected())
    }

    async fn locked_for(
        &self,
        key: &LockKey,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let now_ms = millis(now);
        let until: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT locked_until FROM lockouts WHERE key = $1 AND locked_until > $2",
        )
        .bind(key.joined())
        .bind(now_ms)
        .fetch_optional(&self.read)
        .await
        .map_err(failed("read lockout"))?;
        Ok(until.flatten().map(|until| remaining(until, now_ms)))
    }

    async fn purge_lockouts(
        &self,
        now: Timestamp,
        policy: LockoutPolicy,
    ) -> Result<u64, StoreError> {
        let now_ms = millis(now);
        let done = sqlx::query(
            "DELETE FROM lockouts
             WHERE (locked_until IS NULL OR locked_until <= $1) AND window_start <= $1 - $2
               AND last_failure_at <= $1 - $3",
        )
        .bind(now_ms)
        .bind(duration_millis(policy.window))
        .bind(duration_millis(policy.memory))
        .execute(&self.write)
        .await
        .map_err(failed("purge lockouts"))?;
        Ok(done.rows_affected())
    }
}
