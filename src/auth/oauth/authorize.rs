//! `/oauth2/authorize` (RFC 6749 §4.1, OpenID Connect Core §3.1.2): the request is checked
//! against its client, then answered with a code at once, or handed to the login or consent
//! page as an interaction, which finishes it. Every step is a single-use ticket, bound to the
//! browser that started the authorization (a cookie of its own), so a step cannot be replayed,
//! nor finished in another browser.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::browser::SignedIn;
use super::error::OAuthError;
use super::registration::{ClientSettings, Consent};
use super::request::{AuthorizationRequest, Prompt, RequestError, ResponseMode};
use super::tokens::REQUEST_URI_PREFIX;
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, RequestContext, tokens};
use crate::domain::{Clock, SessionId, Timestamp, UserId, chrono_duration};
use crate::store::{ClientStore, GrantStore, Taken, TicketKind, TicketStore};

/// What the authorization endpoint depends on beyond its stores.
#[derive(Clone, Debug)]
pub struct AuthorizeSettings {
    /// `ISSUER`: the `iss` of every response (RFC 9207) and the base of the pages' addresses.
    pub issuer: String,
    /// `AUTHORIZATION_CODE_TTL`.
    pub code_ttl: Duration,
    /// `INTERACTION_TTL`: how long a login or consent page may take.
    pub interaction_ttl: Duration,
    /// `LOGIN_UI_URL`: the team's own login page, instead of ours.
    pub login_ui_url: Option<String>,
    /// Whether the provider is on: `ISSUER` is the service's URL, not a name.
    pub provider: bool,
}

/// Where the browser goes next.
#[derive(Debug)]
pub enum Next {
    /// Nowhere: the request names no client, or no redirect URI of its client, so the error is
    /// shown on a page of ours (400) and never sent to an address that is not the client's.
    ErrorPage(String),
    /// Back to the client, with a code or an error.
    Client(ClientAnswer),
    /// To the login or consent page (or `LOGIN_UI_URL`), at this address.
    Page(String),
}

/// An answer for the client, delivered by the browser to the redirect URI.
#[derive(Debug)]
pub struct ClientAnswer {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    /// `code` or `error` and `error_description`, then `state` and `iss`.
    pub params: Vec<(&'static str, String)>,
}

impl ClientAnswer {
    /// The redirect URI with the parameters in its query (`response_mode=query`).
    pub fn location(&self) -> String {
        let mut url = self.redirect_uri.clone();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.params {
            query.append_pair(name, value);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.finish());
        url
    }
}

/// An authorization waiting at a page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthorizationRequest,
    /// The client's name, as the pages show it.
    pub client_name: String,
    /// Whether the user must sign in (again); whether the client asks for consent (unless a
    /// grant of the user already covers the scopes); whether the request asks for it anyway
    /// (`prompt=consent`).
    pub login: bool,
    pub consent: bool,
    #[serde(default)]
    pub forced_consent: bool,
    /// Who signed in for it, once someone did.
    pub signed_in: Option<(UserId, SessionId)>,
    /// The hash of the cookie of the browser that started it.
    binding: String,
    pub expires_at: Timestamp,
}

/// What an authorization code stands for, kept under the code's hash.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CodeGrant {
    pub request: AuthorizationRequest,
    pub user: UserId,
    /// The browser's sign-in session the code was issued in: the grant session's parent.
    pub browser_session: SessionId,
    pub auth_time: Timestamp,
    /// The session's `amr`, in its stored form.
    pub amr: String,
    /// The session the code's tokens belong to, chosen now so that a replay can end it.
    pub grant_session: SessionId,
    pub expires_at: Timestamp,
}

/// How long a used code stays known as used, so that a replay ends what it issued.
const USED_CODE_KEPT: Duration = Duration::from_secs(3_600);

/// The authorization endpoint and the steps its pages finish.
pub struct Authorization {
    pub(in crate::auth) clients: Arc<dyn ClientStore>,
    pub(in crate::auth) tickets: Arc<dyn TicketStore>,
    pub(in crate::auth) grants: Arc<dyn GrantStore>,
    pub(in crate::auth) budgets: Arc<crate::auth::Budgets>,
    pub(in crate::auth) audit: Audit,
    /// Checks an `id_token_hint`.
    pub(in crate::auth) access: Arc<crate::crypto::AccessTokens>,
    pub(in crate::auth) clock: Arc<dyn Clock>,
    pub(in crate::auth) settings: AuthorizeSettings,
}

impl Authorization {
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The base of the addresses the service publishes: `ISSUER` without a trailing slash.
    pub(super) fn base(&self) -> &str {
        self.settings.issuer.trim_end_matches('/')
    }

