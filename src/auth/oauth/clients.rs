//! The registry of OAuth clients: registering, changing, listing and deleting them, and their
//! secrets (256 random bits, shown once, stored as a SHA-256 hash: a secret that cannot be
//! guessed needs no slow hash).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::registration::{ClientSettings, ClientType, ClientUpdate, NewClient};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::paging::{decode_cursor, encode_cursor};
use crate::auth::{Actor, AuthError, RequestContext, tokens};
use crate::domain::{Clock, Timestamp, chrono_duration};
use crate::store::{ClientCursor, ClientRecord, ClientStore};

/// Clients in a page when the admin does not say.
pub const DEFAULT_CLIENTS_PAGE: u32 = 50;
/// The most clients in one page.
pub const MAX_CLIENTS_PAGE: u32 = 200;
/// The longest a rotated secret may keep working.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(30 * 86_400);

/// A client as an admin sees it; `client_secret` only in the answer that made the secret.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Client)]
pub struct ClientView {
    pub client_id: String,
    #[serde(flatten)]
    pub settings: ClientSettings,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for ClientView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientView")
            .field("client_id", &self.client_id)
            .field("settings", &self.settings)
            .field("client_secret", &self.client_secret.as_ref().map(|_| ".."))
            .finish_non_exhaustive()
    }
}

/// One page of clients, newest first, and the cursor of the next page if there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ClientPage)]
pub struct ClientPage {
    pub clients: Vec<ClientView>,
    pub next_cursor: Option<String>,
}

/// A new secret, shown once.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientSecret {
    pub client_secret: String,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// The registered clients: it holds only their store, the trail and the clock.
pub struct Clients {
    store: Arc<dyn ClientStore>,
    audit: Audit,
    clock: Arc<dyn Clock>,
}

impl Clients {
    pub fn new(store: Arc<dyn ClientStore>, audit: Audit, clock: Arc<dyn Clock>) -> Self {
        Self { store, audit, clock }
    }

    /// The audit trail, whose head the command line signs after it wrote to it.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// `POST /v1/admin/clients`: a confidential client gets a secret, shown in this answer only.
    pub async fn create(
        &self,
        context: &RequestContext,
        actor: Actor,
        new: NewClient,
    ) -> Result<ClientView, AuthError> {
        let settings = new.into_settings()?;
        let secret = (settings.client_type == ClientType::Confidential).then(tokens::random_token);
        let record = ClientRecord {
            client_id: URL_SAFE_NO_PAD.encode(tokens::random_bytes::<16>()),
            registration: settings.to_json()?,
            secret_hash: secret.as_deref().map(secret_hash),
            previous_secret: None,
            from_file: false,
            created_at: self.now(),
        };
        self.store.insert_client(&record).await?;
        self.record(context, actor, EventType::ClientCreated, &record.client_id, "").await?;
        Ok(ClientView {
            client_id: record.client_id,
            settings,
            created_at: record.created_at,
            client_secret: secret,
        })
    }

    /// `GET /v1/admin/clients/{client_id}`.
    pub async fn get(&self, client_id: &str) -> Result<ClientView, AuthError> {
        let record = self.store.client(client_id).await?.ok_or(AuthError::NotFound)?;
        view(&record)
    }

    /// `GET /v1/admin/clients`: newest first.
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ClientPage, AuthError> {
        let after = cursor
            .map(|raw| decode_cursor(raw, |id| Some(id.to_owned())))
            .transpose()?
            .map(|(created_at, client_id)| ClientCursor { created_at, client_id });
        let limit = limit.unwrap_or(DEFAULT_CLIENTS_PAGE).clamp(1, MAX_CLIENTS_PAGE);
        let mut records = self.store.list_clients(after.as_ref(), limit + 1).await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next_cursor = more
            .then(|| records.last().map(|c| encode_cursor(c.created_at, &c.client_id)))
            .flatten();
        let clients = records.iter().map(view).collect::<Result<_, _>>()?;
        Ok(ClientPage { clients, next_cursor })
    }

    /// `PATCH /v1/admin/clients/{client_id}`: the members present replace the client's.
    pub async fn update(
        &self,
        context: &RequestContext,
        actor: Actor,
        client_id: &str,
        update: ClientUpdate,
    ) -> Result<ClientView, AuthError> {
        let record = self.changeable(client_id).await?;
        let settings = update.apply(ClientSettings::from_json(&record.registration)?)?;
        if !self.store.update_client(client_id, &settings.to_json()?).await? {
            return Err(AuthError::NotFound);
        }
        self.record(context, actor, EventType::ClientUpdated, client_id, "").await?;
        Ok(ClientView { settings, ..view(&record)? })
    }

    /// `DELETE /v1/admin/clients/{client_id}`.
    pub async fn delete(
        &self,
        context: &RequestContext,
        actor: Actor,
        client_id: &str,
    ) -> Result<(), AuthError> {
        self.changeable(client_id).await?;
        if !self.store.delete_client(client_id).await? {
            return Err(AuthError::NotFound);
        }
        self.record(context, actor, EventType::ClientDeleted, client_id, "").await
    }

