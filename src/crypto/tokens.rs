//! Opaque tokens: refresh tokens and device tokens.
//!
//! A token is 256 random bits, base64url-encoded (43 characters). Only its SHA-256 is stored. A
//! refresh token names its owner before those bits (`<user id, base64url>.<random>`), so that a
//! store sharded by user, a Redis Cluster, finds its keys without a lookup; the stored hash covers
//! the whole token, so the owner part cannot be changed without making a token that does not
//! exist. The successor of a refresh token is derived from it with HMAC-SHA-256 under a
//! server-side key, so that a client that presents a just-rotated token within the reuse grace
//! can be handed the very same successor again although the server never stored it in the clear.
//! Without the key, a stolen rotated token does not reveal its successor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use crate::domain::UserId;
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

/// A fresh refresh token of `user`.
pub fn new_refresh_token(user: UserId) -> String {
    format!("{}.{}", owner_part(user), random_token())
}

fn owner_part(user: UserId) -> String {
    URL_SAFE_NO_PAD.encode(user.as_uuid().as_bytes())
}

/// The shape of a presented refresh token: `Some(owner)` for one that names its owner, `None`
/// inside for a token of the older form (bare random bits), which the SQL store still finds by
/// its hash. Anything else is not a refresh token of this server.
pub fn refresh_token_owner(token: &str) -> Option<Option<UserId>> {
    let Some((owner, random)) = token.split_once('.') else {
        return is_well_formed(token).then_some(None);
    };
    if !is_well_formed(random) || owner.len() != 22 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(owner).ok()?;
    uuid::Uuid::from_slice(&bytes).ok().map(|id| Some(UserId::from_uuid(id)))
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

    /// The token that replaces `presented`, a refresh token of `owner`, when it is rotated. A
    /// token of the older form (no owner) is replaced by one of that form, so that its session
    /// keeps one kind of token to its absolute end, with reuse detection intact.
    pub fn successor(&self, owner: Option<UserId>, presented: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return random_token();
        };
        mac.update(b"portcullis refresh successor\0");
        mac.update(presented.as_bytes());
        let random = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        match owner {
            Some(owner) => format!("{}.{random}", owner_part(owner)),
            None => random,
        }
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
    fn successors_are_stable_keyed_and_name_the_owner() {
        let key = SuccessorKey::new(vec![7; 32]);
        let other = SuccessorKey::new(vec![8; 32]);
        let user = Some(UserId::new());
        let token = new_refresh_token(UserId::new());
        assert_eq!(key.successor(user, &token), key.successor(user, &token));
        assert_ne!(key.successor(user, &token), other.successor(user, &token));
        assert_eq!(refresh_token_owner(&key.successor(user, &token)), Some(user));
        let older = random_token();
        assert_eq!(refresh_token_owner(&key.successor(None, &older)), Some(None));
    }

    #[test]
    fn refresh_tokens_name_their_owner_and_junk_names_no_one() {
        let user = UserId::new();
        let token = new_refresh_token(user);
        assert_eq!(token.len(), 22 + 1 + TOKEN_LEN);
        assert_eq!(refresh_token_owner(&token), Some(Some(user)));
        assert_eq!(refresh_token_owner(&random_token()), Some(None));
        let (owner, random) = token.split_once('.').unwrap_or_default();
        for junk in [
            "",
            ".",
            &format!("{owner}."),
            &format!(".{random}"),
            &format!("{owner}x.{random}"),
            &format!("{owner}.{random}.{random}"),
            &format!("{}.{random}", "!".repeat(22)),
        ] {
            assert_eq!(refresh_token_owner(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_successor_key_debug_reveals_no_key() {
        let key = SuccessorKey::new(b"successor-key-bytes".to_vec());
        let text = format!("{key:?}");
        assert!(!text.contains("successor-key-bytes") && !text.contains("115"), "{text}");
    }
}
