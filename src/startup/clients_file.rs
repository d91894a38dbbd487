//! `CLIENTS_FILE`: the OAuth clients an operator keeps in a file, created or updated at every
//! start. Each `[[client]]` table holds the client object's members, `client_id`, and the secret
//! of a confidential client as `client_secret_hash` (an Argon2id PHC string) or
//! `client_secret_env` (the name of a variable that holds it).

use std::path::Path;

use crate::auth::{AuthError, Clients, FileClient, FileSecret, NewClient};

use super::errors::StartupError;

const VARIABLE: &str = "PORTCULLIS_CLIENTS_FILE";

fn config(message: String) -> StartupError {
    StartupError::Config { variable: VARIABLE, message }
}

/// Reads the file at `path` and puts its clients; returns how many. `env` reads a variable.
pub(super) async fn put_clients_file(
    path: &Path,
    clients: &Clients,
    env: impl Fn(&str) -> Option<String>,
) -> Result<usize, StartupError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| config(format!("cannot read {}: {e}", path.display())))?;
    let entries = parse(&text, env).map_err(config)?;
    clients.put_file_clients(entries).await.map_err(|error| match error {
        AuthError::InvalidQuery(why) | AuthError::Conflict(why) => config(why),
        other => StartupError::Auth(other),
    })
}

/// The clients of a file's text.
fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Vec<FileClient>, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    let entries = match table.remove("client") {
        None => Vec::new(),
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => return Err("`client` must be an array of tables ([[client]])".to_owned()),
    };
    if let Some(other) = table.keys().next() {
        return Err(format!("unknown key {other:?}: the file holds [[client]] tables"));
    }
    entries.into_iter().enumerate().map(|(n, entry)| client(n + 1, entry, &env)).collect()
}

fn client(
    n: usize,
    entry: toml::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<FileClient, String> {
    let toml::Value::Table(mut entry) = entry else {
        return Err(format!("client {n}: not a table"));
    };
    let mut text = |key: &str| match entry.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(format!("client {n}: {key} must be a string")),
    };
    let client_id =
        text("client_id")?.ok_or_else(|| format!("client {n}: client_id is required"))?;
    let secret = match (text("client_secret_hash")?, text("client_secret_env")?) {
        (Some(_), Some(_)) => {
            let why = "give client_secret_hash or client_secret_env, not both";
            return Err(format!("client {client_id:?}: {why}"));
        }
        (Some(hash), None) => Some(FileSecret::Hash(hash)),
        (None, Some(variable)) => {
            let value = env(&variable).ok_or_else(|| {
                format!("client {client_id:?}: the variable {variable} is not set")
            })?;
            Some(FileSecret::Plain(value.into()))
        }
        (None, None) => None,
    };
    let settings: NewClient =
        toml::Value::Table(entry).try_into().map_err(|e| format!("client {client_id:?}: {e}"))?;
    Ok(FileClient { client_id, secret, settings })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_file_names_its_clients_and_their_secrets() {
        let text = r#"
            [[client]]
            client_id = "grafana"
            name = "Grafana"
            redirect_uris = ["https://grafana.example.com/login/generic_oauth"]
            client_secret_env = "GRAFANA_SECRET"

            [[client]]
            client_id = "spa"
            name = "SPA"
            type = "public"
            redirect_uris = ["https://spa.example.com/cb"]
        "#;
        let env = |name: &str| (name == "GRAFANA_SECRET").then(|| "s".repeat(40));
        let clients = parse(text, env).unwrap_or_default();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].client_id, "grafana");
        assert!(clients[0].secret.is_some());
        assert!(clients[1].secret.is_none());
        let none = |_: &str| None;
        for bad in [
            "client = 1",
            "[other]\nx = 1",
            "[[client]]\nname = \"no id\"",
            "[[client]]\nclient_id = \"a\"\nname = \"x\"\nclient_secret_env = \"UNSET\"",
            "[[client]]\nclient_id = \"a\"\nname = \"x\"\nunknown = true",
            "[[client]]\nclient_id = 7\nname = \"x\"",
        ] {
            assert!(parse(bad, none).is_err(), "{bad}");
        }
    }
}
