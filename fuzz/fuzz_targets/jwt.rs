//! Access token verification with a fixed Ed25519 key, and jsonwebtoken's header parser: no
//! input panics, and no mutation of a real token verifies unless it is that very token.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use portcullis::crypto::{AccessTokenSettings, AccessTokens};
use portcullis::domain::{Amr, Role, SessionId, SignatureAlg, UserId};
use portcullis::store::{KeyStore, SigningKeyRecord, StoreError};

/// One fixed signing key, as the database would hold it.
struct FixedKey;

#[async_trait]
impl KeyStore for FixedKey {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Ok(vec![SigningKeyRecord {
            kid: "fuzz".to_owned(),
            alg: SignatureAlg::EdDsa,
            private_key: vec![7; 32],
            created_at: chrono::Utc::now(),
            signs_at: chrono::Utc::now(),
        }])
    }
    async fn insert_first_signing_key(&self, _: &SigningKeyRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn insert_signing_key(&self, _: &SigningKeyRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete_signing_key(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn replace_signing_key(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn secret(&self, _: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(candidate.to_vec())
    }
    async fn replace_secret(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The verifier and one token it issued.
fn tokens() -> Option<&'static (AccessTokens, String)> {
    static TOKENS: OnceLock<Option<(AccessTokens, String)>> = OnceLock::new();
    TOKENS
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
            let now = chrono::Utc::now();
            let settings = AccessTokenSettings {
                secret: None,
                issuer: "portcullis".to_owned(),
                audience: "portcullis".to_owned(),
                client_id: "portcullis".to_owned(),
                ttl: Duration::from_secs(3600),
                leeway: Duration::from_secs(0),
                publish_ahead: Duration::ZERO,
                rotate_every: None,
            };
            let tokens = runtime.block_on(AccessTokens::load(settings, &FixedKey)).ok()?;
            let issued = tokens
                .issue(UserId::new(), SessionId::new(), &[Role::User], Amr::PASSWORD, now, now)
                .ok()?;
            Some((tokens, issued))
        })
        .as_ref()
}

fuzz_target!(|token: &str| {
    let _ = jsonwebtoken::decode_header(token);
    let Some((tokens, issued)) = tokens() else { return };
    if tokens.verify(token).is_ok() {
        assert_eq!(token, issued, "a token that was never issued verified");
    }
    // The issued token with the fuzz input spliced into its payload or signature must fail.
    if !token.is_empty() && !issued.contains(token) {
        let forged = format!("{issued}{token}");
        assert!(tokens.verify(&forged).is_err(), "a lengthened token verified");
    }
});