    /// Whether the OpenID provider and its pages are on.
    pub fn provider(&self) -> bool {
        self.settings.provider
    }

    /// The address's budget of the interaction API (as large as the reads').
    pub async fn admit(&self, context: &RequestContext) -> Result<(), AuthError> {
        self.budgets.limit_client_address(context).await
    }

    /// Checks a request (its parameters, or the pushed request its `request_uri` names) and
    /// decides the next step for a browser signed in as `who`. `binding` is the browser's own
    /// cookie.
    pub async fn begin<'a>(
        &self,
        get: impl Fn(&str) -> Option<&'a str>,
        who: Option<SignedIn>,
        binding: &str,
    ) -> Result<Next, AuthError> {
        let Some(client_id) = get("client_id") else {
            return Ok(Next::ErrorPage("The request names no client (client_id).".into()));
        };
        let Some(client) = self.settings_of(client_id).await? else {
            return Ok(Next::ErrorPage("The request names an unknown client.".into()));
        };
        let request = match get("request_uri") {
            Some(uri) if uri.starts_with(REQUEST_URI_PREFIX) => {
                match self.pushed(client_id, &uri[REQUEST_URI_PREFIX.len()..]).await? {
                    Some(request) => Ok(request),
                    None => {
                        let why = "The authorization request has expired or was already used. \
                                   Return to the application and sign in again.";
                        return Ok(Next::ErrorPage(why.into()));
                    }
                }
            }
            Some(_) => AuthorizationRequest::check(client_id, &client, &get).and_then(|r| {
                Err(RequestError::Refused {
                    error: OAuthError::refused_with(
                        "request_uri_not_supported",
                        "request_uri: only one from this server's /oauth2/par",
                    ),
                    redirect_uri: r.redirect_uri,
                    state: r.state,
                    mode: r.response_mode,
                })
            }),
            None => AuthorizationRequest::check(client_id, &client, &get),
        };
        let request = match request {
            Ok(request) => request,
            Err(RequestError::Untrusted(why)) => {
                return Ok(Next::ErrorPage(format!("The request cannot be answered: {why}.")));
            }
            Err(RequestError::Refused { error, redirect_uri, state, mode }) => {
                return Ok(Next::Client(self.error_answer(error, redirect_uri, state, mode)));
            }
        };
        self.decide(request, &client, who, binding).await
    }

    pub(super) async fn settings_of(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientSettings>, AuthError> {
        let Some(record) = self.clients.client(client_id).await? else { return Ok(None) };
        ClientSettings::from_json(&record.registration).map(Some)
    }

    /// The pushed request a `request_uri` names, taken once, if it is the client's.
    async fn pushed(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<AuthorizationRequest>, AuthError> {
        if !tokens::is_well_formed(secret) {
            return Ok(None);
        }
        let key = tokens::hash_token(secret);
        let now = self.clock.now();
        let Taken::First(value) =
            self.tickets.take_ticket(TicketKind::PushedRequest, &key, now).await?
        else {
            return Ok(None);
        };
        let request: Option<AuthorizationRequest> = serde_json::from_slice(&value).ok();
        Ok(request.filter(|r| r.client_id == client_id))
    }

    /// A code at once, an error for `prompt=none`, or an interaction.
    async fn decide(
        &self,
        request: AuthorizationRequest,
        client: &ClientSettings,
        who: Option<SignedIn>,
        binding: &str,
    ) -> Result<Next, AuthError> {
        let now = self.clock.now();
        let stale = |who: &SignedIn| {
            request.max_age.is_some_and(|max_age| {
                let age = (now - who.auth_time).num_seconds();
                i64::try_from(max_age).is_ok_and(|max_age| age >= max_age)
            })
        };
        // A hint naming another user than the browser's asks for a sign-in as that one.
        let hinted = request
            .id_token_hint
            .as_deref()
            .map(|hint| self.access.id_token_hint(hint).and_then(|h| UserId::parse(&h.sub)));
        let other_user = |who: &SignedIn| hinted.is_some_and(|hinted| hinted != Some(who.user));
        let login = who.is_none_or(|who| stale(&who) || other_user(&who))
            || request.prompt.iter().any(|p| matches!(p, Prompt::Login | Prompt::SelectAccount));
        let forced_consent = request.prompt.contains(&Prompt::Consent);
        let asks = client.consent == Consent::Required;
        let consent = match who {
            Some(who) if !login => {
                self.needs_consent(asks, forced_consent, who.user, &request).await?
            }
            _ => asks || forced_consent,
        };
        if request.prompt.contains(&Prompt::None) {
            let refused = if login {
                Some(("login_required", "the user must sign in"))
            } else if consent {
                Some(("consent_required", "the user must consent"))
            } else {
                None
            };
            if let Some((error, why)) = refused {
                let error = OAuthError::refused_with(error, why);
                let (uri, state, mode) =
                    (request.redirect_uri.clone(), request.state.clone(), request.response_mode);
                return Ok(Next::Client(self.error_answer(error, uri, state, mode)));
            }
        }
        match who {
            Some(who) if !login && !consent => {
                self.issue_code(request, who).await.map(Next::Client)
            }
            _ => {
                let signed_in = who.filter(|_| !login).map(|w| (w.user, w.session));
                let pending = Pending {
                    request,
                    client_name: client.name.clone(),
                    login,
                    consent: asks,
                    forced_consent,
                    signed_in,
                    binding: binding_hash(binding),
                    expires_at: now + chrono_duration(self.settings.interaction_ttl),
                };
                self.hand_to_page(&pending).await.map(Next::Page)
            }
        }
    }

    /// Keeps `pending` under a new interaction id; the address of the page that continues it.
    async fn hand_to_page(&self, pending: &Pending) -> Result<String, AuthError> {
        let id = tokens::random_token();
        let value = serde_json::to_vec(pending).map_err(|e| AuthError::Internal(e.into()))?;
        let key = tokens::hash_token(&id);
        let now = self.clock.now();
        self.tickets
            .put_ticket(TicketKind::Interaction, &key, &value, pending.expires_at, now)
            .await?;
        let base = match (&self.settings.login_ui_url, pending.login) {
            (Some(url), _) => url.clone(),
            (None, true) => format!("{}/login", self.base()),
            (None, false) => format!("{}/consent", self.base()),
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{separator}interaction={id}"))
    }

    /// The interaction `id`, if it is waiting and belongs to this browser; it stays waiting.
    pub async fn pending(&self, id: &str, binding: &str) -> Result<Option<Pending>, AuthError> {
        Ok(self.read_pending(id).await?.filter(|p| bound_to(p, binding)))
    }

    /// The interaction `id`, if it is waiting, whichever browser started it.
    pub(super) async fn read_pending(&self, id: &str) -> Result<Option<Pending>, AuthError> {
        if !tokens::is_well_formed(id) {
            return Ok(None);
        }
        let key = tokens::hash_token(id);
        let value =
            self.tickets.read_ticket(TicketKind::Interaction, &key, self.clock.now()).await?;
        Ok(value.and_then(|v| serde_json::from_slice::<Pending>(&v).ok()))
    }

    /// Takes the interaction `id` for this browser: `None` once it was taken, or elsewhere.
    async fn take(&self, id: &str, binding: &str) -> Result<Option<Pending>, AuthError> {
        Ok(self.take_any(id).await?.filter(|p| bound_to(p, binding)))
    }

    /// Takes the interaction `id`, whichever browser started it.
    pub(super) async fn take_any(&self, id: &str) -> Result<Option<Pending>, AuthError> {
        let Some(value) = self.take_ticket(id).await? else { return Ok(None) };
        Ok(serde_json::from_slice::<Pending>(&value).ok())
    }

    /// Takes the interaction ticket `id`: its value, once.
    pub(super) async fn take_ticket(&self, id: &str) -> Result<Option<Vec<u8>>, AuthError> {
        if !tokens::is_well_formed(id) {
            return Ok(None);
        }
        let key = tokens::hash_token(id);
        let taken =
            self.tickets.take_ticket(TicketKind::Interaction, &key, self.clock.now()).await?;
        Ok(match taken {
            Taken::First(value) => Some(value),
            Taken::Again(_) | Taken::Missing => None,
        })
    }

    /// The login page signed `who` in for the interaction `id`: on to consent, or the code.
    /// `None` when the interaction is gone (used, expired, or another browser's).
    pub async fn signed_in(
        &self,
        id: &str,
        binding: &str,
        who: SignedIn,
    ) -> Result<Option<Next>, AuthError> {
        let Some(mut pending) = self.take(id, binding).await? else { return Ok(None) };
        let (asks, forced) = (pending.consent, pending.forced_consent);
        if self.needs_consent(asks, forced, who.user, &pending.request).await? {
            pending.login = false;
            pending.signed_in = Some((who.user, who.session));
            return self.hand_to_page(&pending).await.map(|page| Some(Next::Page(page)));
        }
        self.issue_code(pending.request, who).await.map(|answer| Some(Next::Client(answer)))
    }

    /// The consent page's decision for the interaction `id`, by the browser signed in as `who`
    /// (the one that signed in for it). `None` when the interaction is gone or not `who`'s.
    pub async fn consented(
        &self,
        context: &RequestContext,
        id: &str,
        binding: &str,
        who: SignedIn,
        allow: bool,
    ) -> Result<Option<Next>, AuthError> {
        let Some(pending) = self.take(id, binding).await? else { return Ok(None) };
        if pending.login || pending.signed_in != Some((who.user, who.session)) {
            return Ok(None);
        }
        self.decided(context, pending.request, who, Some(allow)).await.map(Some)
    }

    /// `access_denied`, for the client.
    pub(super) fn denied(&self, request: AuthorizationRequest) -> Next {
        let error = OAuthError::refused_with("access_denied", "the user denied the request");
        let (uri, state, mode) = (request.redirect_uri, request.state, request.response_mode);
        Next::Client(self.error_answer(error, uri, state, mode))
    }

    /// The end of an interaction: `access_denied` when the user denied, else the code (with
    /// the consent recorded when the user gave it).
    pub(super) async fn decided(
        &self,
        context: &RequestContext,
        request: AuthorizationRequest,
        who: SignedIn,
        consent: Option<bool>,
    ) -> Result<Next, AuthError> {
        if consent == Some(false) {
            return Ok(self.denied(request));
        }
        if consent == Some(true) {
            let now = self.clock.now();
            let event = AuditEvent::new(EventType::ConsentGranted, Outcome::Success, context, now)
                .user(who.user)
                .client(&request.client_id)
                .detail(request.scopes.join(" "));
            self.audit.record(event).await?;
        }
        self.issue_code(request, who).await.map(Next::Client)
    }

    /// Whether the consent page must be shown: the request asks for it, or the client does and
    /// the user's grant to it does not cover every scope asked for.
    pub(super) async fn needs_consent(
        &self,
        asks: bool,
        forced: bool,
        user: UserId,
        request: &AuthorizationRequest,
    ) -> Result<bool, AuthError> {
        if forced {
            return Ok(true);
        }
        if !asks {
            return Ok(false);
        }
        let grant = self.grants.grant(user, &request.client_id).await?;
        Ok(!grant.is_some_and(|g| request.scopes.iter().all(|s| g.scopes.contains(s))))
    }

    /// A code for `who`, bound to everything the request said (RFC 6749 §4.1.2). The grant
    /// records the scopes (merged with earlier ones), so the user's apps list it.
    async fn issue_code(
        &self,
        request: AuthorizationRequest,
        who: SignedIn,
    ) -> Result<ClientAnswer, AuthError> {
        let now = self.clock.now();
        let code = tokens::random_token();
        let expires_at = now + chrono_duration(self.settings.code_ttl);
        let grant = CodeGrant {
            request,
            user: who.user,
            browser_session: who.session,
            auth_time: who.auth_time,
            amr: who.amr.to_column(),
            grant_session: SessionId::new(),
            expires_at,
        };
        let value = serde_json::to_vec(&grant).map_err(|e| AuthError::Internal(e.into()))?;
        let keep_until = expires_at + chrono_duration(USED_CODE_KEPT);
        let key = tokens::hash_token(&code);
        self.tickets.put_ticket(TicketKind::Code, &key, &value, keep_until, now).await?;
        let request = grant.request;
        self.grants.put_grant(who.user, &request.client_id, &request.scopes, now).await?;
        let mut params = vec![("code", code)];
        params.extend(request.state.map(|state| ("state", state)));
        params.push(("iss", self.settings.issuer.clone()));
        Ok(ClientAnswer { redirect_uri: request.redirect_uri, mode: request.response_mode, params })
    }

    /// An error for the client at its (checked) redirect URI, with `state` and `iss`.
    fn error_answer(
        &self,
        error: OAuthError,
        redirect_uri: String,
        state: Option<String>,
        mode: ResponseMode,
    ) -> ClientAnswer {
        let (code, description) = match error {
            OAuthError::Refused { error, description } => (error, description),
            OAuthError::InvalidClient(why) => ("unauthorized_client", why.to_owned()),
            OAuthError::RateLimited { .. } => {
                ("temporarily_unavailable", "too many requests".to_owned())
            }
            OAuthError::Failed(_) => ("server_error", "the request could not be completed".into()),
        };
        let mut params = vec![("error", code.to_owned()), ("error_description", description)];
        params.extend(state.map(|state| ("state", state)));
        params.push(("iss", self.settings.issuer.clone()));
        ClientAnswer { redirect_uri, mode, params }
    }
}

fn binding_hash(binding: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tokens::hash_token(binding).0)
}

/// Whether `pending` was started by the browser whose cookie is `binding` (compared in
/// constant time: the hash is of a secret).
pub(super) fn bound_to(pending: &Pending, binding: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(pending.binding.as_bytes().ct_eq(binding_hash(binding).as_bytes()))
}
