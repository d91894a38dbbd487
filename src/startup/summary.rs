//! What `serve` says in its one line at start: the version, the backends in use (never a
//! password or other credentials), the data directory, and what this start changed.

use crate::config::{DatabaseUrl, Settings};

/// What a start chose and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartSummary {
    /// `sqlite PATH`, or `postgres HOST:PORT/DATABASE`.
    pub database: String,
    /// `embedded`, `redis HOST:PORT[/DB]`, or `redis-cluster HOST:PORT,...`.
    pub session_store: String,
    /// The data directory, absolute.
    pub data_dir: String,
    /// How many database migrations this start applied (0 with `--no-migrate`).
    pub migrations_applied: usize,
    /// Whether this start found no signing key and generated the first one.
    pub signing_key_generated: bool,
}

impl StartSummary {
    /// The backends and data directory `settings` name; what the start did is filled in later.
    pub fn of(settings: &Settings) -> Self {
        let data_dir = std::path::absolute(&settings.storage.data_dir)
            .unwrap_or_else(|_| settings.storage.data_dir.clone())
            .display()
            .to_string();
        Self {
            database: database(&settings.storage.database_url),
            session_store: settings
                .storage
                .redis_url
                .as_deref()
                .map_or("embedded".to_owned(), redis),
            data_dir,
            migrations_applied: 0,
            signing_key_generated: false,
        }
    }
}

fn database(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Embedded(path) => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            format!("sqlite {}", path.display())
        }
        DatabaseUrl::Sqlite(url) => {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            format!("sqlite {}", path.split_once('?').map_or(path, |(path, _)| path))
        }
        DatabaseUrl::Postgres(url) => format!("postgres {}", postgres_address(url)),
    }
}

/// `HOST:PORT/DATABASE` of a PostgreSQL URL, without its user and password.
pub fn postgres_address(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else { return "(unreadable URL)".to_owned() };
    let query = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v);
    let host = match parsed.host_str().filter(|h| !h.is_empty()) {
        Some(host) => host.to_owned(),
        None => query("host").map_or("localhost".to_owned(), |h| h.into_owned()),
    };
    let port = parsed.port().unwrap_or(5432);
    let database = parsed.path().trim_start_matches('/');
    let database = match database {
        "" => query("dbname").map_or_else(String::new, |d| d.into_owned()),
        name => name.to_owned(),
    };
    format!("{host}:{port}/{database}")
}

/// The kind and the nodes of a Redis URL, without credentials.
pub fn redis(url: &str) -> String {
    if let Some(seeds) = url.strip_prefix("redis+cluster://") {
        let hosts = seeds.rsplit_once('@').map_or(seeds, |(_, hosts)| hosts);
        return format!("redis-cluster {}", hosts.trim_end_matches('/'));
    }
    let Ok(parsed) = url::Url::parse(url) else { return "redis (unreadable URL)".to_owned() };
    let kind = if parsed.scheme() == "rediss" { "redis (TLS)" } else { "redis" };
    match parsed.host_str() {
        Some(host) if !host.is_empty() => {
            let port = parsed.port().unwrap_or(6379);
            let db = parsed.path().trim_start_matches('/');
            let db = if db.is_empty() { String::new() } else { format!("/{db}") };
            format!("{kind} {host}:{port}{db}")
        }
        // A Unix socket: its path.
        _ => format!("{kind} {}", parsed.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_credentials_are_shown() {
        assert_eq!(
            postgres_address("postgres://ada:secret@db.example:6543/portcullis?sslmode=require"),
            "db.example:6543/portcullis"
        );
        assert_eq!(postgres_address("postgresql://db/app"), "db:5432/app");
        assert_eq!(redis("redis://:secret@cache:6380/2"), "redis cache:6380/2");
        assert_eq!(redis("rediss://user:secret@cache"), "redis (TLS) cache:6379");
        assert_eq!(
            redis("redis+cluster://user:secret@10.0.0.1:6379,10.0.0.2:6379"),
            "redis-cluster 10.0.0.1:6379,10.0.0.2:6379"
        );
        assert_eq!(
            database(&DatabaseUrl::Sqlite("sqlite:///tmp/a.db?mode=rwc".into())),
            "sqlite /tmp/a.db"
        );
    }
}
