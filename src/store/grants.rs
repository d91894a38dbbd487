//! The grant trait: the apps a user has authorised, and the scopes each was granted, kept where
//! the sessions live.

use async_trait::async_trait;

use super::{StoreError, Timestamp};
use crate::domain::UserId;

/// A user's consent to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub client_id: String,
    /// Every scope the user has granted the client, in the order first granted.
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
}

/// The most grants listed for one user: as many as there may be clients.
pub const MAX_GRANTS_LISTED: usize = 1_000;

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Records that `user` granted `scopes` to `client_id`, added to what it granted before
    /// (its first grant's time stays), and used now.
    async fn put_grant(
        &self,
        user: UserId,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// The user's grant to the client, if any.
    async fn grant(&self, user: UserId, client_id: &str)
    -> Result<Option<GrantRecord>, StoreError>;
    /// Marks the grant used now (a code issued under it).
    async fn use_grant(
        &self,
        user: UserId,
        client_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// The user's grants, oldest first, at most `MAX_GRANTS_LISTED`.
    async fn grants_of(&self, user: UserId) -> Result<Vec<GrantRecord>, StoreError>;
    /// Forgets the grant; false if there was none.
    async fn delete_grant(&self, user: UserId, client_id: &str) -> Result<bool, StoreError>;
    /// Forgets every grant of the user (an account deleted).
    async fn delete_grants_of(&self, user: UserId) -> Result<(), StoreError>;
}

/// `old` and then the scopes of `new` it lacks.
pub fn merged_scopes(old: &[String], new: &[String]) -> Vec<String> {
    let mut all = old.to_vec();
    for scope in new {
        if !all.contains(scope) {
            all.push(scope.clone());
        }
    }
    all
}
