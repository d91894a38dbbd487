//! The master key: 32 bytes, base64, from `MASTER_KEY` or from the file `MASTER_KEY_FILE` names.
//! A bad value is named but never echoed.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretSlice;

/// 32 bytes in standard or URL-safe base64 (padding optional).
pub(super) fn decode(value: &str) -> Result<SecretSlice<u8>, String> {
    let value = value.trim();
    let bytes = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
        .map_err(|_| "must be 32 bytes in base64".to_owned())?;
    if bytes.len() != 32 {
        return Err("must be 32 bytes in base64".to_owned());
    }
    Ok(SecretSlice::from(bytes))
}
