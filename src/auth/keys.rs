//! Access tokens: JWTs signed with a pinned algorithm and verified against a key ring.
//!
//! EdDSA (Ed25519) by default: signing keys are generated once, kept in the database, and shared
//! by every instance on it; the ring is reloaded periodically so that `keys rotate` reaches every
//! instance. HS256 when a secret is configured. Verification pins the algorithm (RFC 8725 §3.1),
//! requires `typ: at+jwt` (RFC 9068 §2.1) and a known `kid`, and checks `iss`, `aud`, `exp`, `nbf`
//! and that `iat` is not in the future.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuthError;
use crate::domain::Clock;
use crate::domain::{Amr, Role, SessionId, UserId};
use crate::store::{KeyStore, SigningKeyRecord, Timestamp};

/// How often every instance re-reads the signing keys; a rotation is in use within this time.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

const TOKEN_TYPE: &str = "at+jwt";

/// How far ahead of this clock, beyond the leeway, an `iat` may be. RFC 7519 §4.1.6 gives `iat`
/// no rule of its own, but a token "issued" in the future was not issued by us (our clocks agree
/// within the leeway): it is forged or made with a stolen key and a skewed clock to outlive its
/// `exp` check (RFC 8725 §3.10 asks verifiers to check every claim they rely on).
const MAX_IAT_AHEAD_SECS: u64 = 60;

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub roles: Vec<String>,
    /// What the session's login proved (RFC 8176).
    #[serde(default)]
    pub amr: Vec<String>,
}

/// What a verified access token says.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<Role>,
}

struct Ring {
    signing_kid: String,
    signing_key: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<serde_json::Value>,
}

enum Mode {
    EdDsa,
    Hs256(SecretSlice<u8>),
}

/// Issues and verifies access tokens.
pub struct AccessTokens {
    mode: Mode,
    issuer: String,
    audience: String,
    ttl: Duration,
    validation: Validation,
    ring: RwLock<Arc<Ring>>,
}

pub struct AccessTokenSettings {
    pub secret: Option<SecretSlice<u8>>,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    pub leeway: Duration,
}

/// The HS256 secret signs tokens: whoever reads it can mint any token, so it is never printed.
impl std::fmt::Debug for AccessTokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { secret, issuer, audience, ttl, leeway } = self;
        f.debug_struct("AccessTokenSettings")
            .field("secret", &secret.as_ref().map(|_| format_args!("[REDACTED]")))
            .field("issuer", issuer)
            .field("audience", audience)
            .field("ttl", ttl)
            .field("leeway", leeway)
            .finish()
    }
}

impl AccessTokens {
    /// Builds the ring, creating the first signing key if the database has none.
    pub async fn load(
        settings: AccessTokenSettings,
        store: &dyn KeyStore,
    ) -> Result<Self, AuthError> {
        let (mode, algorithm) = match settings.secret {
            Some(secret) => (Mode::Hs256(secret), Algorithm::HS256),
            None => (Mode::EdDsa, Algorithm::EdDSA),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway.as_secs();
        // RFC 7519 §4.1.5: a token must not be accepted before its `nbf` (within the leeway).
        validation.validate_nbf = true;
        if matches!(mode, Mode::EdDsa) {
            store.insert_first_signing_key(&new_signing_key()).await?;
        }
        let ring = build_ring(&mode, store, settings.ttl + settings.leeway).await?;
        Ok(Self {
            mode,
            issuer: settings.issuer,
            audience: settings.audience,
            ttl: settings.ttl,
            validation,
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// Re-reads the signing keys, picking up rotations made by the CLI or other instances.
    pub async fn reload(&self, store: &dyn KeyStore) -> Result<(), AuthError> {
        let ring = build_ring(&self.mode, store, self.ttl + self.validation_leeway()).await?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(())
    }

    fn validation_leeway(&self) -> Duration {
        Duration::from_secs(self.validation.leeway)
    }

    fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        roles: &[Role],
        amr: Amr,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let ring = self.ring();
        let mut header = Header::new(self.validation.algorithms[0]);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(ring.signing_kid.clone());
        let iat = now.timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid: session.to_string(),
            iat,
            exp: iat.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)),
            jti: uuid::Uuid::new_v4().to_string(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            amr: amr.names().into_iter().map(str::to_owned).collect(),
        };
        jsonwebtoken::encode(&header, &claims, &ring.signing_key)
            .map_err(|e| AuthError::Internal(format!("signing failed: {e}")))
    }

    /// Checks signature, algorithm, type, key id, issuer, audience, expiry, not-before, and that
    /// the token was not issued in the future.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Unauthorized)?;
        if header.alg != self.validation.algorithms[0] || header.typ.as_deref() != Some(TOKEN_TYPE)
        {
            return Err(AuthError::Unauthorized);
        }
        let ring = self.ring();
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| ring.verifying.get(kid))
            .ok_or(AuthError::Unauthorized)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| AuthError::Unauthorized)?;
        let claims = data.claims;
        // The same clock that `exp` and `nbf` were checked against.
        let latest_iat = jsonwebtoken::get_current_timestamp()
            .saturating_add(self.validation.leeway)
            .saturating_add(MAX_IAT_AHEAD_SECS);
        if u64::try_from(claims.iat).is_ok_and(|iat| iat > latest_iat) {
            return Err(AuthError::Unauthorized);
        }
        Ok(VerifiedToken {
            user: UserId::parse(&claims.sub).ok_or(AuthError::Unauthorized)?,
            session: SessionId::parse(&claims.sid).ok_or(AuthError::Unauthorized)?,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        })
    }

    /// The public keys that may still verify a live token, as a JWK set (RFC 7517). Empty with
    /// HS256: a shared secret is never published.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.ring().jwks })
    }
}

