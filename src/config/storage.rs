//! Where durable data lives: the data directory, the database, Redis; and the master key that
//! seals secrets at rest.
//!
//! The types here hold passwords and keys, so their `Debug` hides them: a URL's password is
//! masked, a key is redacted.

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;

use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};

use super::formats::{masked, optional_path, path, value_format};
use super::master_key::decode;
use super::parse::mask_url;
use super::{ConfigError, Shown};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Storage {
    #[serde(rename = "data_dir", with = "path")]
    pub data_dir: PathBuf,
    /// Unset: the embedded SQLite file in `data_dir` (see `Storage::check`).
    #[serde(rename = "database_url", with = "database_url")]
    pub database_url: DatabaseUrl,
    #[serde(rename = "redis_url", with = "redis_url")]
    pub redis_url: Option<SecretUrl>,
    /// Prefix of every Redis key, so deployments can share a Redis (an addition to the contract).
    #[serde(rename = "redis_prefix", with = "redis_prefix")]
    pub redis_prefix: String,
}

impl Default for Storage {
    fn default() -> Self {
        let data_dir = PathBuf::from("./portcullis-data");
        Self {
            database_url: DatabaseUrl::Embedded(data_dir.join(EMBEDDED_FILE)),
            data_dir,
            redis_url: None,
            redis_prefix: "portcullis:".to_owned(),
        }
    }
}

/// The embedded database's file name in the data directory.
const EMBEDDED_FILE: &str = "portcullis.db";

impl Storage {
    /// Places the embedded database in the data directory that was configured.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        if let DatabaseUrl::Embedded(path) = &mut self.database_url {
            *path = self.data_dir.join(EMBEDDED_FILE);
        }
        Ok(())
    }
}

/// Where durable data lives. Its `Debug` masks the password of a URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// The default: `portcullis.db` in the data directory, created with it.
    Embedded(PathBuf),
    /// A `sqlite:` URL given explicitly.
    Sqlite(String),
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded(path) => f.debug_tuple("Embedded").field(path).finish(),
            Self::Sqlite(url) => f.debug_tuple("Sqlite").field(&mask_url(url)).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&mask_url(url)).finish(),
        }
    }
}

/// A URL that may hold a password: its `Debug` masks it; `Deref` gives the URL itself.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Checks that `url` starts with one of `schemes`.
    pub(super) fn with_scheme(url: &str, schemes: &[&str]) -> Result<Self, String> {
        if schemes.iter().any(|scheme| url.starts_with(scheme)) {
            Ok(Self(url.to_owned()))
        } else {
            let (last, rest) = schemes.split_last().unwrap_or((&"", &[]));
            Err(format!("must start with {} or {last}", rest.join(", ")))
        }
    }
}

impl Deref for SecretUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&mask_url(&self.0), f)
    }
}

/// A URL as `config check` shows it: as it is, unless it holds a password.
pub(super) fn shown_url(url: Option<&str>) -> Shown {
    match url {
        Some(url) if mask_url(url) != url => Shown::Masked(mask_url(url)),
        Some(url) => Shown::Value(url.to_owned()),
        None => Shown::Value(String::new()),
    }
}

value_format!(
    /// `sqlite:…` or `postgres://…`; blank is the embedded default.
    database_url: DatabaseUrl = required_as_given(|url| {
        if url.trim().is_empty() {
            Ok(DatabaseUrl::Embedded(PathBuf::new()))
        } else if url.starts_with("sqlite:") {
            Ok(DatabaseUrl::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err("must start with sqlite: or postgres://".to_owned())
        }
    }),
    |url| match url {
        DatabaseUrl::Embedded(path) => {
            Shown::Default(format!("the embedded SQLite file {}", path.display()))
        }
        DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => shown_url(Some(url)),
    }
);
value_format!(
    /// Redis, or a Redis Cluster given by its seed nodes.
    redis_url: Option<SecretUrl> = optional(|url| {
        SecretUrl::with_scheme(url, &["redis://", "rediss://", "redis+cluster://"])
    }),
    |url| shown_url(url.as_deref())
);
value_format!(
    /// A brace would make the prefix the hash tag of every key, and put every key of a Redis
    /// Cluster in one slot.
    redis_prefix: String = required(|v| {
        let valid = v.len() <= 64
            && !v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}');
        if valid {
            Ok(v.to_owned())
        } else {
            Err("must be up to 64 characters, no spaces or braces".to_owned())
        }
    }),
    |v| Shown::Value(v.clone())
);

/// The key that seals secrets at rest, given as it is or by the file that holds it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Secrets {
    /// The 32-byte key that seals secrets at rest, from `MASTER_KEY` or `MASTER_KEY_FILE`.
    #[serde(rename = "master_key", with = "master_key")]
    pub master_key: Option<SecretSlice<u8>>,
    /// Where `master_key` was read from, when it came from a file.
    #[serde(rename = "master_key_file", with = "optional_path")]
    pub master_key_file: Option<PathBuf>,
    /// The key before a rotation: values sealed under it are read and sealed again.
    #[serde(rename = "master_key_previous", with = "master_key")]
    pub master_key_previous: Option<SecretSlice<u8>>,
}

impl Secrets {
    /// Reads the key from `MASTER_KEY_FILE`; both variables at once is an error.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.master_key_file else {
            return Ok(());
        };
        if self.master_key.is_some() {
            return Err(ConfigError::new(
                "MASTER_KEY",
                "set MASTER_KEY or MASTER_KEY_FILE, not both",
            ));
        }
        let content = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("MASTER_KEY_FILE", format!("cannot read {}: {e}", path.display()))
        })?;
        self.master_key =
            Some(decode(&content).map_err(|m| ConfigError::new("MASTER_KEY_FILE", m))?);
        Ok(())
    }
}

value_format!(
    /// 32 bytes in base64; a bad value is named but never echoed.
    master_key: Option<SecretSlice<u8>> = optional(decode), masked
);
