//! Secrets at rest: values sealed with an AEAD under a master key kept outside the database, so
//! that a copy of the database (a backup, a replica) cannot mint access tokens or forge refresh
//! successors (OWASP Cryptographic Storage Cheat Sheet, "Key Management").
//!
//! A sealed value is `MAGIC || key id (8) || nonce (24) || XChaCha20-Poly1305 ciphertext`. The
//! magic names the derivation: `pcS2`, the current one, takes every key from the master key with
//! HKDF-SHA256 (RFC 5869); `pcS1`, the first, took them with one SHA-256 over a label, and values
//! sealed that way are still opened, and sealed again under `pcS2` on their next read. The key id
//! (derived like the keys) says which master key sealed a value, so a value sealed under the
//! previous key still opens during a rotation and is then sealed again. The associated data binds
//! each value to the row it belongs to, so sealed values cannot be moved between rows. A value
//! without a magic is one stored before sealing existed (or without a master key): it is read as
//! it is and sealed on its next write.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

/// The magic of values sealed under keys derived with HKDF.
const MAGIC: &[u8; 4] = b"pcS2";
/// The magic of values sealed under the first derivation, read and sealed again.
const MAGIC_V1: &[u8; 4] = b"pcS1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
/// HKDF's salt: fixed and public, as RFC 5869 §3.1 allows; it separates this product's keys
/// from any other use of the same input.
const HKDF_SALT: &[u8] = b"portcullis master key";

/// A 32-byte master key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key derived from this one for `purpose`, so that sealing and signing never share a key:
    /// HKDF-SHA256 with a fixed salt and the purpose, under a version label, as the info.
    pub fn derive(&self, purpose: &str) -> Result<[u8; 32], SealError> {
        let mut okm = [0; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.0)
            .expand_multi_info(&[b"portcullis/v2/", purpose.as_bytes()], &mut okm)
            .map_err(|_| SealError::Derive)?;
        Ok(okm)
    }

    /// The key the first derivation gave for `purpose`: SHA-256 over a label, the purpose and the
    /// key. Only to open what was sealed or signed under it.
    pub fn derive_v1(&self, purpose: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"portcullis/");
        hash.update(purpose.as_bytes());
        hash.update([0]);
        hash.update(self.0);
        hash.finalize().into()
    }
}

/// The keys of one master key, derived once: the sealing key and key id under each derivation.
#[derive(Clone)]
struct Derived {
    seal: [u8; 32],
    id: [u8; KEY_ID_LEN],
    seal_v1: [u8; 32],
    id_v1: [u8; KEY_ID_LEN],
    master: MasterKey,
}

impl Derived {
    fn new(master: MasterKey) -> Result<Self, SealError> {
        let first = |key: [u8; 32]| {
            let digest = Sha256::digest(key);
            let mut id = [0; KEY_ID_LEN];
            id.copy_from_slice(&digest[..KEY_ID_LEN]);
            id
        };
        Ok(Self {
            seal: master.derive("seal")?,
            id: first(master.derive("key id")?),
            seal_v1: master.derive_v1("seal"),
            id_v1: first(master.derive_v1("key id")),
            master,
        })
    }

    /// The sealing key for a value of this magic and key id, if it is this master key's.
    fn key_for(&self, magic: &[u8], id: &[u8]) -> Option<&[u8; 32]> {
        match magic {
            m if m == MAGIC && id == self.id => Some(&self.seal),
            m if m == MAGIC_V1 && id == self.id_v1 => Some(&self.seal_v1),
            _ => None,
        }
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the value was sealed under a master key that is not configured")]
    UnknownKey,
    #[error("the sealed value is corrupt or belongs to another row")]
    Corrupt,
    #[error("the value is sealed but no master key is configured")]
    NoKey,
    #[error("no randomness for a nonce")]
    Random(#[source] getrandom::Error),
    #[error("sealing failed")]
    Seal,
    #[error("a key could not be derived from the master key")]
    Derive,
}

/// Seals and opens values under the current master key, and opens values sealed under the
/// previous one (or under the first derivation) so they can be sealed again. Without a key,
/// values are stored in clear.
#[derive(Clone, Default)]
pub struct Sealer {
    current: Option<Derived>,
    previous: Option<Derived>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sealing", &self.current.is_some())
            .field("previous", &self.previous.is_some())
            .finish()
    }
}

impl Sealer {
    pub fn new(current: Option<MasterKey>, previous: Option<MasterKey>) -> Result<Self, SealError> {
        Ok(Self {
            current: current.map(Derived::new).transpose()?,
            previous: previous.map(Derived::new).transpose()?,
        })
    }

    /// A key derived from the current master key for `purpose`, if there is one.
    pub fn derive(&self, purpose: &str) -> Result<Option<[u8; 32]>, SealError> {
        self.current.as_ref().map(|keys| keys.master.derive(purpose)).transpose()
    }

    /// The keys that earlier derivations and the previous master key gave for `purpose`: what
    /// was signed under them still verifies.
    pub fn former_keys(&self, purpose: &str) -> Result<Vec<[u8; 32]>, SealError> {
        let mut keys = Vec::new();
        for derived in self.current.iter().chain(&self.previous) {
            keys.push(derived.master.derive_v1(purpose));
        }
        if let Some(previous) = &self.previous {
            keys.push(previous.master.derive(purpose)?);
        }
        Ok(keys)
    }

    /// Whether values are sealed at all.
    pub fn is_sealing(&self) -> bool {
        self.current.is_some()
    }

