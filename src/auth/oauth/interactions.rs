//! A login page of the team's own (`LOGIN_UI_URL`): it reads the interaction, signs the user
//! in with the JSON API, and accepts (or rejects) the interaction with the user's first-party
//! token. The answer's `redirect_to` finishes the authorization only in the browser that
//! started it (the interaction is bound to that browser's cookie), so an interaction accepted
//! with someone else's token cannot be planted in a victim's browser. Each step is single use.

use serde::{Deserialize, Serialize};

use super::authorize::{Authorization, Next, Pending, bound_to};
use super::browser::SignedIn;
use super::request::Prompt;
use crate::auth::{AuthError, Principal, RequestContext, tokens};
use crate::domain::{SessionId, Timestamp, UserId};
use crate::store::TicketKind;

/// What a login page is told of an interaction.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InteractionView {
    pub client: InteractionClient,
    pub scopes: Vec<String>,
    /// What the user must do: `login`, `consent`.
    pub prompt: Vec<&'static str>,
    pub login_hint: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InteractionClient {
    pub client_id: String,
    pub name: String,
}

/// Where the login page sends the browser next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redirect {
    pub redirect_to: String,
}

/// An interaction the login page decided, waiting for its browser at `redirect_to`.
#[derive(Serialize, Deserialize)]
pub struct Decided {
    pending: Pending,
    /// The user and session of the token that accepted; none when rejected.
    accepted: Option<(UserId, SessionId)>,
    /// Whether the page showed consent and the user gave it.
    consent: bool,
}

impl Authorization {
    /// GET /v1/oauth/interactions/{id}: `None` when it is not waiting.
    pub async fn interaction(&self, id: &str) -> Result<Option<InteractionView>, AuthError> {
        let Some(pending) = self.read_pending(id).await? else { return Ok(None) };
        let mut prompt = Vec::new();
        if pending.login {
            prompt.push("login");
        }
        let (asks, forced) = (pending.consent, pending.forced_consent);
        let consent = match pending.signed_in {
            Some((user, _)) if !pending.login => {
                self.needs_consent(asks, forced, user, &pending.request).await?
            }
            _ => asks || forced,
        };
        if consent {
            prompt.push("consent");
        }
        Ok(Some(InteractionView {
            client: InteractionClient {
                client_id: pending.request.client_id.clone(),
                name: pending.client_name.clone(),
            },
            scopes: pending.request.scopes.clone(),
            prompt,
            login_hint: pending.request.login_hint.clone(),
            expires_at: pending.expires_at,
        }))
    }

    /// Accepts the interaction `id` for the user of `principal`, with their consent if the
    /// page showed it. `NotFound` when it is not waiting; `Conflict` when it needs what the
    /// acceptance does not carry (a consent, or a newer sign-in than the token's).
    pub async fn accept(
        &self,
        id: &str,
        principal: &Principal,
        consent: bool,
    ) -> Result<Redirect, AuthError> {
        let Some(pending) = self.read_pending(id).await? else { return Err(AuthError::NotFound) };
        let request = &pending.request;
        let started =
            pending.expires_at - crate::domain::chrono_duration(self.settings.interaction_ttl);
        let fresh =
            !request.prompt.iter().any(|p| matches!(p, Prompt::Login | Prompt::SelectAccount))
                || principal.signed_in_at >= started;
        let recent = request.max_age.is_none_or(|max_age| {
            let age = (self.clock.now() - principal.signed_in_at).num_seconds();
            i64::try_from(max_age).is_ok_and(|max_age| age < max_age)
        });
        if !(fresh && recent) {
            return Err(AuthError::Conflict("the request asks for a newer sign-in".into()));
        }
        let (asks, forced) = (pending.consent, pending.forced_consent);
        if !consent && self.needs_consent(asks, forced, principal.user, request).await? {
            return Err(AuthError::Conflict("the user must consent: accept with consent".into()));
        }
        let decided =
            Decided { pending, accepted: Some((principal.user, principal.session)), consent };
        self.hand_to_browser(id, &decided).await
    }

    /// Rejects the interaction `id`: the client gets `access_denied`.
    pub async fn reject(&self, id: &str) -> Result<Redirect, AuthError> {
        let Some(pending) = self.read_pending(id).await? else { return Err(AuthError::NotFound) };
        self.hand_to_browser(id, &Decided { pending, accepted: None, consent: false }).await
    }

    /// Takes the interaction and keeps its decision under a new single-use id, for the
    /// browser's visit to `redirect_to`.
    async fn hand_to_browser(&self, id: &str, decided: &Decided) -> Result<Redirect, AuthError> {
        if self.take_any(id).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        let ticket = tokens::random_token();
        let value = serde_json::to_vec(decided).map_err(|e| AuthError::Internal(e.into()))?;
        let now = self.clock.now();
        let key = tokens::hash_token(&ticket);
        let keep_until = decided.pending.expires_at;
        self.tickets.put_ticket(TicketKind::Interaction, &key, &value, keep_until, now).await?;
        let redirect_to = format!("{}/login/resume?ticket={ticket}", self.base());
        Ok(Redirect { redirect_to })
    }

    /// The browser arrived at `redirect_to`: the decision, if it is this browser's. The caller
    /// binds the browser's sign-in cookie to the accepting session and calls `resumed`.
    pub async fn take_decision(
        &self,
        ticket: &str,
        binding: &str,
    ) -> Result<Option<Decided>, AuthError> {
        // Read first: another browser's visit leaves the decision to its own browser.
        if !tokens::is_well_formed(ticket) {
            return Ok(None);
        }
        let key = tokens::hash_token(ticket);
        let now = self.clock.now();
        let read = self.tickets.read_ticket(TicketKind::Interaction, &key, now).await?;
        let bound = read
            .and_then(|value| serde_json::from_slice::<Decided>(&value).ok())
            .is_some_and(|d| bound_to(&d.pending, binding));
        if !bound {
            return Ok(None);
        }
        let Some(value) = self.take_ticket(ticket).await? else { return Ok(None) };
        Ok(serde_json::from_slice::<Decided>(&value).ok())
    }

    /// The authorization's end, for the browser signed in as `who` (when accepted).
    pub async fn resumed(
        &self,
        context: &RequestContext,
        decided: Decided,
        who: Option<SignedIn>,
    ) -> Result<Next, AuthError> {
        let request = decided.pending.request;
        match who {
            Some(who) => {
                let consent = decided.consent.then_some(true);
                self.decided(context, request, who, consent).await
            }
            None => Ok(self.denied(request)),
        }
    }
}

impl Decided {
    /// The user and session of the token that accepted it; `None` for a rejection.
    pub fn accepted(&self) -> Option<(UserId, SessionId)> {
        self.accepted
    }
}