    /// `POST /v1/admin/clients/{client_id}/secret`: a new secret; the old one stops working at
    /// once, or after `keep_previous_for` (at most `MAX_SECRET_OVERLAP`).
    pub async fn rotate_secret(
        &self,
        context: &RequestContext,
        actor: Actor,
        client_id: &str,
        keep_previous_for: Option<Duration>,
    ) -> Result<ClientSecret, AuthError> {
        let record = self.changeable(client_id).await?;
        let settings = ClientSettings::from_json(&record.registration)?;
        if settings.client_type == ClientType::Public {
            return Err(AuthError::Conflict("a public client has no secret".into()));
        }
        if keep_previous_for.is_some_and(|d| d > MAX_SECRET_OVERLAP) {
            let why = "keep_previous_for: at most 30 days".to_owned();
            return Err(AuthError::InvalidQuery(why));
        }
        let secret = tokens::random_token();
        let until = keep_previous_for.map(|d| self.now() + chrono_duration(d));
        if !self.store.replace_client_secret(client_id, &secret_hash(&secret), until).await? {
            return Err(AuthError::NotFound);
        }
        let detail = match keep_previous_for {
            Some(d) => format!("the previous secret works {}s more", d.as_secs()),
            None => "the previous secret stopped working".to_owned(),
        };
        self.record(context, actor, EventType::ClientSecretRotated, client_id, &detail).await?;
        Ok(ClientSecret { client_secret: secret })
    }

    /// Creates or updates the clients `CLIENTS_FILE` names, each checked as the API checks a
    /// new one; returns how many. A client the API made keeps its id: naming it is a conflict.
    pub async fn put_file_clients(&self, clients: Vec<FileClient>) -> Result<usize, AuthError> {
        let count = clients.len();
        for FileClient { client_id, secret, settings } in clients {
            let named =
                |why: String| AuthError::InvalidQuery(format!("client {client_id:?}: {why}"));
            if !is_client_id(&client_id) {
                return Err(named("client_id: 1 to 100 visible ASCII characters".to_owned()));
            }
            let settings = settings.into_settings().map_err(|e| named(e.to_string()))?;
            let secret_hash = match (settings.client_type, secret) {
                (ClientType::Public, None) => None,
                (ClientType::Public, Some(_)) => {
                    return Err(named("a public client has no secret".to_owned()));
                }
                (ClientType::Confidential, None) => {
                    let why = "a confidential client needs client_secret_hash or client_secret_env";
                    return Err(named(why.to_owned()));
                }
                (ClientType::Confidential, Some(secret)) => Some(secret.hash().map_err(named)?),
            };
            let record = ClientRecord {
                client_id: client_id.clone(),
                registration: settings.to_json()?,
                secret_hash,
                previous_secret: None,
                from_file: true,
                created_at: self.now(),
            };
            if !self.store.put_file_client(&record).await? {
                let why = "a client made through the API has this id".to_owned();
                return Err(AuthError::Conflict(format!("client {client_id:?}: {why}")));
            }
        }
        Ok(count)
    }

    /// A client the API may change: it exists, and `CLIENTS_FILE` does not own it.
    async fn changeable(&self, client_id: &str) -> Result<ClientRecord, AuthError> {
        let record = self.store.client(client_id).await?.ok_or(AuthError::NotFound)?;
        if record.from_file {
            let why = "the client comes from CLIENTS_FILE: change it there".to_owned();
            return Err(AuthError::Conflict(why));
        }
        Ok(record)
    }

    async fn record(
        &self,
        context: &RequestContext,
        actor: Actor,
        kind: EventType,
        client_id: &str,
        detail: &str,
    ) -> Result<(), AuthError> {
        let mut text = format!("client {client_id} {}", actor.by());
        if !detail.is_empty() {
            text = format!("{text}; {detail}");
        }
        let mut event = AuditEvent::new(kind, Outcome::Success, context, self.now())
            .client(client_id)
            .detail(text);
        event.actor_id = actor.id();
        Ok(self.audit.record(event).await?)
    }
}

/// A client of `CLIENTS_FILE`: its id, its secret (for a confidential one) and its settings.
pub struct FileClient {
    pub client_id: String,
    pub secret: Option<FileSecret>,
    pub settings: NewClient,
}

/// The secret of a file client: the hash the file gives (an Argon2id PHC string), or the secret
/// itself, read from the variable the file names. Its `Debug` shows neither.
pub enum FileSecret {
    Hash(String),
    Plain(secrecy::SecretString),
}

impl std::fmt::Debug for FileSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileSecret(..)")
    }
}

/// The shortest secret a file may give in clear: 32 characters.
const MIN_FILE_SECRET_CHARS: usize = 32;

impl FileSecret {
    fn hash(self) -> Result<String, String> {
        use secrecy::ExposeSecret;
        match self {
            Self::Hash(hash) if hash.starts_with("$argon2id$") => Ok(hash),
            Self::Hash(_) => Err("client_secret_hash: an Argon2id PHC string ($argon2id$…)".into()),
            Self::Plain(secret)
                if secret.expose_secret().chars().count() >= MIN_FILE_SECRET_CHARS =>
            {
                Ok(secret_hash(secret.expose_secret()))
            }
            Self::Plain(_) => Err(format!(
                "client_secret_env: the secret must be at least {MIN_FILE_SECRET_CHARS} characters"
            )),
        }
    }
}

/// A client id a file may choose: 1 to 100 visible ASCII characters (RFC 6749 §A.1, without
/// spaces).
fn is_client_id(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// The stored form of a generated secret: `sha256:` and the digest, base64url.
fn secret_hash(secret: &str) -> String {
    format!("sha256:{}", URL_SAFE_NO_PAD.encode(tokens::hash_token(secret).0))
}

fn view(record: &ClientRecord) -> Result<ClientView, AuthError> {
    Ok(ClientView {
        client_id: record.client_id.clone(),
        settings: ClientSettings::from_json(&record.registration)?,
        created_at: record.created_at,
        client_secret: None,
    })
}
