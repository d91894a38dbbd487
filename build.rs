//! Builds the common-password blocklist into a compact `fst` set at compile time.
//!
//! Only entries of 8 characters or more can ever match a password that passed the length rule,
//! so the others are dropped; entries are lower-cased because the policy compares the lower-cased
//! password. The set is embedded in the binary's read-only data and paged in on demand, so it
//! stays out of the resident memory of a running server.

use std::io::{BufRead, BufReader};
use std::{env, fs, path::PathBuf};

const SOURCE: &str = "data/common-passwords/top-1M.txt.gz";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={SOURCE}");
    let file = fs::File::open(SOURCE)?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut entries = Vec::new();
    for line in reader.split(b'\n') {
        let line = line?;
        let Ok(text) = String::from_utf8(line) else {
            continue;
        };
        let text = text.trim_end_matches('\r');
        if text.chars().count() >= 8 {
            entries.push(text.to_lowercase());
        }
    }
    entries.sort_unstable();
    entries.dedup();
    let set = fst::Set::from_iter(entries)?;
    let out = PathBuf::from(env::var("OUT_DIR")?).join("common-passwords.fst");
    fs::write(out, set.as_fst().as_bytes())?;
    Ok(())
}
