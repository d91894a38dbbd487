//! The command line of the contract, a file per command group: `serve` (and `migrate`),
//! `users`, `clients`, `audit`, `keys`, `config`. Every command reads the same configuration as
//! `serve`, and opens only what it touches: the account commands build account administration
//! alone and the client commands the client registry alone (neither reads or creates a key),
//! `migrate` and the audit commands only the backends, `config check` nothing at all.
//!
//! `serve`, `migrate` and the commands that write apply the migrations first; the commands that
//! only read (`audit tail`, `audit verify`, `config check`) never change the database.
//!
//! Exit status: 0 on success, 2 for bad usage or configuration, 1 for any other failure, with a
//! one-line message on standard error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::startup::StartupError;

mod audit;
mod clients;
mod config;
mod keys;
mod serve;
mod users;

pub use audit::AuditCommand;
pub use clients::ClientCommand;
pub use config::ConfigCommand;
pub use keys::KeysCommand;
pub use users::UserCommand;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about = "A self-hosted authentication service")]
pub struct Cli {
    /// A TOML file of settings (keys are the variable names without the prefix, lower-cased);
    /// PORTCULLIS_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server, migrating the database first.
    Serve {
        /// Do not apply database migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Read and check the audit trail (never migrates: run `migrate` first).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// A failed command: its exit status and one-line message.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { status: 2, message: message.into() }
    }

    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self { status: 1, message: message.into() }
    }
}

impl From<StartupError> for Failure {
    fn from(error: StartupError) -> Self {
        match error {
            StartupError::Config { .. } => Self::usage(error.to_string()),
            // The cause too: "backend error" alone says nothing of what to fix.
            StartupError::Store(store) => Self::other(format!("storage: {}", store.with_causes())),
            other => Self::other(other.to_string()),
        }
    }
}

/// Loads the settings, then runs the command.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::load(cli.config.as_deref(), std::env::vars())
        .map_err(|e| Failure::usage(format!("configuration error: {e}")))?;
    init_tracing(&settings);
    match cli.command {
        Command::Serve { no_migrate } => serve::serve(settings, !no_migrate).await,
        Command::Migrate => serve::migrate(settings).await,
        Command::User(command) => users::run(settings, command).await,
        Command::Client(command) => clients::run(settings, command).await,
        Command::Audit(command) => audit::run(settings, command).await,
        Command::Keys(KeysCommand::Rotate) => keys::rotate(settings).await,
        Command::Config(ConfigCommand::Check) => config::check(&settings),
    }
}

/// Signs the audit trail's head after a command wrote to it, as a running server would within
/// a heartbeat, so that `audit verify` right after finds the new events signed. A failure is
/// only logged: the command itself was done.
async fn sign_head(audit: &crate::audit::Audit) {
    use crate::domain::Clock;
    if let Err(error) = audit.sign_head(crate::domain::SystemClock.now()).await {
        tracing::warn!(error = error.with_causes(), "could not sign the audit head");
    }
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log.filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
