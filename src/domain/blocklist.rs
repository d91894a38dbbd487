//! The shipped list of common passwords (see `data/common-passwords/README.md` for its source and
//! licence), as an `fst` set built by `build.rs`.
//!
//! The set lives in the binary's read-only data: a lookup touches a handful of pages, so the list
//! costs next to nothing in resident memory.

use std::sync::OnceLock;

static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/common-passwords.fst"));

fn set() -> Option<&'static fst::Set<&'static [u8]>> {
    static SET: OnceLock<Option<fst::Set<&'static [u8]>>> = OnceLock::new();
    SET.get_or_init(|| fst::Set::new(BYTES).ok()).as_ref()
}

/// Whether `lowercased` is on the common-password list.
///
/// The build guarantees a valid set; should it ever not be one, every password counts as common,
/// so a broken build fails closed rather than accepting weak passwords.
pub fn contains(lowercased: &str) -> bool {
    set().is_none_or(|set| set.contains(lowercased))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_entries_are_found_lower_cased() {
        assert!(contains("p@ssw0rd"));
        assert!(contains("password1!"));
        assert!(contains("password"));
    }

    #[test]
    fn a_random_string_is_not_on_the_list() {
        assert!(!contains("correct-horse-battery-staple-91"));
    }

    #[test]
    fn short_entries_are_not_kept() {
        assert!(!contains("123456"));
    }
}
