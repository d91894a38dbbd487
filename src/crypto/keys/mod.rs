//! Access tokens: JWTs signed with a pinned algorithm and verified against a key ring.
//!
//! EdDSA (Ed25519) by default: signing keys are generated once, kept in the database, and shared
//! by every instance on it; the ring is reloaded periodically so that `keys rotate` reaches every
//! instance. A new key is published in the JWKS `KEY_PUBLISH_AHEAD` before it signs, so that
//! verifiers caching the JWKS (PyJWT, jose, gateways) know it before its first token; an old key
//! stays published until the last token it signed has expired, and its private key is then
//! deleted. `KEY_ROTATE_EVERY` rotates on a schedule through the same path. HS256 when a secret
//! is configured. Verification pins the algorithm (RFC 8725 §3.1),
//! requires `typ: at+jwt` (RFC 9068 §2.1) and a known `kid`, and checks `iss`, `aud`, `exp`, `nbf`
//! and that `iat` is not in the future.
//!
//! A token that verified is remembered, keyed by a hash of the whole token, until its `exp`: the
//! next request with it skips the signature check (tens of microseconds of Ed25519) and the
//! claims' parsing. Only the token's own checks are skipped; its session is still looked up on
//! every request, so revocation stays immediate. The cache is bounded, and emptied when a key
//! leaves the ring, so a token stops being accepted with its key.

mod delegated;
mod ring;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CryptoError;
use crate::domain::{Amr, Clock, Role, SessionId, SignatureAlg, UserId, chrono_duration};
use crate::store::{KeyStore, SigningKeyRecord, Timestamp};
use ring::{Lead, Mode, Ring, build_ring, new_private_key, signing_key};

pub use delegated::{Delegation, IdTokenHint, access_token_hash};
pub use ring::new_signing_key;

/// How often every instance re-reads the signing keys; a rotation is in use within this time.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

const TOKEN_TYPE: &str = "at+jwt";

/// How far ahead of this clock, beyond the leeway, an `iat` may be. RFC 7519 §4.1.6 gives `iat`
/// no rule of its own, but a token "issued" in the future was not issued by us (our clocks agree
/// within the leeway): it is forged or made with a stolen key and a skewed clock to outlive its
/// `exp` check (RFC 8725 §3.10 asks verifiers to check every claim they rely on).
const MAX_IAT_AHEAD_SECS: u64 = 60;

/// The claims of an access token. A token of a client's own (`client_credentials`) has no
/// user: no `sid`, `roles`, `amr` or `auth_time`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// What the session's login proved (RFC 8176).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// RFC 9068 §2.2.
    #[serde(default)]
    pub client_id: String,
    /// When the session's login happened (OpenID Connect Core §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The scopes granted to a client (RFC 9068 §2.2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// What a verified access token says.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<Role>,
}

/// Issues and verifies access tokens.
pub struct AccessTokens {
    mode: Mode,
    issuer: String,
    audience: String,
    client_id: String,
    publish_ahead: Duration,
    rotate_every: Option<Duration>,
    ttl: Duration,
    validation: Validation,
    ring: RwLock<Arc<Ring>>,
    verified: quick_cache::sync::Cache<[u8; 32], Remembered>,
    /// Where rotation, publication and signing read the time.
    clock: Arc<dyn Clock>,
    /// When this instance first served each key in its JWKS: `None` for the keys it started
    /// with (in every JWKS it ever served). A key signs only once this instance has published it
    /// for `publish_ahead`, whatever its own `signs_at` says, so a verifier that cached this
    /// instance's JWKS knows the key before its first token, even when the key reached this
    /// instance's ring later than its `signs_at` (a reload interval longer than the lead).
    first_served: Mutex<HashMap<String, Option<Timestamp>>>,
}

/// The most verified tokens remembered: about 150 bytes each.
const REMEMBERED_TOKENS: usize = 32_768;

/// A token that verified, until its `exp`.
#[derive(Clone)]
struct Remembered {
    token: VerifiedToken,
    exp: i64,
}

pub struct AccessTokenSettings {
    pub secret: Option<SecretSlice<u8>>,
    pub issuer: String,
    pub audience: String,
    pub client_id: String,
    pub ttl: Duration,
    pub leeway: Duration,
    /// How long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// Scheduled rotation, if any.
    pub rotate_every: Option<Duration>,
}

