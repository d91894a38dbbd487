//! Reading the settings: the TOML file and the environment, as text under the variables' names,
//! merged by figment (the environment wins) and read into each group of the tree.
//!
//! Both sources are checked against the tree's names first, so that an unknown variable or file
//! key is an error with the nearest known name, never ignored.

use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::Serialized;
use serde::de::DeserializeOwned;

use super::parse::nearest;
use super::{ConfigError, PREFIX, Settings};

/// Settings as text, by file key (the variable's name without the prefix, lower-cased).
type Texts = BTreeMap<String, String>;

/// Reads `file` and the `PORTCULLIS_*` variables of `env` into the tree; the rules between
/// settings are left to the caller.
pub(super) fn figment(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let known = Settings::variables();
    let from_file = match file {
        Some(path) => read_file(path, &known)?,
        None => Texts::new(),
    };
    let from_env = read_env(env, &known)?;
    let figment =
        Figment::new().merge(Serialized::defaults(from_file)).merge(Serialized::defaults(from_env));
    Ok(Settings {
        http: group(&figment)?,
        storage: group(&figment)?,
        secrets: group(&figment)?,
        tokens: group(&figment)?,
        accounts: group(&figment)?,
        lockout: group(&figment)?,
        limits: group(&figment)?,
        argon2: group(&figment)?,
        mail: group(&figment)?,
        webauthn: group(&figment)?,
        log: group(&figment)?,
    })
}

/// One group of the tree, read from the settings' flat namespace: a failure names the variable
/// of the field that failed.
fn group<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment.extract().map_err(|error: figment::Error| {
        let name = error.path.last().map(|key| key.to_uppercase()).unwrap_or_default();
        let message = match &error.kind {
            figment::error::Kind::Message(message) => message.clone(),
            other => other.to_string(),
        };
        ConfigError::new(&name, message)
    })
}

/// The `PORTCULLIS_*` variables of `env`, each a known name spelt exactly.
fn read_env(
    env: impl IntoIterator<Item = (String, String)>,
    known: &[String],
) -> Result<Texts, ConfigError> {
    let mut texts = Texts::new();
    for (key, value) in env {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if !known.iter().any(|k| k == name) {
            let message = unknown_setting(name, known, |k| format!("{PREFIX}{k}"));
            return Err(ConfigError::new(name, message));
        }
        texts.insert(name.to_lowercase(), value);
    }
    Ok(texts)
}

/// The file's settings as text: strings as they are, numbers written out, lists of strings
/// joined with commas (as the environment writes them).
fn read_file(path: &Path, known: &[String]) -> Result<Texts, ConfigError> {
    let file_error =
        |message: String| ConfigError { variable: format!("--config {}", path.display()), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
    let mut texts = Texts::new();
    for (key, value) in table {
        let name = key.to_uppercase();
        if !known.contains(&name) {
            let message = unknown_setting(&name, known, str::to_lowercase);
            return Err(file_error(format!("{key} {message}")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or(()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|()| file_error(format!("{key} must be a list of strings")))?
                .join(","),
            _ => return Err(file_error(format!("{key} must be a string or a number"))),
        };
        texts.insert(name.to_lowercase(), text);
    }
    Ok(texts)
}

/// "is not a known setting", with the nearest known name when there is one within a typo.
fn unknown_setting(name: &str, known: &[String], spelled: impl Fn(&str) -> String) -> String {
    match nearest(name, known.iter().map(String::as_str)) {
        Some(known) => format!("is not a known setting; did you mean {}?", spelled(known)),
        None => "is not a known setting".to_owned(),
    }
}
