//! `user …`: the account commands. They build account administration alone (no signing key,
//! refresh-successor key or second-factor key is read or created), apply the migrations first,
//! and sign the audit trail's head after they write to it.

use std::sync::Arc;

use clap::Subcommand;
use tokio::io::AsyncBufReadExt;

use crate::auth::{AuthError, RequestContext};
use crate::config::Settings;
use crate::domain::{Role, SystemClock};
use crate::startup::{build_administration, new_metrics, open_backends};

use super::{Failure, sign_head};

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

pub(super) async fn run(settings: Settings, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Create { email, admin } => create_user(settings, &email, admin).await,
        UserCommand::Unlock { email } => unlock(settings, &email).await,
        UserCommand::ResetMfa { email } => reset_mfa(settings, &email).await,
        UserCommand::List { email } => list_users(settings, email.as_deref()).await,
        UserCommand::Disable { email } => {
            administer(settings, &email, Administration::Disable).await
        }
        UserCommand::Enable { email } => administer(settings, &email, Administration::Enable).await,
        UserCommand::Delete { email } => administer(settings, &email, Administration::Delete).await,
    }
}

async fn create_user(settings: Settings, email: &str, admin: bool) -> Result<(), Failure> {
    let password = read_password_line().await?;
    let auth = auth_for_commands(&settings).await?;
    let roles = if admin { vec![Role::User, Role::Admin] } else { vec![Role::User] };
    let user = auth
        .registration()
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
    sign_head(auth.audit()).await;
    let view = serde_json::json!({
        "id": user.id, "email": user.email, "created_at": user.created_at, "roles": user.roles,
    });
    println!("{view}");
    Ok(())
}

async fn unlock(settings: Settings, email: &str) -> Result<(), Failure> {
    let auth = auth_for_commands(&settings).await?;
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
    sign_head(auth.audit()).await;
    println!("unlocked {}", crate::domain::Email::normalise_key(email));
    Ok(())
}

/// What `user disable / enable / delete` does.
#[derive(Clone, Copy)]
enum Administration {
    Disable,
    Enable,
    Delete,
}

/// Administration as the account commands use it: migrated, on the configured backends.
async fn auth_for_commands(settings: &Settings) -> Result<crate::auth::Administration, Failure> {
    let backends = open_backends(settings, true).await?;
    let clock = Arc::new(SystemClock);
    Ok(build_administration(settings, &backends, new_metrics()?, clock)?)
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
            sign_head(auth.audit()).await;
            println!("deleted {}", user.email.as_str());
            return Ok(());
        }
    };
    auth.update_user(&context, actor, user.id, change).await.map_err(failure)?;
    sign_head(auth.audit()).await;
    println!("{done} {}", user.email.as_str());
    Ok(())
}

async fn reset_mfa(settings: Settings, email: &str) -> Result<(), Failure> {
    let auth = auth_for_commands(&settings).await?;
    let removed = auth
        .reset_second_factors(&RequestContext::default(), email, "by the command line")
        .await
        .map_err(|error| match error {
            AuthError::NotFound => Failure::other(format!("no account has the email {email:?}")),
            other => Failure::other(other.to_string()),
        })?;
    sign_head(auth.audit()).await;
    println!("removed {removed} second factors of {}", crate::domain::Email::normalise_key(email));
    Ok(())
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
