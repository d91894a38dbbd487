//! Email addresses as the product stores and compares them: one canonical form per mailbox.
//!
//! Two inputs that a person would read as the same address must be one account, or an attacker
//! registers a look-alike of someone's address (OWASP Authentication Cheat Sheet: normalise
//! identifiers before comparing them). So an address is canonicalised before it is stored, looked
//! up or used as a rate-limit or lockout key:
//! - the whole input is trimmed and NFKC-normalised (fullwidth letters and `＠` fold);
//! - the local part is case-folded fully, as the Unicode compatibility caseless match (The Unicode
//!   Standard §3.13, D145) does: `NFKC(fold(NFKD(fold(NFD(s)))))`. Full folding, unlike
//!   lower-casing, makes `straße`/`STRASSE` and `ΣΑΣ`/`σας`/`σασ` equal; it is the default (not
//!   the Turkic) folding, so `İ` equals `i̇` and dotless `ı` stays distinct from `i`;
//! - the domain is converted to its ASCII form (A-labels, `xn--…`) by UTS #46 ToASCII with the
//!   strict STD3 and DNS length rules (the `idna` crate, the WHATWG URL one): `bücher.example`,
//!   `BÜCHER.example` and `xn--bcher-kva.example` are one domain. The ASCII form is the one
//!   stored because it is what DNS and SMTP without SMTPUTF8 use (RFC 5890 §2.3.2.1, RFC 6531),
//!   because ToASCII is the direction that validates (bad punycode is refused), and because it
//!   cannot render as a look-alike. The domain is not case-folded first: UTS #46 maps it itself,
//!   and keeps `ß` and `ς` (IDNA2008 deviations) that a full fold would change into another
//!   domain;
//! - default-ignorable code points (zero-width space, joiners, soft hyphen, BOM, variation
//!   selectors, bidi controls, …) are refused rather than removed: they are invisible, so an
//!   address holding one is a look-alike (RFC 8264 §9.13 disallows them in identifiers).
//!
//! Full case folding comes from `caseless` (the unicode-rs crate: the Unicode CaseFolding table
//! and nothing else, on the `unicode-normalization` we already use) rather than `icu_casemap`,
//! which brings the ICU4X data provider stack for one table.
//!
//! There is no separate display form: what is stored is what is shown.

use std::fmt;

use caseless::Caseless;
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
    #[error("the email address contains an invisible character")]
    Invisible,
}

/// An address in canonical form, and whether its domain passed UTS #46 ToASCII.
struct Canonical {
    address: String,
    domain_is_valid: bool,
}

