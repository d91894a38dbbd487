//! Tokens a user's authorization gives an OAuth client: its access tokens (the first party's
//! kind, with the client's `client_id` and `scope`), and what an ID token's `at_hash` is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256, Sha512};

use super::{AccessClaims, AccessTokens};
use crate::crypto::CryptoError;
use crate::domain::{Amr, SessionId, SignatureAlg, Timestamp, UserId};

/// What a client's access token for a user says beyond the user.
pub struct Delegation<'a> {
    pub client_id: &'a str,
    pub scope: &'a str,
    pub amr: Amr,
    pub auth_time: Timestamp,
}

impl AccessTokens {
    /// Signs the access token of a client acting for a user, in the session of its grant. It
    /// carries no role: a client's token never opens `/v1/auth/*` or `/v1/admin/*`.
    pub fn issue_delegated(
        &self,
        user: UserId,
        session: SessionId,
        delegation: &Delegation<'_>,
        now: Timestamp,
    ) -> Result<String, CryptoError> {
        let iat = now.timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.to_string(),
            sid: Some(session.to_string()),
            iat,
            exp: self.exp_of(iat),
            jti: uuid::Uuid::new_v4().to_string(),
            roles: Vec::new(),
            amr: delegation.amr.names().into_iter().map(str::to_owned).collect(),
            client_id: delegation.client_id.to_owned(),
            auth_time: Some(delegation.auth_time.timestamp()),
            scope: Some(delegation.scope.to_owned()),
        };
        self.sign_access(&self.ring(), &claims)
    }
}

/// OpenID Connect Core §3.1.3.6: the left half of the hash of the access token, with the hash
/// of the ID token's algorithm (SHA-256 for RS256; SHA-512 for EdDSA on Ed25519, as relying
/// parties compute it), base64url.
pub fn access_token_hash(alg: SignatureAlg, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SignatureAlg::Rs256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        SignatureAlg::EdDsa => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core's example: the access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        // has the RS256 at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(access_token_hash(SignatureAlg::Rs256, token), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(access_token_hash(SignatureAlg::EdDsa, token).len(), 43);
    }
}
