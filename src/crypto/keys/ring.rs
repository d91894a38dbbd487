//! The key ring: which key signs, which keys verify and are published, and which are expired,
//! built afresh from the stored keys at each reload.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::RELOAD_INTERVAL;
use crate::crypto::CryptoError;
use crate::domain::chrono_duration;
use crate::store::{SigningKeyRecord, Timestamp};

pub(super) struct Ring {
    pub(super) signing_kid: String,
    pub(super) signing_key: EncodingKey,
    pub(super) verifying: HashMap<String, DecodingKey>,
    pub(super) jwks: Vec<serde_json::Value>,
    /// Keys no live token can have been signed with: to delete.
    pub(super) expired: Vec<String>,
}

pub(super) enum Mode {
    EdDsa,
    Hs256(SecretSlice<u8>),
}

/// A new Ed25519 signing key that signs `publish_ahead` from now, its `kid` the RFC 7638
/// thumbprint of its public key.
pub fn new_signing_key(publish_ahead: Duration) -> SigningKeyRecord {
    let now = crate::domain::Clock::now(&crate::domain::SystemClock);
    signing_key_from_seed(crate::crypto::tokens::random_bytes::<32>(), publish_ahead, now)
}

pub(super) fn signing_key_from_seed(
    seed: [u8; 32],
    publish_ahead: Duration,
    created_at: Timestamp,
) -> SigningKeyRecord {
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    SigningKeyRecord {
        kid: thumbprint(&public),
        private_key: seed.to_vec(),
        created_at,
        signs_at: created_at + chrono_duration(publish_ahead),
    }
}

fn public_jwk_x(public: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(public)
}

fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, public_jwk_x(public));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// How long this instance must have published a key before it signs with it.
pub(super) struct Lead<'a> {
    pub(super) publish_ahead: Duration,
    pub(super) first_served: &'a HashMap<String, Option<Timestamp>>,
}

impl Lead<'_> {
    /// Whether `key` may sign at `now`: its time has come, and this instance has published it
    /// for `publish_ahead` (or since it started).
    fn may_sign(&self, key: &SigningKeyRecord, now: Timestamp) -> bool {
        let published_since = self.first_served.get(&key.kid).copied().flatten();
        key.signs_at <= now
            && published_since
                .is_none_or(|since| since + chrono_duration(self.publish_ahead) <= now)
    }
}

pub(super) fn build_ring(
    mode: &Mode,
    keys: &[SigningKeyRecord],
    token_lifetime: Duration,
    now: Timestamp,
    lead: &Lead<'_>,
) -> Result<Ring, CryptoError> {
    match mode {
        Mode::Hs256(secret) => hs256_ring(secret),
        Mode::EdDsa => eddsa_ring(keys, token_lifetime, now, lead),
    }
}

fn hs256_ring(secret: &SecretSlice<u8>) -> Result<Ring, CryptoError> {
    let bytes = secret.expose_secret();
    // The kid is a MAC of a fixed label, so it names the secret without revealing anything of it.
    let mut mac = Hmac::<Sha256>::new_from_slice(bytes)
        .map_err(|e| CryptoError::caused("bad HMAC key", e))?;
    mac.update(b"portcullis key id");
    let kid = format!("hs256-{}", URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12]));
    let decoding =
        DecodingKey::from_secret(bytes).map_err(|e| CryptoError::caused("HS256 key", e))?;
    let signing_key =
        EncodingKey::from_secret(bytes).map_err(|e| CryptoError::caused("HS256 key", e))?;
    Ok(Ring {
        signing_kid: kid.clone(),
        signing_key,
        verifying: HashMap::from([(kid, decoding)]),
        jwks: Vec::new(),
        expired: Vec::new(),
    })
}

/// The newest key that may sign (see `Lead::may_sign`) signs; a key that may not yet is
/// published (and verifies) already. An older key keeps verifying until every token it may have
/// signed has expired: the key that took over from it must have signed for longer than a token
/// lifetime plus one reload interval plus the lead (an instance that got the new key late
/// signs with the old one for up to that long after the new key's `signs_at`). Past that it is
/// expired, and deleted.
fn eddsa_ring(
    keys: &[SigningKeyRecord],
    token_lifetime: Duration,
    now: Timestamp,
    lead: &Lead<'_>,
) -> Result<Ring, CryptoError> {
    let keep_for =
        chrono::Duration::from_std(token_lifetime + RELOAD_INTERVAL + lead.publish_ahead)
            .map_err(|e| CryptoError::caused("token lifetime", e))?;
    // Newest signing time first; a key whose time has not come is only published.
    let mut keys: Vec<&SigningKeyRecord> = keys.iter().collect();
    keys.sort_by_key(|k| std::cmp::Reverse((k.signs_at, k.created_at)));
    let (signed, upcoming): (Vec<_>, Vec<_>) =
        keys.into_iter().partition(|k| lead.may_sign(k, now));
    // Without any key whose time has come (a clock set back), the one due first signs.
    let (signer, older) = match signed.split_first() {
        Some((signer, older)) => (*signer, older.to_vec()),
        None => {
            let first = upcoming.last().copied();
            (first.ok_or(CryptoError::failed("no signing key"))?, Vec::new())
        }
    };
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    let mut publish = |key: &SigningKeyRecord| -> Result<SigningKey, CryptoError> {
        let seed: [u8; 32] = key.private_key.as_slice().try_into().map_err(|_| {
            tracing::error!(kid = %key.kid, "a stored signing key is malformed");
            CryptoError::failed("a stored signing key is malformed")
        })?;
        let signer = SigningKey::from_bytes(&seed);
        let public = signer.verifying_key().to_bytes();
        verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&public));
        jwks.push(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": key.kid, "x": public_jwk_x(&public),
        }));
        Ok(signer)
    };
    for key in upcoming.iter().filter(|k| k.kid != signer.kid) {
        publish(key)?;
    }
    let signing = publish(signer)?;
    let mut expired = Vec::new();
    let mut took_over = signer.signs_at;
    for key in older {
        if took_over + keep_for > now {
            publish(key)?;
        } else {
            expired.push(key.kid.clone());
        }
        took_over = key.signs_at;
    }
    let der = signing.to_pkcs8_der().map_err(|e| CryptoError::caused("encoding signing key", e))?;
    Ok(Ring {
        signing_kid: signer.kid.clone(),
        signing_key: EncodingKey::from_ed_der(der.as_bytes()),
        verifying,
        jwks,
        expired,
    })
}