/// The HS256 secret signs tokens: whoever reads it can mint any token, so it is never printed.
impl std::fmt::Debug for AccessTokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { secret, issuer, audience, client_id, ttl, leeway, publish_ahead, rotate_every } =
            self;
        f.debug_struct("AccessTokenSettings")
            .field("secret", &secret.as_ref().map(|_| format_args!("[REDACTED]")))
            .field("issuer", issuer)
            .field("audience", audience)
            .field("client_id", client_id)
            .field("ttl", ttl)
            .field("leeway", leeway)
            .field("publish_ahead", publish_ahead)
            .field("rotate_every", rotate_every)
            .finish()
    }
}

impl AccessTokens {
    /// Builds the ring, creating the first signing key if the database has none.
    pub async fn load(
        settings: AccessTokenSettings,
        store: &dyn KeyStore,
    ) -> Result<Self, CryptoError> {
        Self::load_with_clock(settings, store, Arc::new(crate::domain::SystemClock)).await
    }

    /// Like `load`, with rotation, publication and signing reading the time from `clock`.
    pub async fn load_with_clock(
        settings: AccessTokenSettings,
        store: &dyn KeyStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CryptoError> {
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
        let now = clock.now();
        // The key pairs sign ID tokens (and, without a secret, access tokens): one of each
        // algorithm, created by the first instance that finds none.
        let stored = store.signing_keys().await?;
        for alg in SignatureAlg::ALL {
            if !stored.iter().any(|k| k.alg == alg) {
                let key = signing_key(alg, generate(alg).await?, Duration::ZERO, now)?;
                store.insert_first_signing_key(&key).await?;
            }
        }
        let keys = store.signing_keys().await?;
        // The keys this instance starts with are in every JWKS it will serve.
        let first_served = keys.iter().map(|k| (k.kid.clone(), None)).collect();
        let lead = Lead { publish_ahead: settings.publish_ahead, first_served: &first_served };
        let ring = build_ring(&mode, &keys, settings.ttl + settings.leeway, now, &lead)?;
        Ok(Self {
            mode,
            issuer: settings.issuer,
            audience: settings.audience,
            client_id: settings.client_id,
            publish_ahead: settings.publish_ahead,
            rotate_every: settings.rotate_every,
            ttl: settings.ttl,
            validation,
            ring: RwLock::new(Arc::new(ring)),
            verified: quick_cache::sync::Cache::new(REMEMBERED_TOKENS),
            clock,
            first_served: Mutex::new(first_served),
        })
    }

    /// Re-reads the signing keys, picking up rotations made by the CLI or other instances,
    /// rotates when the schedule says so, and deletes the keys no live token can need.
    pub async fn reload(&self, store: &dyn KeyStore) -> Result<(), CryptoError> {
        self.rotate_on_schedule(store).await?;
        let keys = store.signing_keys().await?;
        let now = self.clock.now();
        let ring = {
            let mut first_served = self.first_served.lock().unwrap_or_else(|e| e.into_inner());
            // A key new to this instance is served from this ring on; a deleted one is forgotten.
            first_served.retain(|kid, _| keys.iter().any(|k| k.kid == *kid));
            for key in &keys {
                first_served.entry(key.kid.clone()).or_insert(Some(now));
            }
            let lead = Lead { publish_ahead: self.publish_ahead, first_served: &first_served };
            build_ring(&self.mode, &keys, self.ttl + self.validation_leeway(), now, &lead)?
        };
        for kid in &ring.expired {
            store.delete_signing_key(kid).await?;
            tracing::info!(%kid, "deleted a signing key no live token can need");
        }
        let ring = Arc::new(ring);
        let old = std::mem::replace(
            &mut *self.ring.write().unwrap_or_else(|e| e.into_inner()),
            ring.clone(),
        );
        if old.verifying.keys().any(|kid| !ring.verifying.contains_key(kid)) {
            self.verified.clear();
        }
        Ok(())
    }

    /// Re-reads the signing keys every `RELOAD_INTERVAL` on the injected clock, for as long as
    /// it runs: a rotation made by the command line or another instance is in use here within
    /// that time, and a scheduled one is made.
    pub async fn keep_reloading(&self, store: Arc<dyn KeyStore>) {
        loop {
            let next = self.clock.now() + chrono_duration(RELOAD_INTERVAL);
            self.clock.sleep_until(next).await;
            if let Err(error) = self.reload(store.as_ref()).await {
                let error = crate::domain::with_causes(&error);
                tracing::warn!(error, "could not reload the signing keys");
            }
        }
    }

    /// With `KEY_ROTATE_EVERY`, a new key of each algorithm once its newest is that old. Every
    /// instance takes the same private key from one secret named after the key it replaces (the
    /// first instance to ask creates it), so instances rotating together store one key, not one
    /// each.
    async fn rotate_on_schedule(&self, store: &dyn KeyStore) -> Result<(), CryptoError> {
        let Some(every) = self.rotate_every else { return Ok(()) };
        let keys = store.signing_keys().await?;
        let now = self.clock.now();
        for alg in SignatureAlg::ALL {
            let newest = keys.iter().filter(|k| k.alg == alg).max_by_key(|k| k.created_at);
            let Some(newest) = newest else { continue };
            if newest.created_at + chrono_duration(every) > now {
                continue;
            }
            // One algorithm's failure leaves the other's rotation, and the reload, to go on.
            if let Err(error) = self.rotate(store, alg, &newest.kid, now).await {
                let error = crate::domain::with_causes(&error);
                tracing::warn!(alg = alg.as_str(), error, "a scheduled key rotation failed");
            }
        }
        Ok(())
    }

    async fn rotate(
        &self,
        store: &dyn KeyStore,
        alg: SignatureAlg,
        newest: &str,
        now: Timestamp,
    ) -> Result<(), CryptoError> {
        let slot = format!("scheduled key after {newest}");
        let private_key = store.secret(&slot, &generate(alg).await?).await?;
        let key = signing_key(alg, private_key, self.publish_ahead, now)?;
        insert_rotated(store, &key).await
    }

    /// How long a new key is published before it signs (`KEY_PUBLISH_AHEAD`).
    pub fn publish_ahead(&self) -> Duration {
        self.publish_ahead
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
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

    /// `CLIENT_ID`: the first party's own client, whose tokens open the account API.
    pub fn first_party(&self) -> &str {
        &self.client_id
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        roles: &[Role],
        amr: Amr,
        auth_time: Timestamp,
        now: Timestamp,
    ) -> Result<String, CryptoError> {
        let ring = self.ring();
        let claims = self.session_claims(
            delegated::SessionClaims {
                user,
                session,
                roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
                client_id: &self.client_id,
                scope: None,
                amr,
                auth_time,
            },
            now,
        );
        self.sign_access(&ring, &claims)
    }

    /// Signs the access token of a client acting for itself (`client_credentials`): its `sub`
    /// is the client's id. Returns the token and its lifetime.
    pub fn issue_for_client(
        &self,
        client_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<(String, Duration), CryptoError> {
        let iat = now.timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: client_id.to_owned(),
            sid: None,
            iat,
            exp: self.exp_of(iat),
            jti: uuid::Uuid::new_v4().to_string(),
            roles: Vec::new(),
            amr: Vec::new(),
            client_id: client_id.to_owned(),
            auth_time: None,
            scope: Some(scope.to_owned()),
        };
        Ok((self.sign_access(&self.ring(), &claims)?, self.ttl))
    }

    fn exp_of(&self, iat: i64) -> i64 {
        iat.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX))
    }

