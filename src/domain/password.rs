//! Passwords and the password policy.
//!
//! A `Password` is NFKC-normalised on construction, so that the same password typed on two
//! keyboards hashes the same (NIST SP 800-63B §5.1.1.2), and never prints itself. The length cap is
//! checked before anything else so that an attacker cannot make the server hash megabytes.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;
use unicode_normalization::UnicodeNormalization;

use super::{Email, blocklist};

/// Longest password accepted, in Unicode scalar values.
pub const MAX_CHARS: usize = 128;

/// A candidate password. Its `Debug` never reveals the secret.
pub struct Password(SecretString);

impl Password {
    pub fn new(raw: &str) -> Self {
        Self(SecretString::from(raw.nfkc().collect::<String>()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Unicode scalar values, the unit of the policy's length rules.
    pub fn char_count(&self) -> usize {
        self.expose().chars().count()
    }

    /// Whether the password is too long to be worth hashing.
    pub fn is_over_length_cap(&self) -> bool {
        self.char_count() > MAX_CHARS
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// One failed rule of the policy, with the contract's machine-readable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyViolation {
    TooShort,
    TooLong,
    MissingUppercase,
    MissingLowercase,
    MissingDigit,
    MissingSpecial,
    TooCommon,
    ContainsEmail,
}

/// Which rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// 8 to 128 characters with upper, lower, digit and special characters.
    Composition,
    /// NIST SP 800-63B: at least 15 characters, no composition rules.
    Nist,
}

impl PasswordPolicy {
    pub fn min_chars(self) -> usize {
        match self {
            PasswordPolicy::Composition => 8,
            PasswordPolicy::Nist => 15,
        }
    }

    /// Every rule the password breaks, in a stable order; empty when it is acceptable.
    pub fn violations(self, password: &Password, email: Option<&Email>) -> Vec<PolicyViolation> {
        let text = password.expose();
        let chars = password.char_count();
        let mut found = Vec::new();
        if chars < self.min_chars() {
            found.push(PolicyViolation::TooShort);
        }
        if chars > MAX_CHARS {
            found.push(PolicyViolation::TooLong);
        }
        if self == PasswordPolicy::Composition {
            let rules: [(CharTest, PolicyViolation); 4] = [
                (char::is_uppercase, PolicyViolation::MissingUppercase),
                (char::is_lowercase, PolicyViolation::MissingLowercase),
                (char::is_numeric, PolicyViolation::MissingDigit),
                (is_special, PolicyViolation::MissingSpecial),
            ];
            for (test, violation) in rules {
                if !text.chars().any(test) {
                    found.push(violation);
                }
            }
        }
        // Over the cap the lookups are pointless and the input is refused anyway.
        if chars <= MAX_CHARS {
            let lowered = text.to_lowercase();
            if blocklist::contains(&lowered) {
                found.push(PolicyViolation::TooCommon);
            }
            if email.is_some_and(|email| contains_email(&lowered, email)) {
                found.push(PolicyViolation::ContainsEmail);
            }
        }
        found
    }
}

type CharTest = fn(char) -> bool;

/// Anything that is neither a letter nor a digit counts as special, spaces included (OWASP's list
/// of special characters starts with the space).
fn is_special(c: char) -> bool {
    !c.is_alphanumeric()
}

/// The whole address, or its local part when that has 3 or more characters.
fn contains_email(lowered_password: &str, email: &Email) -> bool {
    let local = email.local_part();
    lowered_password.contains(email.as_str())
        || (local.chars().count() >= 3 && lowered_password.contains(local))
}

#[cfg(test)]
mod tests {
    use super::PolicyViolation::*;
    use super::*;

    fn check(raw: &str) -> Vec<PolicyViolation> {
        let email = Email::from_trusted("alice@example.com".into());
        PasswordPolicy::Composition.violations(&Password::new(raw), Some(&email))
    }

    #[test]
    fn a_strong_password_passes() {
        assert_eq!(check("Tr0ub4dour&3-horse"), vec![]);
    }

    #[test]
    fn every_failed_rule_is_listed() {
        assert_eq!(check("abc"), vec![TooShort, MissingUppercase, MissingDigit, MissingSpecial]);
    }

    #[test]
    fn length_counts_scalar_values_not_bytes() {
        // Seven two-byte characters plus one ASCII: 8 characters, 15 bytes.
        assert!(!check("Éééééé1!").contains(&TooShort));
        assert!(check(&format!("Aa1!{}", "é".repeat(125))).contains(&TooLong));
        assert!(!check(&format!("Aa1!{}", "é".repeat(124))).contains(&TooLong));
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(check("P@ssw0rd"), vec![TooCommon]);
        assert_eq!(check("PASSWORD1!a"), vec![]);
        assert_eq!(check("Password1!"), vec![TooCommon]);
    }

    #[test]
    fn the_email_or_its_local_part_is_refused() {
        assert_eq!(check("xxAlice#2024x"), vec![ContainsEmail]);
        let short = Email::from_trusted("al@example.com".into());
        let policy = PasswordPolicy::Composition;
        assert_eq!(policy.violations(&Password::new("Al#20245x"), Some(&short)), vec![]);
        assert_eq!(
            policy.violations(&Password::new("Al@example.com1"), Some(&short)),
            vec![ContainsEmail]
        );
    }

    #[test]
    fn nist_policy_asks_length_not_composition() {
        let policy = PasswordPolicy::Nist;
        assert_eq!(policy.violations(&Password::new("short one"), None), vec![TooShort]);
        assert_eq!(policy.violations(&Password::new("all lower case words here"), None), vec![]);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", Password::new("Hunter2!Hunter2")).contains("Hunter"));
    }
}
