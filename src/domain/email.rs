//! Email addresses as the product stores them: trimmed, NFKC-normalised, lower-cased.
//!
//! Uniqueness is case-insensitive because the stored form is already lower-cased; the store only
//! ever sees `Email` values, never raw input.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_LEN: usize = 254;

/// A normalised, syntactically valid email address.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("the email address is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the email address is not valid")]
    Invalid,
}

impl Email {
    /// Normalises and validates untrusted input.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalised: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        if normalised.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if !email_address::EmailAddress::is_valid(&normalised)
            || normalised.chars().any(|c| c.is_whitespace() || c.is_control())
            || !normalised.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'))
        {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalised))
    }

    /// Normalises input for use as a lookup or rate-limit key without validating it, so that an
    /// invalid address is still counted under one stable key.
    pub fn normalise_key(raw: &str) -> String {
        raw.trim().nfkc().collect::<String>().to_lowercase()
    }

    /// Rebuilds a value that was validated before it was stored.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice@Example.COM ").map(|e| e.0);
        assert_eq!(email, Ok("alice@example.com".to_owned()));
    }

    #[test]
    fn compatibility_forms_are_folded_by_nfkc() {
        // U+FF41 FULLWIDTH LATIN SMALL LETTER A folds to "a".
        let email = Email::parse("\u{ff41}lice@example.com").map(|e| e.0);
        assert_eq!(email, Ok("alice@example.com".to_owned()));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in ["", "alice", "alice@", "@example.com", "a b@example.com", "alice@localhost"] {
            assert_eq!(Email::parse(raw), Err(EmailError::Invalid), "{raw:?}");
        }
    }

    #[test]
    fn overlong_addresses_are_refused() {
        let raw = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&raw), Err(EmailError::TooLong));
    }

    #[test]
    fn local_part_is_before_the_last_at() {
        assert_eq!(Email::from_trusted("bob@example.com".into()).local_part(), "bob");
    }
}