    fn sign_access(&self, ring: &Ring, claims: &AccessClaims) -> Result<String, CryptoError> {
        let mut header = Header::new(ring.access.alg);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(ring.access.kid.clone());
        jsonwebtoken::encode(&header, claims, &ring.access.key)
            .map_err(|e| CryptoError::caused("signing failed", e))
    }

    /// Signs an ID token (OpenID Connect Core §2) with the newest key of `alg` that may sign.
    pub fn sign_id_token<T: Serialize>(
        &self,
        alg: SignatureAlg,
        claims: &T,
    ) -> Result<String, CryptoError> {
        let ring = self.ring();
        let signer = ring.id_tokens.get(&alg).ok_or(CryptoError::failed("no ID-token key"))?;
        let mut header = Header::new(signer.alg);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, claims, &signer.key)
            .map_err(|e| CryptoError::caused("signing failed", e))
    }

    /// Checks signature, algorithm, type, key id, issuer, audience, expiry, not-before, and that
    /// the token was not issued in the future.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, CryptoError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // `exp` is checked as jsonwebtoken checks it: against the system clock, with the leeway.
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(i64::MAX);
        if let Some(remembered) = self.verified.get(&key) {
            if remembered.exp.saturating_add(leeway) > now {
                return Ok(remembered.token);
            }
            self.verified.remove(&key);
            return Err(CryptoError::Rejected);
        }
        let (verified, exp) = self.verify_signed(token)?;
        self.verified.insert(key, Remembered { token: verified.clone(), exp });
        Ok(verified)
    }

    /// `verify` without the cache: the token, and its `exp`. Only a token of the first-party
    /// client opens the API: one issued to an OAuth client reads userinfo, never an account.
    fn verify_signed(&self, token: &str) -> Result<(VerifiedToken, i64), CryptoError> {
        let claims = self.decode(token)?;
        // A client's token always carries its scope; the first party's never does, so a client
        // registered under the first party's id still cannot open the API.
        if claims.client_id != self.client_id || claims.scope.is_some() {
            return Err(CryptoError::Rejected);
        }
        let sid = claims.sid.as_deref().ok_or(CryptoError::Rejected)?;
        let verified = VerifiedToken {
            user: UserId::parse(&claims.sub).ok_or(CryptoError::Rejected)?,
            session: SessionId::parse(sid).ok_or(CryptoError::Rejected)?,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        };
        Ok((verified, claims.exp))
    }

    /// The claims of a live access token of any client (for introspection), after every check
    /// `verify` makes of the token itself; `None` for any other string.
    pub fn introspect(&self, token: &str) -> Option<AccessClaims> {
        self.decode(token).ok()
    }

    /// Checks signature, algorithm, type, key id, issuer, audience, expiry, not-before, and that
    /// the token was not issued in the future.
    fn decode(&self, token: &str) -> Result<AccessClaims, CryptoError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| CryptoError::Rejected)?;
        if header.alg != self.validation.algorithms[0] || header.typ.as_deref() != Some(TOKEN_TYPE)
        {
            return Err(CryptoError::Rejected);
        }
        let ring = self.ring();
        // Only a key of the access tokens' own algorithm: an ID-token key never verifies one.
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| ring.verifying.get(kid))
            .filter(|(alg, _)| *alg == self.validation.algorithms[0])
            .map(|(_, key)| key)
            .ok_or(CryptoError::Rejected)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| CryptoError::Rejected)?;
        let claims = data.claims;
        // The same clock that `exp` and `nbf` were checked against.
        let latest_iat = jsonwebtoken::get_current_timestamp()
            .saturating_add(self.validation.leeway)
            .saturating_add(MAX_IAT_AHEAD_SECS);
        if u64::try_from(claims.iat).is_ok_and(|iat| iat > latest_iat) {
            return Err(CryptoError::Rejected);
        }
        Ok(claims)
    }

    /// The public keys that may still verify a live token, as a JWK set (RFC 7517). A shared
    /// HS256 secret is never published.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.ring().jwks })
    }
}

/// A new private key of `alg`, made off the async runtime: an RSA key takes tenths of a second.
async fn generate(alg: SignatureAlg) -> Result<Vec<u8>, CryptoError> {
    tokio::task::spawn_blocking(move || new_private_key(alg))
        .await
        .map_err(|e| CryptoError::caused("generating a key", e))?
}

/// Stores a key that a scheduled rotation or `keys rotate` made.
async fn insert_rotated(store: &dyn KeyStore, key: &SigningKeyRecord) -> Result<(), CryptoError> {
    match store.insert_signing_key(key).await {
        Ok(()) => {
            tracing::info!(kid = %key.kid, alg = key.alg.as_str(), "a new signing key is published");
            Ok(())
        }
        // Another instance stored the same key first.
        Err(crate::store::StoreError::Conflict) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests;
