//! Signing keys and secrets sealed at rest: a `KeyStore` that seals every private key and secret
//! before the store below it writes it, and opens it after it reads it, so the database holds
//! only ciphertext under a master key kept outside it. Values found in clear (written before a
//! master key was configured) or under the previous master key are sealed again under the
//! current one when they are read, which is how a rotation completes.

use std::sync::Arc;

use async_trait::async_trait;

use super::Sealer;
use crate::store::{KeyStore, SigningKeyRecord, StoreError};

pub struct SealedKeys {
    inner: Arc<dyn KeyStore>,
    sealer: Sealer,
}

impl SealedKeys {
    pub fn new(inner: Arc<dyn KeyStore>, sealer: Sealer) -> Self {
        Self { inner, sealer }
    }

    fn seal(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer.seal(context, value).map_err(|e| StoreError::backend("seal", e))
    }

    fn open(&self, context: &str, stored: &[u8]) -> Result<(Vec<u8>, bool), StoreError> {
        self.sealer.open(context, stored).map_err(|e| StoreError::backend("open sealed value", e))
    }
}

/// The associated data of a signing key's seal: its kid, so a sealed key cannot be moved.
fn key_context(kid: &str) -> String {
    format!("signing key {kid}")
}

fn secret_context(name: &str) -> String {
    format!("secret {name}")
}

#[async_trait]
impl KeyStore for SealedKeys {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut keys = self.inner.signing_keys().await?;
        for key in &mut keys {
            let context = key_context(&key.kid);
            let (plain, reseal) = self.open(&context, &key.private_key)?;
            if reseal {
                let sealed = self.seal(&context, &plain)?;
                self.inner.replace_signing_key(&key.kid, &sealed).await?;
            }
            key.private_key = plain;
        }
        Ok(keys)
    }

    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let private_key = self.seal(&key_context(&key.kid), &key.private_key)?;
        self.inner.insert_first_signing_key(&SigningKeyRecord { private_key, ..key.clone() }).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let private_key = self.seal(&key_context(&key.kid), &key.private_key)?;
        self.inner.insert_signing_key(&SigningKeyRecord { private_key, ..key.clone() }).await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.inner.delete_signing_key(kid).await
    }

    async fn replace_signing_key(&self, kid: &str, private_key: &[u8]) -> Result<(), StoreError> {
        let sealed = self.seal(&key_context(kid), private_key)?;
        self.inner.replace_signing_key(kid, &sealed).await
    }

    async fn secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let context = secret_context(name);
        let stored = self.inner.secret(name, &self.seal(&context, candidate)?).await?;
        let (plain, reseal) = self.open(&context, &stored)?;
        if reseal {
            self.inner.replace_secret(name, &self.seal(&context, &plain)?).await?;
        }
        Ok(plain)
    }

    async fn replace_secret(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.replace_secret(name, &self.seal(&secret_context(name), value)?).await
    }
}
