//! `keys rotate`: a new signing key of each algorithm, written to the key store for every
//! instance to pick up.

use clap::Subcommand;

use crate::config::Settings;
use crate::crypto::keys;
use crate::domain::SignatureAlg;
use crate::startup::open_backends;

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key of each algorithm; old keys keep verifying until their tokens
    /// expire.
    Rotate,
}

pub(super) async fn rotate(settings: Settings) -> Result<(), Failure> {
    let backends = open_backends(&settings, true).await?;
    for alg in SignatureAlg::ALL {
        let key = keys::new_signing_key(alg, settings.tokens.key_publish_ahead)
            .map_err(|e| Failure::other(e.to_string()))?;
        backends.keys.insert_signing_key(&key).await.map_err(|e| Failure::other(e.to_string()))?;
        println!(
            "new {} signing key {}: in the JWKS of every instance within {} s, signing from {}",
            alg.as_str(),
            key.kid,
            keys::RELOAD_INTERVAL.as_secs(),
            key.signs_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    if settings.tokens.secret.is_some() {
        println!(
            "PORTCULLIS_JWT_SECRET is set: access tokens are signed with that secret; change the \
             secret to rotate it"
        );
    }
    Ok(())
}