/// A new Ed25519 signing key, its `kid` the RFC 7638 thumbprint of its public key.
pub fn new_signing_key() -> SigningKeyRecord {
    let seed = super::tokens::random_bytes::<32>();
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    SigningKeyRecord {
        kid: thumbprint(&public),
        private_key: seed.to_vec(),
        created_at: crate::domain::SystemClock.now(),
    }
}

fn public_jwk_x(public: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(public)
}

fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, public_jwk_x(public));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

async fn build_ring(
    mode: &Mode,
    store: &dyn KeyStore,
    token_lifetime: Duration,
) -> Result<Ring, AuthError> {
    match mode {
        Mode::Hs256(secret) => hs256_ring(secret),
        Mode::EdDsa => eddsa_ring(&store.signing_keys().await?, token_lifetime),
    }
}

fn hs256_ring(secret: &SecretSlice<u8>) -> Result<Ring, AuthError> {
    let bytes = secret.expose_secret();
    // The kid is a MAC of a fixed label, so it names the secret without revealing anything of it.
    let mut mac = Hmac::<Sha256>::new_from_slice(bytes)
        .map_err(|e| AuthError::Internal(format!("bad HMAC key: {e}")))?;
    mac.update(b"portcullis key id");
    let kid = format!("hs256-{}", URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12]));
    let decoding =
        DecodingKey::from_secret(bytes).map_err(|e| AuthError::Internal(e.to_string()))?;
    let signing_key =
        EncodingKey::from_secret(bytes).map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(Ring {
        signing_kid: kid.clone(),
        signing_key,
        verifying: HashMap::from([(kid, decoding)]),
        jwks: Vec::new(),
    })
}

/// The newest key signs. An older key keeps verifying until every token it may have signed has
/// expired: its successor's age must exceed a token lifetime plus one reload interval.
fn eddsa_ring(keys: &[SigningKeyRecord], token_lifetime: Duration) -> Result<Ring, AuthError> {
    let newest = keys.first().ok_or_else(|| AuthError::Internal("no signing key".to_owned()))?;
    let now = crate::domain::SystemClock.now();
    let keep_for = chrono::Duration::from_std(token_lifetime + RELOAD_INTERVAL)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    let mut signing_key = None;
    for (index, key) in keys.iter().enumerate() {
        let still_needed = index == 0 || keys[index - 1].created_at + keep_for > now;
        if !still_needed {
            break;
        }
        let seed: [u8; 32] =
            key.private_key.as_slice().try_into().map_err(|_| {
                AuthError::Internal(format!("signing key {} is malformed", key.kid))
            })?;
        let signer = SigningKey::from_bytes(&seed);
        let public = signer.verifying_key().to_bytes();
        if index == 0 {
            let der = signer
                .to_pkcs8_der()
                .map_err(|e| AuthError::Internal(format!("encoding signing key: {e}")))?;
            signing_key = Some(EncodingKey::from_ed_der(der.as_bytes()));
        }
        verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&public));
        jwks.push(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": key.kid, "x": public_jwk_x(&public),
        }));
    }
    Ok(Ring {
        signing_kid: newest.kid.clone(),
        signing_key: signing_key.ok_or_else(|| AuthError::Internal("no signing key".to_owned()))?,
        verifying,
        jwks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_settings_debug_reveals_no_secret() {
        let settings = AccessTokenSettings {
            secret: Some(SecretSlice::from(b"hs256-secret-of-at-least-32-bytes!".to_vec())),
            issuer: "portcullis".to_owned(),
            audience: "portcullis".to_owned(),
            ttl: Duration::from_secs(900),
            leeway: Duration::ZERO,
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hs256-secret") && !text.contains("104"), "{text}");
        assert!(text.contains("secret: Some([REDACTED])"), "{text}");
    }
}
