//! Settings: loaded once at start from an optional TOML file and then the environment (the
//! environment wins), validated, and passed down. There is no global configuration.
//!
//! The settings are one tree, nested by concern (`http`, `storage`, `tokens`, `lockout`, …).
//! Each setting is one field written once: its serde name is its variable without the prefix,
//! lower-cased (the file's key), and its `with` format (see `formats`) is how it is parsed, how
//! `config check` shows it, and whether it is masked. The variable names, the "did you mean"
//! suggestions and `config check`'s output all come from that tree.
//!
//! Every value is checked here; a bad one is an error that names its variable, and nothing falls
//! back silently to a default. Unknown `PORTCULLIS_*` variables and unknown file keys are errors
//! too, so that a typo cannot leave a protection at its default unnoticed.
//!
//! No secret ever shows in a `Debug`: secrets are `SecretSlice`s, and URLs that may hold a
//! password are `SecretUrl`s or `DatabaseUrl`s, whose `Debug` masks it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::domain::Rate;

mod accounts;
mod formats;
mod http;
mod load;
mod log;
mod mail;
mod master_key;
mod parse;
mod posture;
mod storage;
mod tokens;
mod webauthn;

pub use accounts::{Accounts, Argon2Settings, Limits, Lockout, MAX_SESSIONS_CAP};
pub use http::{ClientIpHeader, Http, MAX_CONNECTIONS_CAP, TlsFiles};
pub use log::{Log, LogFormat};
pub use mail::{EmailVerification, MailSettings};
pub use parse::{parse_duration, parse_rate};
pub use posture::{Finding, Posture, Severity, posture};
pub use storage::{DatabaseUrl, SecretUrl, Secrets, Storage};
pub use tokens::Tokens;
pub use webauthn::WebauthnSettings;

const PREFIX: &str = "PORTCULLIS_";

/// The whole validated configuration, one group per concern. Its `Debug` masks every secret.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Settings {
    pub http: Http,
    pub storage: Storage,
    pub secrets: Secrets,
    pub tokens: Tokens,
    pub accounts: Accounts,
    pub lockout: Lockout,
    pub limits: Limits,
    pub argon2: Argon2Settings,
    pub mail: MailSettings,
    pub webauthn: WebauthnSettings,
    pub log: Log,
}

/// How `config check` shows one setting. Every `Value` reads back as the same setting, so the
/// output, less its comments, is configuration the program accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shown {
    /// The value as the parser reads it; empty for unset.
    Value(String),
    /// What cannot be shown as it is (a secret, a URL with its password hidden): printed as a
    /// comment, to be set again by hand.
    Masked(String),
    /// Unset, with what is used instead: an empty value after a comment that says it.
    Default(String),
}

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    fn new(name: &str, message: impl Into<String>) -> Self {
        Self { variable: format!("{PREFIX}{name}"), message: message.into() }
    }
}

impl Settings {
    /// Loads the file (if any), overlays the `PORTCULLIS_*` variables of `env`, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut settings = load::figment(file, env)?;
        settings.check()?;
        Ok(settings)
    }

    /// The rules between settings, once each has been read.
    fn check(&mut self) -> Result<(), ConfigError> {
        self.tokens.check()?;
        self.argon2.check()?;
        self.secrets.check()?;
        self.http.check()?;
        self.storage.check()?;
        self.webauthn.check()
    }

    /// The settings as `config check` prints them: every variable, in the forms the parsers
    /// read back (`30/min`, `15m`), secrets masked.
    pub fn describe(&self) -> BTreeMap<String, Shown> {
        let mut shown: BTreeMap<String, Shown> = leaves(self)
            .into_iter()
            .map(|(name, value)| {
                let value = serde_json::from_value(value).unwrap_or(Shown::Value(String::new()));
                (format!("{PREFIX}{}", name.to_uppercase()), value)
            })
            .collect();
        // A key read from `MASTER_KEY_FILE` is set by that variable, not this one.
        if self.secrets.master_key_file.is_some() {
            shown.insert(format!("{PREFIX}MASTER_KEY"), Shown::Value(String::new()));
        }
        shown
    }

    /// Every variable of the contract, without the prefix: the leaves of the tree.
    fn variables() -> Vec<String> {
        leaves(&Settings::default()).into_iter().map(|(name, _)| name.to_uppercase()).collect()
    }
}

/// The settings of `settings` by their serde names (the file's keys), each as its format shows
/// it: the groups' fields, flattened.
fn leaves(settings: &Settings) -> Vec<(String, serde_json::Value)> {
    let groups = match serde_json::to_value(settings) {
        Ok(serde_json::Value::Object(groups)) => groups,
        _ => return Vec::new(),
    };
    groups
        .into_iter()
        .filter_map(|(_, group)| match group {
            serde_json::Value::Object(fields) => Some(fields),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests;
