//! Keyed hashes under a server secret: HMAC-SHA-256, for values that are random already
//! (recovery codes, decoy credential ids), where a slow password hash would add nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::CryptoError;

/// HMAC-SHA-256 keyed once, at start; each hash starts from a copy of the keyed state. Its
/// `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct KeyedHasher(Hmac<Sha256>);

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher(..)")
    }
}

impl KeyedHasher {
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        Hmac::<Sha256>::new_from_slice(key)
            .map(Self)
            .map_err(|_| CryptoError::failed("the keyed-hash key is unusable"))
    }

    /// The hash for `purpose` over `parts`, each length-prefixed so no two inputs collide.
    pub fn hash(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(b"portcullis/");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_differ_by_key_purpose_and_the_split_of_the_parts() -> Result<(), CryptoError> {
        let (one, two) = (KeyedHasher::new(&[1; 32])?, KeyedHasher::new(&[2; 32])?);
        let base = one.hash("code", &[b"ab", b"c"]);
        assert_eq!(base, one.hash("code", &[b"ab", b"c"]));
        assert_ne!(base, two.hash("code", &[b"ab", b"c"]));
        assert_ne!(base, one.hash("other", &[b"ab", b"c"]));
        assert_ne!(base, one.hash("code", &[b"a", b"bc"]));
        assert_eq!(format!("{one:?}"), "KeyedHasher(..)");
        Ok(())
    }
}
