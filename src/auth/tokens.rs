//! Opaque tokens: refresh tokens and device tokens.
//!
//! A token is 256 random bits, base64url-encoded (43 characters). Only its SHA-256 is stored. The
//! successor of a refresh token is derived from it with HMAC-SHA-256 under a server-side key, so
//! that a client that presents a just-rotated token within the reuse grace can be handed the very
//! same successor again although the server never stored it in the clear. Without the key, a
//! stolen rotated token does not reveal its successor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use crate::store::TokenHash;

/// Length of an encoded token.
pub const TOKEN_LEN: usize = 43;

/// A fresh random token.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's CSPRNG does not fail on any supported platform once booted; if it
    // ever did, an all-zero secret must not be used, so stop the process.
    #[allow(clippy::panic)]
    if let Err(error) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random number generator failed: {error}");
    }
    bytes
}

/// Whether `token` has the shape of a token this server issues; anything else is refused
/// without touching a store.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Derives refresh-token successors.
pub struct SuccessorKey(SecretSlice<u8>);

/// Whoever holds the key can compute the successor of any stolen rotated token: never print it.
impl std::fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuccessorKey([REDACTED])")
    }
}

impl SuccessorKey {
    pub fn new(key: Vec<u8>) -> Self {
        Self(SecretSlice::from(key))
    }

    /// The token that replaces `presented` when it is rotated.
    pub fn successor(&self, presented: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return random_token();
        };
        mac.update(b"portcullis refresh successor\0");
        mac.update(presented.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert!(is_well_formed(&a));
        assert_ne!(a, b);
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&format!("{}!", &a[..42])));
    }

    #[test]
    fn successors_are_stable_keyed_and_well_formed() {
        let key = SuccessorKey::new(vec![7; 32]);
        let other = SuccessorKey::new(vec![8; 32]);
        let token = random_token();
        assert_eq!(key.successor(&token), key.successor(&token));
        assert_ne!(key.successor(&token), other.successor(&token));
        assert!(is_well_formed(&key.successor(&token)));
    }

    #[test]
    fn a_successor_key_debug_reveals_no_key() {
        let key = SuccessorKey::new(b"successor-key-bytes".to_vec());
        let text = format!("{key:?}");
        assert!(!text.contains("successor-key-bytes") && !text.contains("115"), "{text}");
    }
}