impl Email {
    /// Normalises and validates untrusted input.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.chars().any(is_default_ignorable) {
            return Err(EmailError::Invisible);
        }
        let Canonical { address, domain_is_valid } = canonicalise(trimmed);
        if address.len() > MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if !domain_is_valid
            || !email_address::EmailAddress::is_valid(&address)
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
            || !address.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'))
        {
            return Err(EmailError::Invalid);
        }
        Ok(Self(address))
    }

    /// Normalises input for use as a lookup or rate-limit key without validating it, so that an
    /// invalid address is still counted under one stable key. For a valid address it is exactly
    /// `parse(raw)?.as_str()`: the lockout key of a login is the account's.
    pub fn normalise_key(raw: &str) -> String {
        canonicalise(raw.trim()).address
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

fn canonicalise(trimmed: &str) -> Canonical {
    let composed: String = trimmed.nfkc().collect();
    let Some((local, domain)) = composed.rsplit_once('@') else {
        return Canonical { address: fold(&composed), domain_is_valid: false };
    };
    let (domain, domain_is_valid) = canonical_domain(domain);
    Canonical { address: format!("{}@{domain}", fold(local)), domain_is_valid }
}

/// The compatibility caseless form of D145, recomposed.
fn fold(text: &str) -> String {
    text.nfd().default_case_fold().nfkd().default_case_fold().nfkc().collect()
}

/// The ASCII form of a domain; an address literal (`[192.0.2.1]`, RFC 5321 §4.1.3) is only
/// lower-cased. A domain that ToASCII refuses keeps a lower-cased form, for keys.
fn canonical_domain(domain: &str) -> (String, bool) {
    if domain.starts_with('[') {
        return (domain.to_lowercase(), true);
    }
    match idna::domain_to_ascii_strict(domain) {
        Ok(ascii) if !ascii.is_empty() => (ascii, true),
        _ => (domain.to_lowercase(), false),
    }
}

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt, Unicode 16;
/// UAX #44 §5.3), reserved ranges included so that a later Unicode version adds nothing here.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
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

    fn canonical(raw: &str) -> String {
        Email::parse(raw).unwrap().0
    }

    #[test]
    fn sharp_s_is_fully_case_folded() {
        for raw in ["straße@example.com", "STRASSE@example.com", "STRA\u{1e9e}E@example.com"] {
            assert_eq!(canonical(raw), "strasse@example.com", "{raw}");
        }
    }

    #[test]
    fn every_sigma_folds_to_one() {
        for raw in ["ΣΑΣ@example.com", "σας@example.com", "σασ@example.com", "Σας@example.com"]
        {
            assert_eq!(canonical(raw), "σασ@example.com", "{raw}");
        }
    }

    #[test]
    fn dotted_and_dotless_i_fold_by_the_default_not_the_turkic_rules() {
        // U+0130 folds to i + U+0307, the same as the decomposed input.
        assert_eq!(canonical("\u{130}pek@example.com"), canonical("i\u{307}pek@example.com"));
        assert_eq!(canonical("IPEK@example.com"), "ipek@example.com");
        // U+0131 dotless i is its own letter.
        assert_ne!(canonical("\u{131}pek@example.com"), canonical("ipek@example.com"));
    }

    #[test]
    fn default_ignorable_code_points_are_refused() {
        for c in [
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2060}',
            '\u{ad}',
            '\u{feff}',
            '\u{fe0f}',
            '\u{180e}',
            '\u{202e}',
            '\u{2066}',
            '\u{e0001}',
            '\u{34f}',
        ] {
            for raw in [format!("a{c}b@example.com"), format!("ab@exa{c}mple.com")] {
                assert_eq!(Email::parse(&raw), Err(EmailError::Invisible), "{raw:?}");
            }
        }
    }

    #[test]
    fn an_idn_domain_and_its_punycode_are_one_address() {
        for raw in ["user@bücher.example", "user@BÜCHER.example", "user@xn--bcher-kva.example"] {
            assert_eq!(canonical(raw), "user@xn--bcher-kva.example", "{raw}");
        }
        // The domain keeps IDNA2008's `ß` (a full fold would make it another domain).
        assert_eq!(canonical("user@straße.example"), "user@xn--strae-oqa.example");
        assert_eq!(canonical("Straße@Straße.example"), "strasse@xn--strae-oqa.example");
    }

    #[test]
    fn domains_that_uts46_refuses_are_invalid() {
        for raw in ["user@xn--a.example", "user@exa mple.com", "user@a..example"] {
            assert_eq!(Email::parse(raw), Err(EmailError::Invalid), "{raw}");
        }
    }

    #[test]
    fn the_key_of_a_valid_address_is_its_canonical_form() {
        for raw in [
            " Alice@Example.COM",
            "straße@bücher.example",
            "ΣΑΣ@example.com",
            "\u{ff41}lice\u{ff20}example.com",
            "user@[192.0.2.1]",
        ] {
            assert_eq!(Email::normalise_key(raw), canonical(raw), "{raw}");
        }
        // An invalid address still has one stable key.
        assert_eq!(Email::normalise_key("NOT AN EMAIL"), Email::normalise_key("not an email"));
    }

    #[test]
    fn local_part_is_before_the_last_at() {
        assert_eq!(Email::from_trusted("bob@example.com".into()).local_part(), "bob");
    }
}
