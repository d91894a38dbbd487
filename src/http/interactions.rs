//! `/v1/oauth/interactions/*`: the JSON API of a login page of the team's own
//! (`LOGIN_UI_URL`), and `/login/resume`, where the browser finishes the authorization.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Authenticated, Context, OptionalJsonBody};
use super::openapi::problems;
use super::pages::{Browsing, cookies, respond};
use crate::auth::AuthError;
use crate::auth::{Authorization, InteractionView, Redirect};
use crate::error::{ApiError, ErrorCode};

/// The body of `accept`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The page showed the consent and the user gave it.
    #[serde(default)]
    consent: bool,
}

problems!(InteractionProblems: [NotFound, RateLimited, ServiceUnavailable]);

/// GET /v1/oauth/interactions/{id}.
#[utoipa::path(
    get, path = "/v1/oauth/interactions/{id}", tag = "oauth",
    summary = "An authorization waiting at the login page",
    description = "The id (the `interaction` parameter the login page was given) is the \
        capability. 404 once it was used or expired.",
    params(("id" = String, Path, description = "The interaction")),
    responses((status = 200, description = "The request", body = InteractionView), InteractionProblems),
)]
pub async fn interaction(
    State(authorization): State<Arc<Authorization>>,
    Context(context): Context,
    Path(id): Path<String>,
) -> Result<Json<InteractionView>, ApiError> {
    authorization.admit(&context).await?;
    let view = authorization.interaction(&id).await?;
    view.map(Json).ok_or_else(gone)
}

/// An interaction that is not waiting: never started, used, or expired.
fn gone() -> ApiError {
    ApiError::new(ErrorCode::NotFound).detail("the interaction is unknown, used or expired")
}

fn or_gone(error: AuthError) -> ApiError {
    match error {
        AuthError::NotFound => gone(),
        other => other.into(),
    }
}

problems!(AcceptProblems: JSON_BODY, [Unauthorized, NotFound, Conflict, RateLimited, ServiceUnavailable]);

/// POST /v1/oauth/interactions/{id}/accept.
#[utoipa::path(
    post, path = "/v1/oauth/interactions/{id}/accept", tag = "oauth",
    summary = "Accept an authorization for the signed-in user",
    description = "With the user's first-party access token, and `{\"consent\": true}` when the \
        page showed the consent. 409 when the request needs a consent the body does not give, \
        or a newer sign-in than the token's (`prompt=login`, `max_age`). The browser that \
        started the authorization is then sent to `redirect_to`.",
    params(("id" = String, Path, description = "The interaction")),
    request_body(content = Option<Acceptance>),
    security(("bearer" = [])),
    responses((status = 200, description = "Where to send the browser", body = Redirect), AcceptProblems),
)]
pub async fn accept(
    State(authorization): State<Arc<Authorization>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<Acceptance>,
) -> Result<Json<Redirect>, ApiError> {
    authorization.admit(&context).await?;
    let consent = body.unwrap_or_default().consent;
    Ok(Json(authorization.accept(&id, &principal, consent).await.map_err(or_gone)?))
}

/// POST /v1/oauth/interactions/{id}/reject.
#[utoipa::path(
    post, path = "/v1/oauth/interactions/{id}/reject", tag = "oauth",
    summary = "Reject an authorization",
    description = "The client gets `access_denied` once the browser reaches `redirect_to`.",
    params(("id" = String, Path, description = "The interaction")),
    responses((status = 200, description = "Where to send the browser", body = Redirect), InteractionProblems),
)]
pub async fn reject(
    State(authorization): State<Arc<Authorization>>,
    Context(context): Context,
    Path(id): Path<String>,
) -> Result<Json<Redirect>, ApiError> {
    authorization.admit(&context).await?;
    Ok(Json(authorization.reject(&id).await.map_err(or_gone)?))
}

/// GET /login/resume?ticket=: the browser arrives from the login page of the team's own; its
/// sign-in cookie is bound to the session that accepted, and the authorization ends.
pub async fn resume(
    Browsing { authorization, browsers, pages }: Browsing,
    Context(context): Context,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let cookies = cookies::Cookies::read(&headers);
    let ticket = query.get("ticket").map(String::as_str).unwrap_or_default();
    let gone = || {
        let message = "This sign-in has expired, was already completed, or was started in \
                       another browser. Return to the application and sign in again.";
        pages.error(StatusCode::BAD_REQUEST, message).into_response()
    };
    let Some(browser) = cookies.browser() else { return gone() };
    let steps = async {
        let Some(decided) = authorization.take_decision(ticket, browser).await? else {
            return Ok(None);
        };
        let (who, secret) = match decided.accepted() {
            Some(session) => {
                // A sign-in replaces the browser's earlier one, as on the login page.
                if let Some(old) = cookies.session() {
                    browsers.end(&context, old).await?;
                }
                let secret = browsers.start(session).await?;
                (browsers.current(Some(&secret)).await?, Some(secret))
            }
            None => (None, None),
        };
        if decided.accepted().is_some() && who.is_none() {
            return Ok(None);
        }
        let next = authorization.resumed(&context, decided, who).await?;
        Ok::<_, crate::auth::AuthError>(Some((next, secret)))
    };
    match steps.await {
        Ok(Some((next, secret))) => {
            let set: Vec<HeaderValue> = secret
                .and_then(|secret| cookies::set(cookies::SESSION, &secret, None))
                .into_iter()
                .collect();
            respond(&pages, next, set)
        }
        Ok(None) => gone(),
        Err(error) => pages.failure(error).into_response(),
    }
}
