//! The key ring: which key signs, which keys verify and are published, and which are expired,
//! built afresh from the stored keys at each reload. Each algorithm has keys of its own, rotated
//! and published the same way: EdDSA keys sign access tokens and EdDSA ID tokens, RS256 keys
//! sign RS256 ID tokens.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::RELOAD_INTERVAL;
use crate::crypto::CryptoError;
use crate::domain::{SignatureAlg, chrono_duration};
use crate::store::{SigningKeyRecord, Timestamp};

/// The size of a new RSA key: 2048 bits, the size RFC 7518 §3.3 requires at least and every
/// relying party verifies.
const RSA_KEY_SIZE: aws_lc_rs::rsa::KeySize = aws_lc_rs::rsa::KeySize::Rsa2048;

/// A key that signs, and its id.
pub(super) struct Signer {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) key: EncodingKey,
}

pub(super) struct Ring {
    /// Signs access tokens: the HS256 secret when one is set, else the EdDSA signer.
    pub(super) access: Signer,
    /// Signs ID tokens, by algorithm; an algorithm without a stored key has none.
    pub(super) id_tokens: HashMap<SignatureAlg, Signer>,
    /// Every key that may still verify a live token, by kid, with its algorithm.
    pub(super) verifying: HashMap<String, (Algorithm, DecodingKey)>,
    pub(super) jwks: Vec<serde_json::Value>,
    /// Keys no live token can have been signed with: to delete.
    pub(super) expired: Vec<String>,
}

pub(super) enum Mode {
    EdDsa,
    Hs256(SecretSlice<u8>),
}

/// The JOSE algorithm of a key pair's signatures.
pub(super) fn jose(alg: SignatureAlg) -> Algorithm {
    match alg {
        SignatureAlg::EdDsa => Algorithm::EdDSA,
        SignatureAlg::Rs256 => Algorithm::RS256,
    }
}

/// A new private key of `alg`, as the store keeps it: an Ed25519 seed, or an RSA key's PKCS#8
/// document.
pub(super) fn new_private_key(alg: SignatureAlg) -> Result<Vec<u8>, CryptoError> {
    match alg {
        SignatureAlg::EdDsa => Ok(crate::crypto::tokens::random_bytes::<32>().to_vec()),
        SignatureAlg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(RSA_KEY_SIZE)
                .map_err(|e| CryptoError::caused("generating an RSA key", e))?;
            let der = pair.as_der().map_err(|e| CryptoError::caused("encoding an RSA key", e))?;
            Ok(der.as_ref().to_vec())
        }
    }
}

/// A new signing key of `alg` that signs `publish_ahead` from now.
pub fn new_signing_key(
    alg: SignatureAlg,
    publish_ahead: Duration,
) -> Result<SigningKeyRecord, CryptoError> {
    let now = crate::domain::Clock::now(&crate::domain::SystemClock);
    signing_key(alg, new_private_key(alg)?, publish_ahead, now)
}

/// The record of the key `private_key`, its `kid` the RFC 7638 thumbprint of its public key.
pub(super) fn signing_key(
    alg: SignatureAlg,
    private_key: Vec<u8>,
    publish_ahead: Duration,
    created_at: Timestamp,
) -> Result<SigningKeyRecord, CryptoError> {
    let kid = KeyPair::open(alg, &private_key)?.thumbprint();
    Ok(SigningKeyRecord {
        kid,
        alg,
        private_key,
        created_at,
        signs_at: created_at + chrono_duration(publish_ahead),
    })
}

/// A stored key opened: what signs, what verifies, and its public JWK.
struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key's members in RFC 7638's order (lexicographic), `kty` included.
    public: Vec<(&'static str, String)>,
}

