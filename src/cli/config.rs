//! `config check`: the configuration as it was read, secrets masked, then its weak settings.
//! It opens nothing: no database, no directory.

use clap::Subcommand;

use crate::config::{DatabaseUrl, Settings, Shown};

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it, secrets masked, then its weak settings (advice:
    /// the exit status stays 0).
    Check,
}

/// Every line that is not a `# ` comment reads back as the same setting, so the output can be
/// kept as an environment file.
pub(super) fn check(settings: &Settings) -> Result<(), Failure> {
    for (name, shown) in settings.describe() {
        match shown {
            Shown::Value(value) => println!("{name}={value}"),
            Shown::Masked(value) => println!("# {name}={value}"),
            Shown::Default(instead) => println!("# {name}: unset, {instead}\n{name}="),
        }
    }
    for finding in crate::config::posture(settings).findings {
        println!(
            "# posture: {} {}: {} [{}]",
            finding.severity.as_str(),
            finding.variable,
            finding.message,
            finding.id
        );
    }
    if settings.secrets.master_key.is_none()
        && matches!(settings.storage.database_url, DatabaseUrl::Postgres(_))
    {
        println!(
            "# audit: the trail's head is not signed (no MASTER_KEY or MASTER_KEY_FILE), \
             so events cut from its end cannot be found"
        );
    }
    println!("# configuration is valid");
    Ok(())
}
