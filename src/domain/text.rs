//! Untrusted text made safe to write into logs and audit records.
//!
//! A user agent, an attempted email or a URL path is written by whoever sends the request. Raw
//! control characters in it can forge or hide log lines and drive a terminal that shows
//! `audit tail` (CWE-117, OWASP Logging Cheat Sheet: "sanitise event data to prevent log
//! injection"); bidirectional controls reorder what a reader sees (CVE-2021-42574, "Trojan
//! Source"; UAX #9). Each such character becomes a visible `\u{..}` escape, as Rust's
//! `char::escape_unicode` writes it; everything else, other scripts included, is kept as is.
//!
//! The escape is idempotent (its output contains nothing it escapes), so text that passes
//! through more than one layer is escaped once.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is written escaped: C0 controls, DEL and C1 controls (Unicode category Cc), the
/// line and paragraph separators (they end a line in many viewers), and the bidirectional
/// formatting characters of UAX #9 §2 (marks, embeddings, overrides and isolates).
fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with every control and bidirectional control written as `\u{hex}`; borrowed when
/// there is none, which is the common case.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(must_escape) else {
        return Cow::Borrowed(text);
    };
    let mut escaped = String::with_capacity(text.len() + 8);
    escaped.push_str(&text[..first]);
    for c in text[first..].chars() {
        if must_escape(c) {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Whether `text` holds a character that is not shown as itself: a control, or a
/// bidirectional or default-ignorable one. A name with one could read one way and be stored
/// another, and pass for something its reader knows. The joiners and variation selectors that
/// scripts and emoji need to be written at all (ZWNJ in Persian, ZWJ in Indic scripts and emoji
/// sequences, VS16) are not hidden: they shape what is shown.
pub fn has_hidden_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() || (super::is_default_ignorable(c) && !shapes(c)))
}

/// The joiners and variation selectors: invisible themselves, they shape what is shown.
fn shapes(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}' | '\u{fe00}'..='\u{fe0f}' | '\u{e0100}'..='\u{e01ef}')
}

/// The most characters of a user's name.
pub const MAX_NAME_CHARS: usize = 200;

/// A user's name as the contract allows it: trimmed, 1 to 200 characters, none hidden.
pub fn display_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS {
        return Err(format!("name: 1 to {MAX_NAME_CHARS} characters, or null"));
    }
    if has_hidden_characters(name) || name.chars().all(|c| c.is_whitespace() || shapes(c)) {
        return Err("name: control, bidirectional and invisible characters are not allowed".into());
    }
    Ok(name.to_owned())
}

/// A member of a change that is present, `null` included: `Some(None)` for `null`, `None` when
/// absent (serde's `deserialize_with`, with `#[serde(default)]`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_controls_are_escaped() {
        assert_eq!(escape_controls("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(escape_controls("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(escape_controls("x\u{7f}y\u{0}z"), "x\\u{7f}y\\u{0}z");
        assert_eq!(escape_controls("line\r\nforged"), "line\\u{d}\\u{a}forged");
        assert_eq!(escape_controls("\u{1b}[2J"), "\\u{1b}[2J");
        for c in ['\u{61c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{2066}', '\u{2069}']
        {
            let escaped = escape_controls(&c.to_string()).into_owned();
            assert_eq!(escaped, format!("\\u{{{:x}}}", u32::from(c)));
        }
    }

    #[test]
    fn other_text_is_kept_and_borrowed() {
        for text in ["Mozilla/5.0 (X11; Linux)", "straße", "日本語", "עברית", "/v1/auth/login", ""]
        {
            assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn the_escape_is_idempotent_and_leaves_nothing_raw() {
        let text: String = (0u32..0x2100).filter_map(char::from_u32).collect();
        let once = escape_controls(&text).into_owned();
        assert!(!once.chars().any(must_escape));
        assert_eq!(escape_controls(&once), once);
    }

    #[test]
    fn names_are_trimmed_bounded_and_shown_as_they_are_stored() {
        assert_eq!(display_name("  Ada Lovelace ").as_deref(), Ok("Ada Lovelace"));
        assert_eq!(display_name(&"é".repeat(200)).map(|n| n.chars().count()), Ok(200));
        // Scripts and emoji need their joiners and selectors.
        let persian = "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}";
        for fine in [persian, "👩\u{200d}💻", "❤\u{fe0f}"] {
            assert!(display_name(fine).is_ok(), "{fine:?}");
        }
        for bad in
            ["", "  ", "a\u{202e}b", "a\u{200b}b", "a\u{2066}b", "a\u{feff}", "a\u{ad}b", "a\nb"]
        {
            assert!(display_name(bad).is_err(), "{bad:?}");
        }
        assert!(display_name(&"a".repeat(201)).is_err());
        // Nothing to see is no name.
        assert!(display_name("\u{200d}\u{200d}").is_err());
        assert!(display_name("\u{fe0f} \u{200c}").is_err());
    }
}
