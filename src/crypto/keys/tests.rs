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
