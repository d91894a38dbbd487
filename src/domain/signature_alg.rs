//! The signature algorithms of the tokens portcullis signs with a key pair.

use serde::{Deserialize, Serialize};

/// A JWS algorithm of an asymmetric signing key (RFC 7518 §3.1, RFC 8037 §3.1). Access tokens
/// are signed with EdDSA; an OAuth client chooses RS256 (the default of OpenID Connect, which
/// every relying party verifies) or EdDSA for its ID tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SignatureAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SignatureAlg {
    /// Every algorithm, in the order the JWKS lists their keys.
    pub const ALL: [SignatureAlg; 2] = [SignatureAlg::EdDsa, SignatureAlg::Rs256];

    /// The name JOSE gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::SignatureAlg;

    #[test]
    fn names_round_trip_and_match_serde() {
        for alg in SignatureAlg::ALL {
            assert_eq!(SignatureAlg::parse(alg.as_str()), Some(alg));
            assert_eq!(serde_json::to_value(alg).unwrap(), alg.as_str());
        }
        assert_eq!(SignatureAlg::parse("rs256"), None);
        assert_eq!(SignatureAlg::parse("HS256"), None);
    }
}