    /// `value` sealed for the row named `context`, or `value` itself without a master key.
    pub fn seal(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(keys) = &self.current else { return Ok(value.to_vec()) };
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&keys.seal));
        let payload = Payload { msg: value, aad: context.as_bytes() };
        let sealed =
            cipher.encrypt(XNonce::from_slice(&nonce), payload).map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&keys.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of a stored value, and whether it should be sealed again (it is in clear,
    /// under the previous key or under the first derivation, and a current key is configured).
    pub fn open(&self, context: &str, stored: &[u8]) -> Result<(Vec<u8>, bool), SealError> {
        let (magic, rest) = stored.split_at(stored.len().min(MAGIC.len()));
        if magic != MAGIC && magic != MAGIC_V1 {
            return Ok((stored.to_vec(), self.current.is_some()));
        }
        if rest.len() < KEY_ID_LEN + NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        if self.current.is_none() && self.previous.is_none() {
            return Err(SealError::NoKey);
        }
        let current = self.current.as_ref().and_then(|keys| keys.key_for(magic, id));
        let previous = self.previous.as_ref().and_then(|keys| keys.key_for(magic, id));
        let key = current.or(previous).ok_or(SealError::UnknownKey)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
        let payload = Payload { msg: ciphertext, aad: context.as_bytes() };
        let plain =
            cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| SealError::Corrupt)?;
        let stale = magic != MAGIC || current.is_none();
        Ok((plain, stale && self.current.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    fn sealer(current: Option<u8>, previous: Option<u8>) -> Result<Sealer, SealError> {
        Sealer::new(current.map(key), previous.map(key))
    }

    /// A value as the first derivation sealed it, built from the format the module states.
    fn sealed_v1(master: &MasterKey, context: &str, value: &[u8]) -> Vec<u8> {
        let id = &Sha256::digest(master.derive_v1("key id"))[..KEY_ID_LEN];
        let nonce = [7; NONCE_LEN];
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&master.derive_v1("seal")));
        let payload = Payload { msg: value, aad: context.as_bytes() };
        let sealed = cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
        [&MAGIC_V1[..], id, &nonce, &sealed].concat()
    }

    #[test]
    fn a_sealed_value_opens_for_its_row_only() -> Result<(), SealError> {
        let sealer = sealer(Some(1), None)?;
        let sealed = sealer.seal("secret:a", b"the value")?;
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(9).any(|w| w == b"the value"), "no plaintext in the output");
        assert_eq!(sealer.open("secret:a", &sealed)?, (b"the value".to_vec(), false));
        assert!(matches!(sealer.open("secret:b", &sealed), Err(SealError::Corrupt)));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(sealer.open("secret:a", &tampered), Err(SealError::Corrupt)));
        assert_ne!(sealer.seal("secret:a", b"the value")?, sealed, "a fresh nonce every time");
        Ok(())
    }

    #[test]
    fn a_rotation_opens_old_values_and_asks_for_them_to_be_sealed_again() -> Result<(), SealError> {
        let sealed = sealer(Some(1), None)?.seal("k", b"v")?;
        let rotated = sealer(Some(2), Some(1))?;
        assert_eq!(rotated.open("k", &sealed)?, (b"v".to_vec(), true));
        assert_eq!(rotated.open("k", &rotated.seal("k", b"v")?)?, (b"v".to_vec(), false));
        let stranger = sealer(Some(3), None)?;
        assert!(matches!(stranger.open("k", &sealed), Err(SealError::UnknownKey)));
        assert!(matches!(Sealer::default().open("k", &sealed), Err(SealError::NoKey)));
        Ok(())
    }

    #[test]
    fn values_of_the_first_derivation_open_and_are_sealed_again() -> Result<(), SealError> {
        let old = sealed_v1(&key(1), "k", b"v");
        assert_eq!(sealer(Some(1), None)?.open("k", &old)?, (b"v".to_vec(), true));
        assert_eq!(sealer(Some(2), Some(1))?.open("k", &old)?, (b"v".to_vec(), true));
        assert!(matches!(sealer(Some(1), None)?.open("j", &old), Err(SealError::Corrupt)));
        assert!(matches!(sealer(Some(2), None)?.open("k", &old), Err(SealError::UnknownKey)));
        Ok(())
    }

    #[test]
    fn values_in_clear_are_read_and_sealed_once_a_key_exists() -> Result<(), SealError> {
        assert_eq!(Sealer::default().seal("k", b"v")?, b"v".to_vec());
        assert_eq!(Sealer::default().open("k", b"v")?, (b"v".to_vec(), false));
        assert_eq!(sealer(Some(1), None)?.open("k", b"v")?, (b"v".to_vec(), true));
        Ok(())
    }

    /// The derivation is HKDF-SHA256 (RFC 5869): this output was computed apart from the crate,
    /// with Python's `hmac` (extract with the salt, one expand block of the info).
    #[test]
    fn keys_are_derived_with_hkdf() -> Result<(), SealError> {
        let expected = "6c8df278524146ff5409392d7640c0ff61812b2a99aa945b6d6cc72ab166b490";
        let derived: String = key(1).derive("seal")?.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(derived, expected);
        Ok(())
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_version_and_debug_shows_nothing() -> Result<(), SealError>
    {
        assert_ne!(key(1).derive("seal")?, key(1).derive("audit head")?);
        assert_ne!(key(1).derive("seal")?, key(1).derive_v1("seal"));
        let former = sealer(Some(1), Some(2))?.former_keys("audit head")?;
        assert!(former.contains(&key(1).derive_v1("audit head")));
        assert!(former.contains(&key(2).derive("audit head")?));
        assert_eq!(format!("{:?}", key(7)), "MasterKey([REDACTED])");
        Ok(())
    }
}
