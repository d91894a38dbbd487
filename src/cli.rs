//! The command line of the contract. Every command reads the same configuration as `serve`.
//!
//! `serve`, `migrate` and the commands that write apply the migrations first; the commands that
//! only read (`audit tail`, `audit verify`, `config check`) never change the database.
//!
//! Exit status: 0 on success, 2 for bad usage or configuration, 1 for any other failure, with a
//! one-line message on standard error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio::io::AsyncBufReadExt;

use crate::auth::{AuthError, RequestContext, keys};
use crate::config::{DatabaseUrl, LogFormat, Settings, Shown};
use crate::domain::Role;
use crate::domain::{Clock, SystemClock};
use crate::startup::{Application, Backends, StartupError, build_auth, new_metrics, open_backends};

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

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        /// Give the user the `admin` role.
        #[arg(long)]
        admin: bool,
    },
    /// Lift the lockout of an email (and of the account's devices), at once on running servers.
    Unlock {
        #[arg(long)]
        email: String,
    },
    /// Print accounts as JSON lines (the admin user object), newest first.
    List {
        /// Only accounts whose (normalised) email starts with this.
        #[arg(long)]
        email: Option<String>,
    },
    /// Disable an account: its sessions end at once and its logins are refused.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Delete an account, its factors and sessions (its audit events stay).
    Delete {
        #[arg(long)]
        email: String,
    },
    /// Remove every second factor of an account (TOTP, recovery codes, passkeys), for a user who
    /// lost them all; audited, and the owner gets a notice.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the latest audit events as JSON lines, oldest first.
    Tail {
        /// Keep printing new events as they are written.
        #[arg(long)]
        follow: bool,
        /// How many of the latest events to print first.
        #[arg(long, default_value_t = 20)]
        lines: u32,
    },
    /// Check the audit trail's hash chain for gaps and tampering, and that its newest head
    /// signature is recent (at most two heartbeats old); exit 1 on any finding.
    Verify,
    /// Print the head signatures as JSON lines, oldest first, to keep them outside the database
    /// (a log shipper): a trail cut at its end, signatures included, then no longer matches what
    /// was shipped.
    Heads {
        /// Keep printing the newest signature whenever it changes (heartbeats included).
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; old keys keep verifying until their tokens expire.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it, secrets masked, then its weak settings (advice:
    /// the exit status stays 0).
    Check,
}

/// A failed command: its exit status and one-line message.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self { status: 2, message: message.into() }
    }

    fn other(message: impl Into<String>) -> Self {
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
        Command::Serve { no_migrate } => serve(settings, !no_migrate).await,
        Command::Migrate => {
            open_backends(&settings, true).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { email, admin }) => {
            create_user(settings, &email, admin).await
        }
        Command::User(UserCommand::Unlock { email }) => unlock(settings, &email).await,
        Command::User(UserCommand::ResetMfa { email }) => reset_mfa(settings, &email).await,
        Command::User(UserCommand::List { email }) => list_users(settings, email.as_deref()).await,
        Command::User(UserCommand::Disable { email }) => {
            administer(settings, &email, Administration::Disable).await
        }
        Command::User(UserCommand::Enable { email }) => {
            administer(settings, &email, Administration::Enable).await
        }
        Command::User(UserCommand::Delete { email }) => {
            administer(settings, &email, Administration::Delete).await
        }
        Command::Audit(AuditCommand::Tail { follow, lines }) => tail(settings, follow, lines).await,
        Command::Audit(AuditCommand::Verify) => verify(settings).await,
        Command::Audit(AuditCommand::Heads { follow }) => heads(settings, follow).await,
        Command::Keys(KeysCommand::Rotate) => rotate_keys(settings).await,
        Command::Config(ConfigCommand::Check) => {
            // Every line that is not a `# ` comment reads back as the same setting, so the
            // output can be kept as an environment file.
            for (name, shown) in settings.describe() {
                match shown {
                    Shown::Value(value) => println!("{name}={value}"),
                    Shown::Masked(value) => println!("# {name}={value}"),
                    Shown::Default(instead) => println!("# {name}: unset, {instead}\n{name}="),
                }
            }
            for finding in crate::config::posture(&settings).findings {
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
    }
}

async fn serve(settings: Settings, migrate: bool) -> Result<(), Failure> {
    let application = Application::build(settings, migrate).await?;
    let address = application.local_addr().map_err(|e| Failure::other(e.to_string()))?;
    let summary = application.summary();
    tracing::info!(
        %address,
        version = env!("CARGO_PKG_VERSION"),
        database = %summary.database,
        session_store = %summary.session_store,
        data_dir = %summary.data_dir,
        migrations_applied = summary.migrations_applied,
        signing_key_generated = summary.signing_key_generated,
        "portcullis is listening"
    );
    application.run(shutdown_signal()).await.map_err(|e| Failure::other(e.to_string()))
}

async fn create_user(settings: Settings, email: &str, admin: bool) -> Result<(), Failure> {
    let password = read_password_line().await?;
    let backends = open_backends(&settings, true).await?;
    let auth =
        build_auth(&settings, &backends, new_metrics()?, std::sync::Arc::new(SystemClock)).await?;
    let roles = if admin { vec![Role::User, Role::Admin] } else { vec![Role::User] };
    let user = auth
        .create_user(&RequestContext::default(), email, &password, roles)
        .await
        .map_err(|error| match error {
            AuthError::PasswordPolicy(violations) => Failure::other(format!(
                "the password does not meet the policy: {}",
                violations
                    .iter()
                    .filter_map(|v| serde_json::to_value(v).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            other => Failure::other(other.to_string()),
        })?;
    sign_head(&auth).await;
    let view = serde_json::json!({
        "id": user.id, "email": user.email, "created_at": user.created_at, "roles": user.roles,
    });
    println!("{view}");
    Ok(())
}

async fn unlock(settings: Settings, email: &str) -> Result<(), Failure> {
    let backends = open_backends(&settings, true).await?;
    let auth =
        build_auth(&settings, &backends, new_metrics()?, std::sync::Arc::new(SystemClock)).await?;
    auth.unlock_email(&RequestContext::default(), email, "command line").await.map_err(
        |error| match error {
            AuthError::InvalidEmail(reason) => {
                Failure::other(format!("{email:?} is not an email address: {reason}"))
            }
            AuthError::NotFound => {
                Failure::other(format!("no account or lock has the email {email:?}; nothing done"))
            }
            other => Failure::other(other.to_string()),
        },
    )?;
    sign_head(&auth).await;
    println!("unlocked {}", crate::domain::Email::normalise_key(email));
    Ok(())
}

/// Signs the audit trail's head after a command wrote to it, as a running server would within
/// a heartbeat, so that `audit verify` right after finds the new events signed. A failure is
/// only logged: the command itself was done.
async fn sign_head(auth: &crate::auth::AuthService) {
    if let Err(error) = auth.audit().sign_head(SystemClock.now()).await {
        tracing::warn!(error = error.with_causes(), "could not sign the audit head");
    }
}

/// What `user disable / enable / delete` does.
#[derive(Clone, Copy)]
enum Administration {
    Disable,
    Enable,
    Delete,
}

/// The service as the account commands use it: migrated, on the configured backends.
async fn auth_for_commands(settings: &Settings) -> Result<crate::auth::AuthService, Failure> {
    let backends = open_backends(settings, true).await?;
    Ok(build_auth(settings, &backends, new_metrics()?, std::sync::Arc::new(SystemClock)).await?)
}

async fn list_users(settings: Settings, prefix: Option<&str>) -> Result<(), Failure> {
    let auth = auth_for_commands(&settings).await?;
    let other = |e: AuthError| Failure::other(e.to_string());
    let mut cursor = None;
    loop {
        let page = auth.list_users(prefix, cursor.as_deref(), Some(200)).await.map_err(other)?;
        for user in &page.users {
            let line = serde_json::to_string(user).map_err(|e| Failure::other(e.to_string()))?;
            println!("{line}");
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

async fn administer(settings: Settings, email: &str, what: Administration) -> Result<(), Failure> {
    let auth = auth_for_commands(&settings).await?;
    let failure = |error: AuthError| match error {
        AuthError::NotFound => Failure::other(format!("no account has the email {email:?}")),
        other => Failure::other(other.to_string()),
    };
    let user = auth.user_by_email(email).await.map_err(failure)?;
    let context = RequestContext::default();
    let actor = crate::auth::Actor::CommandLine;
    let (change, done) = match what {
        Administration::Disable => {
            (crate::auth::AccountChange { disabled: Some(true), ..Default::default() }, "disabled")
        }
        Administration::Enable => {
            (crate::auth::AccountChange { disabled: Some(false), ..Default::default() }, "enabled")
        }
        Administration::Delete => {
            auth.admin_delete_user(&context, actor, user.id).await.map_err(failure)?;
            sign_head(&auth).await;
            println!("deleted {}", user.email.as_str());
            return Ok(());
        }
    };
    auth.update_user(&context, actor, user.id, change).await.map_err(failure)?;
    sign_head(&auth).await;
    println!("{done} {}", user.email.as_str());
    Ok(())
}

async fn reset_mfa(settings: Settings, email: &str) -> Result<(), Failure> {
    let backends = open_backends(&settings, true).await?;
    let auth =
        build_auth(&settings, &backends, new_metrics()?, std::sync::Arc::new(SystemClock)).await?;
    let removed = auth
        .reset_second_factors(&RequestContext::default(), email, "by the command line")
        .await
        .map_err(|error| match error {
            AuthError::NotFound => Failure::other(format!("no account has the email {email:?}")),
            other => Failure::other(other.to_string()),
        })?;
    sign_head(&auth).await;
    println!("removed {removed} second factors of {}", crate::domain::Email::normalise_key(email));
    Ok(())
}

/// Opens the backends for a command that only reads: it applies no migration and creates no
/// data directory, so pointing it at the wrong place (or at a database not yet migrated) cannot
/// change anything; it fails and says so instead.
async fn open_for_reading(settings: &Settings) -> Result<Backends, Failure> {
    if let DatabaseUrl::Embedded(path) = &settings.storage.database_url
        && !path.exists()
    {
        return Err(Failure::other(format!(
            "there is no database at {}; run `portcullis migrate` to create it",
            path.display()
        )));
    }
    Ok(open_backends(settings, false).await?)
}

/// A failure to read the audit trail; on a database never migrated, that is the likely cause.
fn unreadable_trail(error: crate::store::StoreError) -> Failure {
    Failure::other(format!(
        "cannot read the audit trail ({error}); if the database is new, run `portcullis migrate`"
    ))
}

async fn tail(settings: Settings, follow: bool, lines: u32) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    let audit = crate::audit::Audit::new(backends.audit.clone(), new_metrics()?)
        .with_head_key(backends.audit_head_key);
    let mut position =
        (audit.last_position().await.map_err(unreadable_trail)? - i64::from(lines)).max(0);
    loop {
        let batch = audit.after(position, 500).await.map_err(unreadable_trail)?;
        for (seq, event) in &batch {
            let line = serde_json::to_string(event).map_err(|e| Failure::other(e.to_string()))?;
            println!("{line}");
            position = *seq;
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

async fn verify(settings: Settings) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    let audit = crate::audit::Audit::new(backends.audit.clone(), new_metrics()?)
        .with_head_key(backends.audit_head_key);
    let report = audit.verify(SystemClock.now()).await.map_err(unreadable_trail)?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.problems.is_empty() {
        let signed_at = report
            .signed_at
            .map(|at| format!(" at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .unwrap_or_default();
        println!(
            "audit trail intact: {} events; head at position {} with hash {}; signed through \
             position {}{signed_at}",
            report.events, report.head_seq, report.head_hash, report.signed_through
        );
        Ok(())
    } else {
        Err(Failure::other(format!(
            "audit trail broken: {} problems in {} events",
            report.problems.len(),
            report.events
        )))
    }
}

/// One head signature as a JSON line.
fn head_line(signature: &crate::audit::chain::HeadSignature) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    serde_json::json!({
        "seq": signature.seq,
        "hash": hex(&signature.hash),
        "signed_at": signature.signed_at,
        "previous": signature.previous.as_deref().map(hex),
        "signature": hex(&signature.signature),
    })
    .to_string()
}

async fn heads(settings: Settings, follow: bool) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    if backends.audit_head_key.is_none() {
        eprintln!("note: the head is not signed: there is no master key");
    }
    let mut after = -1;
    let mut last = None;
    loop {
        let batch = backends.audit.head_signatures(after, 500).await.map_err(unreadable_trail)?;
        for signature in &batch {
            println!("{}", head_line(signature));
            after = signature.seq;
        }
        if let Some(newest) = batch.last() {
            last = Some(newest.clone());
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            // A heartbeat renews the newest in place: print it again when it changed.
            let newest = backends.audit.newest_head_signature().await.map_err(unreadable_trail)?;
            if let Some(newest) = newest
                && last.as_ref().is_some_and(|l| l.seq == newest.seq && *l != newest)
            {
                println!("{}", head_line(&newest));
                last = Some(newest);
            }
        }
    }
}

/// The password of a new user. From a terminal: asked on standard error, typed twice without
/// echo, a mismatch refused. Otherwise one line from standard input, its trailing newline
/// stripped.
async fn read_password_line() -> Result<String, Failure> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return tokio::task::spawn_blocking(prompt_password_twice)
            .await
            .map_err(|e| Failure::other(format!("cannot read the password: {e}")))?;
    }
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    stdin.read_line(&mut line).await.map_err(|e| {
        Failure::other(format!("cannot read the password from standard input: {e}"))
    })?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(trimmed.to_owned())
}

/// Reads the password twice from the terminal on standard input, without echo, prompting on
/// standard error (standard output stays for the created user).
fn prompt_password_twice() -> Result<String, Failure> {
    let ask = |prompt: &str| {
        let config = rpassword::ConfigBuilder::new().output_writer(std::io::stderr());
        // The terminal that is standard input, not whichever one controls the process.
        #[cfg(unix)]
        let config = config.input_file_path("/dev/stdin");
        rpassword::prompt_password_with_config(prompt, config.build())
            .map_err(|e| Failure::other(format!("cannot read the password from the terminal: {e}")))
    };
    let password = ask("Password: ")?;
    if ask("Password (again): ")? != password {
        return Err(Failure::other("the passwords do not match; no user was created"));
    }
    Ok(password)
}

async fn rotate_keys(settings: Settings) -> Result<(), Failure> {
    if settings.tokens.secret.is_some() {
        return Err(Failure::usage(
            "PORTCULLIS_JWT_SECRET is set: tokens are signed with that secret; change the secret \
             to rotate",
        ));
    }
    let backends = open_backends(&settings, true).await?;
    let key = keys::new_signing_key(settings.tokens.key_publish_ahead);
    backends.keys.insert_signing_key(&key).await.map_err(|e| Failure::other(e.to_string()))?;
    println!(
        "new signing key {}: in the JWKS of every instance within {} s, signing from {}",
        key.kid,
        keys::RELOAD_INTERVAL.as_secs(),
        key.signs_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::new(&settings.log.filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
