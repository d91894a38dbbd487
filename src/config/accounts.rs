//! Accounts and what guards them: the password rules and their hashing, sessions, lockout, and
//! the request budgets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::formats::{
    choice, positive_duration, positive_number, rate, value_format, whole_number, within, word_of,
};
use super::{ConfigError, Rate};
use crate::domain::PasswordPolicy;

/// The highest `MAX_SESSIONS_PER_USER`: every walk over a user's sessions is bounded by it.
pub const MAX_SESSIONS_CAP: u32 = 10_000;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Accounts {
    #[serde(rename = "password_policy", with = "password_policy")]
    pub password_policy: PasswordPolicy,
    /// A session ends this long after its login, however often it is refreshed.
    #[serde(rename = "session_lifetime", with = "positive_duration")]
    pub session_lifetime: Duration,
    /// A new login past this many live sessions ends the user's oldest one.
    #[serde(rename = "max_sessions_per_user", with = "sessions_cap")]
    pub max_sessions_per_user: u32,
    /// A device token unused this long is forgotten.
    #[serde(rename = "device_token_ttl", with = "positive_duration")]
    pub device_token_ttl: Duration,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::Composition,
            session_lifetime: 30 * DAY,
            max_sessions_per_user: 100,
            device_token_ttl: 180 * DAY,
        }
    }
}

const PASSWORD_POLICIES: [(&str, PasswordPolicy); 2] =
    [("composition", PasswordPolicy::Composition), ("nist", PasswordPolicy::Nist)];

value_format!(
    /// `composition` or `nist`.
    password_policy: PasswordPolicy = required(|v| choice(v, &PASSWORD_POLICIES)),
    |p| word_of(p, &PASSWORD_POLICIES)
);
value_format!(
    /// From 1 to `MAX_SESSIONS_CAP`.
    sessions_cap: u32 = required(|v| within(v, 1, MAX_SESSIONS_CAP)),
    crate::config::formats::shown
);

/// Failed logins: how many lock an account key, and for how long.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Lockout {
    /// Failures within `window` that lock the key.
    #[serde(rename = "lockout_threshold", with = "positive_number")]
    pub threshold: u32,
    #[serde(rename = "lockout_window", with = "positive_duration")]
    pub window: Duration,
    #[serde(rename = "lockout_duration", with = "positive_duration")]
    pub duration: Duration,
    /// Failures without a success after which the key stays locked until an unlock or a reset.
    #[serde(rename = "lockout_max_failures", with = "positive_number")]
    pub max_failures: u32,
}

impl Default for Lockout {
    fn default() -> Self {
        Self { threshold: 5, window: 15 * MINUTE, duration: 15 * MINUTE, max_failures: 100 }
    }
}

/// The request budgets.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Per client IP, on the routes that take a credential.
    #[serde(rename = "rate_limit_ip", with = "rate")]
    pub ip: Rate,
    /// Per account key, on the same routes.
    #[serde(rename = "rate_limit_account", with = "rate")]
    pub account: Rate,
    /// Per client IP, on the routes that only read.
    #[serde(rename = "rate_limit_reads", with = "rate")]
    pub reads: Rate,
    /// Per account: the mail that forgot-password and resend-verification may cause.
    #[serde(rename = "rate_limit_mail", with = "rate")]
    pub mail: Rate,
    /// Per OAuth client, at the endpoints where it authenticates.
    #[serde(rename = "rate_limit_client", with = "rate")]
    pub client: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        let per = |count, period| Rate { count, period };
        Self {
            ip: per(30, MINUTE),
            account: per(10, MINUTE),
            reads: per(600, MINUTE),
            mail: per(5, Duration::from_secs(3_600)),
            client: per(600, MINUTE),
        }
    }
}

/// Argon2id's cost (OWASP's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Argon2Settings {
    #[serde(rename = "argon2_memory_kib", with = "whole_number")]
    pub memory_kib: u32,
    #[serde(rename = "argon2_iterations", with = "whole_number")]
    pub iterations: u32,
    #[serde(rename = "argon2_parallelism", with = "whole_number")]
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

impl Argon2Settings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(1..=16).contains(&self.parallelism) {
            return Err(ConfigError::new("ARGON2_PARALLELISM", "must be between 1 and 16"));
        }
        if !(1..=100).contains(&self.iterations) {
            return Err(ConfigError::new("ARGON2_ITERATIONS", "must be between 1 and 100"));
        }
        // Argon2 needs 8 KiB per lane; 4 GiB per hash is past any sane setting.
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > 4 * 1024 * 1024 {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                "must be between 8 x PORTCULLIS_ARGON2_PARALLELISM and 4194304",
            ));
        }
        Ok(())
    }
}
