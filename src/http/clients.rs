//! Handlers of the OAuth client registry (role `admin`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::admin::page_of;
use super::extract::{Admin, JsonBody, OptionalJsonBody};
use super::openapi::problems;
use crate::auth::{
    Actor, AuthError, ClientPage, ClientSecret, ClientUpdate, ClientView, Clients,
    MAX_CLIENTS_PAGE, NewClient,
};
use crate::config::parse_duration;
use crate::error::ApiError;

/// The paging parameters of the client list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientsQuery {
    /// Clients per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// How long the secret a rotation replaces keeps working.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// A duration like `24h`; at most 30 days. Absent: the old secret stops at once.
    keep_previous_for: Option<String>,
}

problems!(ClientsProblems: [
    MalformedRequest, Unauthorized, Forbidden, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// GET /v1/admin/clients: the registered clients, newest first, in pages.
#[utoipa::path(
    get, path = "/v1/admin/clients", tag = "clients", summary = "List OAuth clients (role admin)",
    params(ClientsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of clients", body = ClientPage), ClientsProblems),
)]
pub async fn clients(
    State(clients): State<Arc<Clients>>,
    _admin: Admin,
    Query(query): Query<ClientsQuery>,
) -> Result<Json<ClientPage>, ApiError> {
    let (limit, cursor) =
        page_of(query.limit.as_deref(), query.cursor.as_deref(), MAX_CLIENTS_PAGE)?;
    Ok(Json(clients.list(cursor, limit).await?))
}

problems!(CreateClientProblems: JSON_BODY, [
    Unauthorized, Forbidden, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// POST /v1/admin/clients: registers a client; a confidential one gets its secret, shown once.
#[utoipa::path(
    post, path = "/v1/admin/clients", tag = "clients", summary = "Register an OAuth client (role admin)",
    request_body = NewClient,
    security(("bearer" = [])),
    responses((status = 201, description = "The client, with `client_secret` if confidential", body = ClientView), CreateClientProblems),
)]
pub async fn create_client(
    State(clients): State<Arc<Clients>>,
    Admin { principal, context }: Admin,
    JsonBody(body): JsonBody<NewClient>,
) -> Result<(StatusCode, Json<ClientView>), ApiError> {
    let client = clients.create(&context, Actor::Admin(principal.user), body).await?;
    Ok((StatusCode::CREATED, Json(client)))
}

problems!(ClientProblems: [Unauthorized, Forbidden, NotFound, RateLimited, ServiceUnavailable]);

/// GET /v1/admin/clients/{client_id}: one client (never its secret).
#[utoipa::path(
    get, path = "/v1/admin/clients/{client_id}", tag = "clients", summary = "One OAuth client (role admin)",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The client", body = ClientView), ClientProblems),
)]
pub async fn client(
    State(clients): State<Arc<Clients>>,
    _admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(clients.get(&client_id).await?))
}

problems!(UpdateClientProblems: JSON_BODY, [
    Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// PATCH /v1/admin/clients/{client_id}: the members present replace the client's.
#[utoipa::path(
    patch, path = "/v1/admin/clients/{client_id}", tag = "clients", summary = "Change an OAuth client (role admin)",
    description = "A client from `CLIENTS_FILE` is changed there (409).",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = ClientUpdate,
    security(("bearer" = [])),
    responses((status = 200, description = "The client", body = ClientView), UpdateClientProblems),
)]
pub async fn update_client(
    State(clients): State<Arc<Clients>>,
    Admin { principal, context }: Admin,
    Path(client_id): Path<String>,
    JsonBody(body): JsonBody<ClientUpdate>,
) -> Result<Json<ClientView>, ApiError> {
    let actor = Actor::Admin(principal.user);
    Ok(Json(clients.update(&context, actor, &client_id, body).await?))
}

problems!(DeleteClientProblems: [
    Unauthorized, Forbidden, NotFound, Conflict, RateLimited, ServiceUnavailable,
]);

/// DELETE /v1/admin/clients/{client_id}.
#[utoipa::path(
    delete, path = "/v1/admin/clients/{client_id}", tag = "clients", summary = "Delete an OAuth client (role admin)",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "The client is gone"), DeleteClientProblems),
)]
pub async fn delete_client(
    State(clients): State<Arc<Clients>>,
    Admin { principal, context }: Admin,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    clients.delete(&context, Actor::Admin(principal.user), &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(RotateSecretProblems: JSON_BODY, [
    Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// POST /v1/admin/clients/{client_id}/secret: a new secret, shown once.
#[utoipa::path(
    post, path = "/v1/admin/clients/{client_id}/secret", tag = "clients", summary = "Rotate an OAuth client's secret (role admin)",
    description = "The old secret stops working at once, or after `keep_previous_for`. A public \
        client has no secret (409).",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body(content = SecretRotation, description = "Optional"),
    security(("bearer" = [])),
    responses((status = 200, description = "The new secret", body = ClientSecret), RotateSecretProblems),
)]
pub async fn rotate_secret(
    State(clients): State<Arc<Clients>>,
    Admin { principal, context }: Admin,
    Path(client_id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<SecretRotation>,
) -> Result<Json<ClientSecret>, ApiError> {
    let keep: Option<Duration> = match body.and_then(|b| b.keep_previous_for) {
        None => None,
        Some(raw) => Some(
            parse_duration(&raw)
                .map_err(|why| AuthError::InvalidQuery(format!("keep_previous_for {why}")))?,
        ),
    };
    let actor = Actor::Admin(principal.user);
    Ok(Json(clients.rotate_secret(&context, actor, &client_id, keep).await?))
}
