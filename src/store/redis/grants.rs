//! `GrantStore` on Redis: the user's hash `P{user}:grants`, one field per client holding its
//! scopes and times as JSON. A consent merges its scopes in one script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use super::{RedisStore, failed};
use crate::domain::UserId;
use crate::store::codec::{from_millis, millis};
use crate::store::{GrantRecord, GrantStore, MAX_GRANTS_LISTED, StoreError, Timestamp};

/// A grant as the hash holds it (times in milliseconds, as strings).
#[derive(Serialize, Deserialize)]
struct StoredGrant {
    scopes: String,
    created_at: String,
    last_used_at: String,
}

impl StoredGrant {
    fn record(self, client_id: String) -> Result<GrantRecord, StoreError> {
        let time = |text: &str| {
            text.parse::<i64>()
                .map_err(|_| StoreError::backend("read grant", "malformed grant in Redis"))
                .and_then(from_millis)
        };
        Ok(GrantRecord {
            client_id,
            scopes: self.scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            created_at: time(&self.created_at)?,
            last_used_at: time(&self.last_used_at)?,
        })
    }
}

/// KEYS[1]: the user's grants. ARGV: the client, its new scopes (space-separated), now. Adds
/// the scopes the grant lacks, keeping its first time.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local scopes, seen, created = {}, {}, ARGV[3]
if old then
  local g = cjson.decode(old)
  created = g.created_at
  for s in string.gmatch(g.scopes, '%S+') do
    if not seen[s] then seen[s] = true; table.insert(scopes, s) end
  end
end
for s in string.gmatch(ARGV[2], '%S+') do
  if not seen[s] then seen[s] = true; table.insert(scopes, s) end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({
  scopes = table.concat(scopes, ' '), created_at = created, last_used_at = ARGV[3]}))
return 1
",
    )
});

/// KEYS[1]: the user's grants. ARGV: the client, now. Moves its `last_used_at`.
static USE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local g = cjson.decode(old)
g.last_used_at = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(g))
return 1
",
    )
});

impl RedisStore {
    fn grants_key(&self, user: UserId) -> String {
        self.user_key(user, "grants")
    }
}

#[async_trait]
impl GrantStore for RedisStore {
    async fn put_grant(
        &self,
        user: UserId,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let _: i64 = PUT
            .key(self.grants_key(user))
            .arg(client_id)
            .arg(scopes.join(" "))
            .arg(millis(now).to_string())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("store grant"))?;
        Ok(())
    }

    async fn grant(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        let raw: Option<String> = self
            .connection()
            .hget(self.grants_key(user), client_id)
            .await
            .map_err(failed("read grant"))?;
        raw.map(|raw| decode(&raw)?.record(client_id.to_owned())).transpose()
    }

    async fn use_grant(
        &self,
        user: UserId,
        client_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let _: i64 = USE
            .key(self.grants_key(user))
            .arg(client_id)
            .arg(millis(now).to_string())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed("use grant"))?;
        Ok(())
    }

    async fn grants_of(&self, user: UserId) -> Result<Vec<GrantRecord>, StoreError> {
        let all: Vec<(String, String)> = self
            .connection()
            .hgetall(self.grants_key(user))
            .await
            .map_err(failed("list grants"))?;
        let mut grants = all
            .into_iter()
            .map(|(client, raw)| decode(&raw)?.record(client))
            .collect::<Result<Vec<_>, _>>()?;
        grants.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        grants.truncate(MAX_GRANTS_LISTED);
        Ok(grants)
    }

    async fn delete_grant(&self, user: UserId, client_id: &str) -> Result<bool, StoreError> {
        let removed: i64 = self
            .connection()
            .hdel(self.grants_key(user), client_id)
            .await
            .map_err(failed("delete grant"))?;
        Ok(removed > 0)
    }

    async fn delete_grants_of(&self, user: UserId) -> Result<(), StoreError> {
        let _: i64 =
            self.connection().del(self.grants_key(user)).await.map_err(failed("delete grants"))?;
        Ok(())
    }
}

fn decode(raw: &str) -> Result<StoredGrant, StoreError> {
    serde_json::from_str(raw)
        .map_err(|_| StoreError::backend("read grant", "malformed grant in Redis"))
}
