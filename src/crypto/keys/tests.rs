//! The access tokens' own checks.

use super::*;
use crate::store::sql::SqlStore;

fn settings() -> AccessTokenSettings {
    AccessTokenSettings {
        secret: None,
        issuer: "portcullis".to_owned(),
        audience: "portcullis".to_owned(),
        client_id: "portcullis".to_owned(),
        ttl: Duration::from_secs(900),
        leeway: Duration::ZERO,
        publish_ahead: Duration::from_secs(900),
        rotate_every: None,
    }
}

/// A remembered token is accepted only until its `exp`, and a token that differs from it in
/// any byte is verified afresh (and refused).
#[tokio::test]
async fn a_remembered_token_ends_with_its_exp() -> Result<(), CryptoError> {
    let dir = tempfile::tempdir().map_err(|e| CryptoError::caused("temporary directory", e))?;
    let store = SqlStore::open_file(&dir.path().join("keys.db")).await?;
    store.migrate().await?;
    let tokens = AccessTokens::load(settings(), &store).await?;
    let now = crate::domain::SystemClock.now();
    let (user, session) = (UserId::new(), SessionId::new());
    let token = tokens.issue(user, session, &[Role::User], Amr::default(), now, now)?;
    assert_eq!(tokens.verify(&token)?.session, session);
    assert_eq!(tokens.verified.len(), 1, "remembered");
    assert_eq!(tokens.verify(&token)?.user, user, "and accepted from memory");

    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).map_err(|e| CryptoError::caused("utf-8", e))?;
    assert!(tokens.verify(&altered).is_err());

    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let past = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(0) - 1;
    let mut remembered = tokens.verified.get(&key).ok_or(CryptoError::Rejected)?;
    remembered.exp = past;
    tokens.verified.insert(key, remembered);
    assert!(matches!(tokens.verify(&token), Err(CryptoError::Rejected)));
    assert!(tokens.verified.get(&key).is_none(), "forgotten once expired");
    Ok(())
}

#[test]
fn access_token_settings_debug_reveals_no_secret() {
    let settings = AccessTokenSettings {
        secret: Some(SecretSlice::from(b"hs256-secret-of-at-least-32-bytes!".to_vec())),
        ..settings()
    };
    let text = format!("{settings:?}");
    assert!(!text.contains("hs256-secret") && !text.contains("104"), "{text}");
    assert!(text.contains("secret: Some([REDACTED])"), "{text}");
}

/// An ID token of each algorithm verifies with the key the JWKS publishes under its `kid`, and
/// neither is ever taken as an access token, whatever its header says.
#[tokio::test]
async fn id_tokens_verify_with_the_published_keys_and_never_as_access_tokens()
-> Result<(), CryptoError> {
    let dir = tempfile::tempdir().map_err(|e| CryptoError::caused("temporary directory", e))?;
    let store = SqlStore::open_file(&dir.path().join("keys.db")).await?;
    store.migrate().await?;
    let tokens = AccessTokens::load(settings(), &store).await?;
    let now = crate::domain::SystemClock.now().timestamp();
    let claims = serde_json::json!({
        "iss": "portcullis", "aud": "portcullis", "sub": UserId::new().to_string(),
        "sid": SessionId::new().to_string(), "iat": now, "exp": now + 60, "roles": ["user"],
    });
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(tokens.jwks()).map_err(|e| CryptoError::caused("jwks", e))?;
    for (alg, jose) in
        [(SignatureAlg::Rs256, Algorithm::RS256), (SignatureAlg::EdDsa, Algorithm::EdDSA)]
    {
        let token = tokens.sign_id_token(alg, &claims)?;
        let header = jsonwebtoken::decode_header(&token).map_err(|_| CryptoError::Rejected)?;
        assert_eq!((header.alg, header.typ.as_deref()), (jose, Some("JWT")));
        let jwk =
            jwks.find(header.kid.as_deref().unwrap_or_default()).ok_or(CryptoError::Rejected)?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| CryptoError::Rejected)?;
        let mut validation = Validation::new(jose);
        validation.set_audience(&["portcullis"]);
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .map_err(|e| CryptoError::caused("an ID token that does not verify", e))?;
        assert!(matches!(tokens.verify(&token), Err(CryptoError::Rejected)), "{alg:?}");
    }
    // The RSA key itself, signing a token that claims to be an access token: refused, as only
    // a key of the access tokens' algorithm verifies one.
    let ring = tokens.ring();
    let rsa = &ring.id_tokens[&SignatureAlg::Rs256];
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(rsa.kid.clone());
    let forged = jsonwebtoken::encode(&header, &claims, &rsa.key)
        .map_err(|e| CryptoError::caused("signing", e))?;
    assert!(matches!(tokens.verify(&forged), Err(CryptoError::Rejected)));
    Ok(())
}
