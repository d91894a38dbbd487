//! How one setting is read and shown: a module per value format, for `#[serde(with = "…")]`.
//!
//! Every setting arrives as text (the environment's, or the file's turned into text, see
//! `load`). `deserialize` parses it with a parser of `parse`; `serialize` shows the value as a
//! `Shown`, in the form the same parser reads back, or masked. A field's format is thus its
//! parser, its `config check` form and its masking, written once on the field.
//!
//! Two ways to read: a *required* value is trimmed, and a failure quotes what was given
//! (`must be … (got "zero")`); an *optional* value is unset when blank, and a failure never quotes
//! it (it may be a URL with a password, or a secret).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretSlice};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::parse::{
    format_duration, format_rate, parse_cidrs, parse_duration, parse_non_empty, parse_origins,
    parse_positive_duration, parse_rate, parse_socket_addr, parse_u32,
};
use super::{Rate, Shown};

/// Defines a format module: its type, how it reads (`required` or `optional`, with a parser of
/// `&str`) and how it shows (a function of `&T` to `Shown`).
macro_rules! value_format {
    ($(#[$doc:meta])* $name:ident: $ty:ty = $read:ident($parse:expr), $show:expr) => {
        $(#[$doc])*
        pub(super) mod $name {
            #[allow(unused_imports)]
            use super::*;

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                $crate::config::formats::$read(d, $parse)
            }

            pub fn serialize<S: serde::Serializer>(value: &$ty, s: S) -> Result<S::Ok, S::Error> {
                let show: fn(&$ty) -> $crate::config::Shown = $show;
                serde::Serialize::serialize(&show(value), s)
            }
        }
    };
}
pub(super) use value_format;

/// A required value: trimmed, then parsed; a failure quotes the value.
pub(super) fn required<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    let value = String::deserialize(d)?;
    parse(value.trim()).map_err(|message| D::Error::custom(format!("{message} (got {value:?})")))
}

/// An optional value: blank is unset; otherwise parsed as given, and a failure does not quote it.
pub(super) fn optional<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    let value = String::deserialize(d)?;
    if value.trim().is_empty() {
        return Ok(None);
    }
    parse(&value).map(Some).map_err(D::Error::custom)
}

/// One of a few words, named in the message when the value is none of them.
pub(super) fn choice<T: Copy>(value: &str, options: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, chosen)) = options.iter().find(|(word, _)| *word == value) {
        return Ok(*chosen);
    }
    let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
    let (last, rest) = words.split_last().unwrap_or((&"", &[]));
    Err(format!("must be {} or {last}", rest.join(", ")))
}

/// The word of `value` among `options`.
pub(super) fn word_of<T: PartialEq>(value: &T, options: &[(&str, T)]) -> Shown {
    let word = options.iter().find(|(_, option)| option == value).map_or("", |(word, _)| *word);
    Shown::Value(word.to_owned())
}

pub(super) fn shown<T: ToString>(value: &T) -> Shown {
    Shown::Value(value.to_string())
}

pub(super) fn shown_or_empty<T: ToString>(value: &Option<T>) -> Shown {
    Shown::Value(value.as_ref().map(ToString::to_string).unwrap_or_default())
}

fn shown_duration(duration: &Duration) -> Shown {
    Shown::Value(format_duration(*duration))
}

/// A secret as `config check` shows it: its length only.
pub(super) fn masked(secret: &Option<SecretSlice<u8>>) -> Shown {
    match secret {
        Some(s) => Shown::Masked(format!("<{} bytes, masked>", s.expose_secret().len())),
        None => Shown::Value(String::new()),
    }
}

/// A whole number from `low` to `high`.
pub(super) fn within<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    value: &str,
    low: T,
    high: T,
) -> Result<T, String> {
    match value.parse::<T>() {
        Ok(n) if n >= low && n <= high => Ok(n),
        _ => Err(format!("must be a whole number from {low} to {high}")),
    }
}

pub(super) fn at_least_one(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".to_owned()),
    }
}

value_format!(
    /// `90s`, `15m`, `2h`, `14d`; zero allowed.
    duration: Duration = required(parse_duration), shown_duration
);
value_format!(
    /// A duration longer than zero.
    positive_duration: Duration = required(parse_positive_duration), shown_duration
);
value_format!(
    /// A duration longer than zero, or unset.
    optional_positive_duration: Option<Duration> = optional(parse_positive_duration),
    |d| Shown::Value(d.map(format_duration).unwrap_or_default())
);
value_format!(
    /// `30/min`, `5/s`, `1000/h`.
    rate: Rate = required(parse_rate), |r| Shown::Value(format_rate(*r))
);
value_format!(
    /// `127.0.0.1:8080`.
    socket_addr: SocketAddr = required(parse_socket_addr), shown
);
value_format!(
    /// An address and port, or unset.
    optional_socket_addr: Option<SocketAddr> = optional(parse_socket_addr), shown_or_empty
);
value_format!(
    /// Any text but the empty one.
    non_empty: String = required(parse_non_empty), |s| Shown::Value(s.clone())
);
value_format!(
    /// A whole number.
    whole_number: u32 = required(parse_u32), shown
);
value_format!(
    /// A whole number of at least 1.
    positive_number: u32 = required(at_least_one), shown
);
value_format!(
    /// `on` or `off`.
    on_off: bool = required(|v| choice(v, &[("on", true), ("off", false)])),
    |on| Shown::Value(if *on { "on" } else { "off" }.to_owned())
);
value_format!(
    /// A comma-separated list of origins like `https://app.example.com`.
    origins: Vec<String> = required(parse_origins), |o| Shown::Value(o.join(","))
);
value_format!(
    /// A comma-separated list of CIDRs (a bare address is its /32 or /128).
    cidrs: Vec<IpNet> = required(parse_cidrs),
    |nets| Shown::Value(nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
);
value_format!(
    /// A path, as given (not trimmed).
    path: PathBuf = required_as_given(|v| Ok(PathBuf::from(v))),
    |p| Shown::Value(p.display().to_string())
);
value_format!(
    /// A path, or unset.
    optional_path: Option<PathBuf> = optional(|v| Ok(PathBuf::from(v))),
    |p| Shown::Value(p.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
);

/// A required value taken as given, untrimmed (a path may end in a space).
pub(super) fn required_as_given<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    let value = String::deserialize(d)?;
    parse(&value).map_err(|message| D::Error::custom(format!("{message} (got {value:?})")))
}
