//! Tokens a user's authorization gives an OAuth client: its access tokens (the first party's
//! kind, with the client's `client_id` and `scope`), and what an ID token's `at_hash` is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
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

/// The claims of an access token of a user's session, for any client.
pub(super) struct SessionClaims<'a> {
    pub user: UserId,
    pub session: SessionId,
    pub roles: Vec<String>,
    pub client_id: &'a str,
    pub scope: Option<&'a str>,
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
        let claims = SessionClaims {
            user,
            session,
            roles: Vec::new(),
            client_id: delegation.client_id,
            scope: Some(delegation.scope),
            amr: delegation.amr,
            auth_time: delegation.auth_time,
        };
        self.sign_access(&self.ring(), &self.session_claims(claims, now))
    }

    /// The claims of an access token of a session, issued `now`.
    pub(super) fn session_claims(&self, of: SessionClaims<'_>, now: Timestamp) -> AccessClaims {
        let iat = now.timestamp();
        AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: of.user.to_string(),
            sid: Some(of.session.to_string()),
            iat,
            exp: self.exp_of(iat),
            jti: uuid::Uuid::new_v4().to_string(),
            roles: of.roles,
            amr: of.amr.names().into_iter().map(str::to_owned).collect(),
            client_id: of.client_id.to_owned(),
            auth_time: Some(of.auth_time.timestamp()),
            scope: of.scope.map(str::to_owned),
        }
    }
}

/// What an ID token of ours says of whom it was issued to, once its signature checks out.
#[derive(Debug, Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

impl AccessTokens {
    /// An `id_token_hint` (OpenID Connect Core §3.1.2.1, RP-Initiated Logout §2): one of our ID
    /// tokens, expired or not, with its signature, algorithm, type and issuer checked. `None`
    /// for anything else, an access token included, and for a token whose key has left the ring.
    pub fn id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::EdDSA)
            || header.typ.as_deref() != Some("JWT")
        {
            return None;
        }
        let ring = self.ring();
        let (alg, key) = header.kid.as_ref().and_then(|kid| ring.verifying.get(kid))?;
        if *alg != header.alg {
            return None;
        }
        let mut validation = Validation::new(*alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<IdTokenHint>(token, key, &validation).ok().map(|data| data.claims)
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
