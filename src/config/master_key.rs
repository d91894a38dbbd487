//! The master key: 32 bytes, base64, from `MASTER_KEY` or from the file `MASTER_KEY_FILE` names.
//! A bad value is named but never echoed.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretSlice;

use super::{ConfigError, Raw};

/// The configured master key, if any; both variables at once is an error.
pub(super) fn configured(raw: &Raw) -> Result<Option<SecretSlice<u8>>, ConfigError> {
    match (raw.optional("MASTER_KEY"), raw.optional("MASTER_KEY_FILE")) {
        (Some(_), Some(_)) => {
            Err(ConfigError::new("MASTER_KEY", "set MASTER_KEY or MASTER_KEY_FILE, not both"))
        }
        (Some(value), None) => decode("MASTER_KEY", value).map(Some),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("MASTER_KEY_FILE", format!("cannot read {path}: {e}"))
            })?;
            decode("MASTER_KEY_FILE", &content).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// 32 bytes in standard or URL-safe base64 (padding optional).
pub(super) fn decode(variable: &str, value: &str) -> Result<SecretSlice<u8>, ConfigError> {
    let value = value.trim();
    let bytes = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
        .map_err(|_| ConfigError::new(variable, "must be 32 bytes in base64"))?;
    if bytes.len() != 32 {
        return Err(ConfigError::new(variable, "must be 32 bytes in base64"));
    }
    Ok(SecretSlice::from(bytes))
}
