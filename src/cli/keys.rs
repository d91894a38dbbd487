//! `keys rotate`: a new signing key, written to the key store for every instance to pick up.

use clap::Subcommand;

use crate::config::Settings;
use crate::crypto::keys;
use crate::startup::open_backends;

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; old keys keep verifying until their tokens expire.
    Rotate,
}

pub(super) async fn rotate(settings: Settings) -> Result<(), Failure> {
    if settings.tokens.secret.is_some() {
        return Err(Failure::usage(
            "PORTCULLIS_JWT_SECRET is set: tokens are signed with that secret; change the secret \
             to rotate",
        ));
    }
    let backends = open_backends(&settings, true).await?;
    let key = keys::new_signing_key(settings.tokens.key_publish_ahead);
    backends.keys.insert_signing_key(&key).await.map_err(|e| Failure::other(e.to_string()))?;
    println!(
        "new signing key {}: in the JWKS of every instance within {} s, signing from {}",
        key.kid,
        keys::RELOAD_INTERVAL.as_secs(),
        key.signs_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}
