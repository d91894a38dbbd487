//! Secrets at rest: values sealed with an AEAD under a master key kept outside the database, so
//! that a copy of the database (a backup, a replica) cannot mint access tokens or forge refresh
//! successors (OWASP Cryptographic Storage Cheat Sheet, "Key Management").
//!
//! A sealed value is `MAGIC || key id (8) || nonce (24) || XChaCha20-Poly1305 ciphertext`. The
//! key id (the first bytes of a hash of the key) says which master key sealed it, so a value
//! sealed under the previous key still opens during a rotation and is then sealed again. The
//! associated data binds each value to the row it belongs to, so sealed values cannot be moved
//! between rows. A value without the magic is one stored before sealing existed (or without a
//! master key): it is read as it is and sealed on its next write.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"pcS1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;

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

    /// A key derived from this one for `purpose`, so that sealing and signing never share a
    /// key: SHA-256 over a label, the purpose and the key. The master key is 32 uniformly random
    /// bytes, so one hash with a distinct label per purpose is a sound derivation (it is the
    /// expand step of HKDF, RFC 5869, without the extract step that non-uniform input needs).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"portcullis/");
        hash.update(purpose.as_bytes());
        hash.update([0]);
        hash.update(self.0);
        hash.finalize().into()
    }

    fn id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::digest(self.derive("key id"));
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
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
    #[error("sealing failed: {0}")]
    Seal(String),
}

/// Seals and opens values under the current master key, and opens values sealed under the
/// previous one during a rotation. Without a key, values are stored in clear.
#[derive(Clone, Default)]
pub struct Sealer {
    current: Option<(MasterKey, [u8; KEY_ID_LEN])>,
    previous: Option<(MasterKey, [u8; KEY_ID_LEN])>,
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
    pub fn new(current: Option<MasterKey>, previous: Option<MasterKey>) -> Self {
        let with_id = |key: MasterKey| {
            let id = key.id();
            (key, id)
        };
        Self { current: current.map(with_id), previous: previous.map(with_id) }
    }

    /// A key derived from the current master key for `purpose`, if there is one.
    pub fn derive(&self, purpose: &str) -> Option<[u8; 32]> {
        self.current.as_ref().map(|(key, _)| key.derive(purpose))
    }

    /// Whether values are sealed at all.
    pub fn is_sealing(&self) -> bool {
        self.current.is_some()
    }

    /// `value` sealed for the row named `context`, or `value` itself without a master key.
    pub fn seal(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((key, id)) = &self.current else { return Ok(value.to_vec()) };
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Seal(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key.derive("seal")));
        let payload = Payload { msg: value, aad: context.as_bytes() };
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|e| SealError::Seal(e.to_string()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of a stored value, and whether it should be sealed again (it is in clear
    /// or under the previous key, and a current key is configured).
    pub fn open(&self, context: &str, stored: &[u8]) -> Result<(Vec<u8>, bool), SealError> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok((stored.to_vec(), self.current.is_some()));
        };
        if rest.len() < KEY_ID_LEN + NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let (key, stale) = match (&self.current, &self.previous) {
            (Some((key, current)), _) if current == id => (key, false),
            (_, Some((key, previous))) if previous == id => (key, true),
            (None, None) => return Err(SealError::NoKey),
            _ => return Err(SealError::UnknownKey),
        };
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key.derive("seal")));
        let payload = Payload { msg: ciphertext, aad: context.as_bytes() };
        let plain =
            cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| SealError::Corrupt)?;
        Ok((plain, stale && self.current.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_for_its_row_only() -> Result<(), SealError> {
        let sealer = Sealer::new(Some(key(1)), None);
        let sealed = sealer.seal("secret:a", b"the value")?;
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
        let old = Sealer::new(Some(key(1)), None);
        let sealed = old.seal("k", b"v")?;
        let rotated = Sealer::new(Some(key(2)), Some(key(1)));
        assert_eq!(rotated.open("k", &sealed)?, (b"v".to_vec(), true));
        assert_eq!(rotated.open("k", &rotated.seal("k", b"v")?)?, (b"v".to_vec(), false));
        let stranger = Sealer::new(Some(key(3)), None);
        assert!(matches!(stranger.open("k", &sealed), Err(SealError::UnknownKey)));
        assert!(matches!(Sealer::default().open("k", &sealed), Err(SealError::NoKey)));
        Ok(())
    }

    #[test]
    fn values_in_clear_are_read_and_sealed_once_a_key_exists() -> Result<(), SealError> {
        assert_eq!(Sealer::default().seal("k", b"v")?, b"v".to_vec());
        assert_eq!(Sealer::default().open("k", b"v")?, (b"v".to_vec(), false));
        assert_eq!(Sealer::new(Some(key(1)), None).open("k", b"v")?, (b"v".to_vec(), true));
        Ok(())
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_debug_shows_nothing() {
        assert_ne!(key(1).derive("seal"), key(1).derive("audit head"));
        assert_eq!(format!("{:?}", key(7)), "MasterKey([REDACTED])");
    }
}
