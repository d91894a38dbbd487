//! The OAuth client trait: the registry of the apps that sign their users in through portcullis.

use async_trait::async_trait;

use super::{StoreError, Timestamp};

/// A client as stored. The store keeps `registration` (the client object's settings, as JSON)
/// whole and never reads it; the secret is only ever a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub registration: String,
    pub secret_hash: Option<String>,
    /// The hash a rotation kept working, and until when.
    pub previous_secret: Option<(String, Timestamp)>,
    /// Owned by `CLIENTS_FILE`: the API may not change it.
    pub from_file: bool,
    pub created_at: Timestamp,
}

/// Where the listing of clients resumes: after this one, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCursor {
    pub created_at: Timestamp,
    pub client_id: String,
}

/// The registered clients. Each change is one statement, so concurrent admins see a whole
/// client before or after it.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a new client; `Conflict` if its id is taken.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Up to `limit` clients, newest first, after `after`.
    async fn list_clients(
        &self,
        after: Option<&ClientCursor>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError>;
    /// Replaces the registration of a client; false if there is none.
    async fn update_client(&self, client_id: &str, registration: &str) -> Result<bool, StoreError>;
    /// Replaces the secret's hash. With `keep_previous_until` the hash it replaces keeps working
    /// until then; without, it stops at once (and so does any hash kept by an earlier rotation).
    /// False if there is no such client.
    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        keep_previous_until: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Creates or replaces a client that `CLIENTS_FILE` owns (its creation time stays); false,
    /// and nothing changed, if a client of that id was made through the API.
    async fn put_file_client(&self, client: &ClientRecord) -> Result<bool, StoreError>;
    /// Deletes a client; false if there was none.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
}
