//! The key trait: signing keys and server-side secrets, shared by every instance.

use async_trait::async_trait;

use super::{SigningKeyRecord, StoreError};

/// Signing keys and server-side secrets, shared by every instance on the same database.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Stores `key` only if no signing key of its algorithm exists yet, so that instances
    /// starting together agree on one first key of each.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Stores a new signing key, which becomes the newest.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Deletes a signing key no token it signed can still be live with.
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;
    /// Replaces the stored private key of `kid` (to seal it again under a new master key).
    async fn replace_signing_key(&self, kid: &str, private_key: &[u8]) -> Result<(), StoreError>;
    /// The secret called `name`, created from `candidate` if it does not exist yet; every caller
    /// gets the same value.
    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Replaces the stored value of the secret `name` (to seal it again).
    async fn replace_secret(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}
