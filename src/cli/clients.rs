//! `client …`: the OAuth client commands, as the admin API does them. They open the database
//! and the client registry alone (no key is read or created), apply the migrations first, and
//! sign the audit trail's head after they write to it.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use crate::auth::{Actor, AuthError, Clients, NewClient, RequestContext};
use crate::config::Settings;
use crate::domain::SystemClock;
use crate::startup::{build_clients, new_metrics, open_backends};

use super::{Failure, sign_head};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an OAuth client; prints the client object, with its secret, as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (an SPA, a mobile or desktop app): no secret, PKCE always.
        #[arg(long)]
        public: bool,
        /// Sign users in without asking their consent (first-party apps).
        #[arg(long)]
        skip_consent: bool,
        /// A grant type (authorization_code, refresh_token, client_credentials); repeatable.
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        /// A scope the client may ask for; repeatable.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
    },
    /// Print the clients as JSON lines, newest first.
    List,
    /// Print one client as JSON.
    Show {
        #[arg(long)]
        id: String,
    },
    /// Delete a client.
    Delete {
        #[arg(long)]
        id: String,
    },
    /// Give a confidential client a new secret (the old one stops working at once); prints it.
    RotateSecret {
        #[arg(long)]
        id: String,
    },
}

pub(super) async fn run(settings: Settings, command: ClientCommand) -> Result<(), Failure> {
    let backends = open_backends(&settings, true).await?;
    let clients = build_clients(&backends, new_metrics()?, Arc::new(SystemClock));
    let context = RequestContext::default();
    let actor = Actor::CommandLine;
    match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            public,
            skip_consent,
            grants,
            scopes,
            post_logout_redirect_uris,
        } => {
            let mut body = json!({
                "name": name,
                "type": if public { "public" } else { "confidential" },
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": post_logout_redirect_uris,
                "consent": if skip_consent { "skip" } else { "required" },
            });
            if !grants.is_empty() {
                body["grant_types"] = json!(grants);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            let new: NewClient = serde_json::from_value(body)
                .map_err(|e| Failure::usage(format!("client create: {e}")))?;
            let client = clients.create(&context, actor, new).await.map_err(failure)?;
            sign_head(clients.audit()).await;
            print(&client)
        }
        ClientCommand::List => {
            let mut cursor = None;
            loop {
                let page = clients.list(cursor.as_deref(), Some(200)).await.map_err(failure)?;
                for client in &page.clients {
                    print(client)?;
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => return Ok(()),
                }
            }
        }
        ClientCommand::Show { id } => print(&clients.get(&id).await.map_err(failure)?),
        ClientCommand::Delete { id } => {
            clients.delete(&context, actor, &id).await.map_err(failure)?;
            sign_head(clients.audit()).await;
            println!("deleted {id}");
            Ok(())
        }
        ClientCommand::RotateSecret { id } => {
            let secret = rotate(&clients, &context, &id).await?;
            sign_head(clients.audit()).await;
            print(&json!({ "client_secret": secret }))
        }
    }
}

async fn rotate(clients: &Clients, context: &RequestContext, id: &str) -> Result<String, Failure> {
    let rotated = clients.rotate_secret(context, Actor::CommandLine, id, None).await;
    Ok(rotated.map_err(failure)?.client_secret)
}

fn print(value: &impl serde::Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(|e| Failure::other(e.to_string()))?;
    println!("{line}");
    Ok(())
}

fn failure(error: AuthError) -> Failure {
    match error {
        AuthError::NotFound => Failure::other("no client has that id"),
        AuthError::InvalidQuery(why) => Failure::usage(why),
        other => Failure::other(other.to_string()),
    }
}