impl KeyPair {
    fn open(alg: SignatureAlg, private_key: &[u8]) -> Result<Self, CryptoError> {
        let malformed = || CryptoError::failed("a stored signing key is malformed");
        match alg {
            SignatureAlg::EdDsa => {
                let seed: [u8; 32] = private_key.try_into().map_err(|_| malformed())?;
                let signer = SigningKey::from_bytes(&seed);
                let public = signer.verifying_key().to_bytes();
                let der = signer
                    .to_pkcs8_der()
                    .map_err(|e| CryptoError::caused("encoding signing key", e))?;
                Ok(Self {
                    encoding: EncodingKey::from_ed_der(der.as_bytes()),
                    decoding: DecodingKey::from_ed_der(&public),
                    public: vec![
                        ("crv", "Ed25519".to_owned()),
                        ("kty", "OKP".to_owned()),
                        ("x", URL_SAFE_NO_PAD.encode(public)),
                    ],
                })
            }
            SignatureAlg::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(private_key)
                    .map_err(|e| CryptoError::caused("a stored RSA key", e))?;
                // jsonwebtoken signs with the PKCS#1 key that the PKCS#8 document wraps.
                let info =
                    pkcs8::PrivateKeyInfoRef::try_from(private_key).map_err(|_| malformed())?;
                let public = pair.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                Ok(Self {
                    encoding: EncodingKey::from_rsa_der(info.private_key.as_bytes()),
                    decoding: DecodingKey::from_rsa_raw_components(&n, &e),
                    public: vec![
                        ("e", URL_SAFE_NO_PAD.encode(e)),
                        ("kty", "RSA".to_owned()),
                        ("n", URL_SAFE_NO_PAD.encode(n)),
                    ],
                })
            }
        }
    }

    fn thumbprint(&self) -> String {
        let members: Vec<String> =
            self.public.iter().map(|(name, value)| format!(r#""{name}":"{value}""#)).collect();
        let canonical = format!("{{{}}}", members.join(","));
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn jwk(&self, alg: SignatureAlg, kid: &str) -> serde_json::Value {
        let mut jwk: serde_json::Map<String, serde_json::Value> = self
            .public
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
            .collect();
        jwk.insert("alg".into(), alg.as_str().into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("kid".into(), kid.into());
        jwk.into()
    }
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
    let mut verifying = HashMap::new();
    let mut jwks = Vec::new();
    let mut expired = Vec::new();
    let mut id_tokens = HashMap::new();
    for alg in SignatureAlg::ALL {
        let of_alg: Vec<&SigningKeyRecord> = keys.iter().filter(|k| k.alg == alg).collect();
        if of_alg.is_empty() {
            continue;
        }
        let family = family(alg, &of_alg, token_lifetime, now, lead)?;
        verifying.extend(family.verifying);
        jwks.extend(family.jwks);
        expired.extend(family.expired);
        id_tokens.insert(alg, family.signer);
    }
    let access = match mode {
        Mode::Hs256(secret) => {
            let (signer, decoding) = hs256(secret)?;
            verifying.insert(signer.kid.clone(), (Algorithm::HS256, decoding));
            signer
        }
        Mode::EdDsa => {
            let signer = id_tokens
                .get(&SignatureAlg::EdDsa)
                .ok_or(CryptoError::failed("no EdDSA signing key"))?;
            Signer { kid: signer.kid.clone(), alg: signer.alg, key: signer.key.clone() }
        }
    };
    Ok(Ring { access, id_tokens, verifying, jwks, expired })
}

/// The HS256 signer, and what verifies its tokens. Never published.
fn hs256(secret: &SecretSlice<u8>) -> Result<(Signer, DecodingKey), CryptoError> {
    let bytes = secret.expose_secret();
    // The kid is a MAC of a fixed label, so it names the secret without revealing anything of it.
    let mut mac = Hmac::<Sha256>::new_from_slice(bytes)
        .map_err(|e| CryptoError::caused("bad HMAC key", e))?;
    mac.update(b"portcullis key id");
    let kid = format!("hs256-{}", URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..12]));
    let decoding =
        DecodingKey::from_secret(bytes).map_err(|e| CryptoError::caused("HS256 key", e))?;
    let key = EncodingKey::from_secret(bytes).map_err(|e| CryptoError::caused("HS256 key", e))?;
    Ok((Signer { kid, alg: Algorithm::HS256, key }, decoding))
}

/// The keys of one algorithm in the ring.
struct Family {
    signer: Signer,
    verifying: Vec<(String, (Algorithm, DecodingKey))>,
    jwks: Vec<serde_json::Value>,
    expired: Vec<String>,
}

/// The newest key that may sign (see `Lead::may_sign`) signs; a key that may not yet is
/// published (and verifies) already. An older key keeps verifying until every token it may have
/// signed has expired: the key that took over from it must have signed for longer than a token
/// lifetime plus one reload interval plus the lead (an instance that got the new key late
/// signs with the old one for up to that long after the new key's `signs_at`). Past that it is
/// expired, and deleted.
fn family(
    alg: SignatureAlg,
    keys: &[&SigningKeyRecord],
    token_lifetime: Duration,
    now: Timestamp,
    lead: &Lead<'_>,
) -> Result<Family, CryptoError> {
    let keep_for =
        chrono::Duration::from_std(token_lifetime + RELOAD_INTERVAL + lead.publish_ahead)
            .map_err(|e| CryptoError::caused("token lifetime", e))?;
    // Newest signing time first; a key whose time has not come is only published.
    let mut keys = keys.to_vec();
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
    let (mut jwks, mut verifying) = (Vec::new(), Vec::new());
    let mut publish = |key: &SigningKeyRecord| -> Result<EncodingKey, CryptoError> {
        let pair = KeyPair::open(alg, &key.private_key).inspect_err(|_| {
            tracing::error!(kid = %key.kid, "a stored signing key is malformed");
        })?;
        jwks.push(pair.jwk(alg, &key.kid));
        verifying.push((key.kid.clone(), (jose(alg), pair.decoding)));
        Ok(pair.encoding)
    };
    for key in upcoming.iter().filter(|k| k.kid != signer.kid) {
        publish(key)?;
    }
    let signing = publish(signer)?;
    let mut took_over = signer.signs_at;
    let mut expired = Vec::new();
    for key in older {
        if took_over + keep_for > now {
            publish(key)?;
        } else {
            expired.push(key.kid.clone());
        }
        took_over = key.signs_at;
    }
    let signer = Signer { kid: signer.kid.clone(), alg: jose(alg), key: signing };
    Ok(Family { signer, verifying, jwks, expired })
}
