//! The cryptography the use cases rest on, kept apart from them: password hashing on threads of
//! its own, access-token signing with its key ring and rotation, opaque random tokens, and the
//! master key that seals secrets at rest, with every key derived from it by HKDF. What depends on
//! the time reads it from the injected `Clock`.

mod error;
mod hasher;
mod keyed;
pub mod keys;
mod seal;
mod sealed_keys;
pub mod tokens;

pub use error::CryptoError;
pub use hasher::{PasswordHasher, Verified};
pub use keyed::KeyedHasher;
pub use keys::{AccessTokenSettings, AccessTokens, Delegation, VerifiedToken, access_token_hash};
pub use seal::{MasterKey, SealError, Sealer};
pub use sealed_keys::SealedKeys;
pub use tokens::SuccessorKey;
