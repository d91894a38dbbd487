//! Handlers of the OAuth endpoints where a client authenticates (`/oauth2/token`,
//! `/oauth2/introspect`). They read form bodies (RFC 6749 §3.2, each parameter at most once)
//! and answer RFC 6749 JSON, errors included, never problem details, with `Cache-Control:
//! no-store`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Context, TrustedProxies};
use crate::auth::{
    AuthError, AuthenticatedClient, ClientCredentials, ClientEndpoints, Introspection, OAuthError,
    PushedRequest, TokenResponse,
};
use crate::error::{ApiError, InternalCause, Problem};

/// An RFC 6749 §5.2 error body.
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `rate_limited`, `server_error`,
    /// `temporarily_unavailable`.
    error: &'static str,
    error_description: String,
}

/// The form of `/oauth2/token`, as the document describes it (the handler reads the form
/// itself, to refuse a repeated parameter).
#[derive(ToSchema)]
#[allow(dead_code)] // only its OpenAPI description is used
pub struct TokenForm {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    grant_type: String,
    /// With `refresh_token`: the refresh token.
    refresh_token: Option<String>,
    /// With `authorization_code`: the code.
    code: Option<String>,
    /// With `authorization_code`: identical to the authorization request's.
    redirect_uri: Option<String>,
    /// With `authorization_code`: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// Space-separated scopes; absent: all of the client's own.
    scope: Option<String>,
    /// With `client_secret_post` (or a public client): the client's id.
    client_id: Option<String>,
    /// With `client_secret_post`: the client's secret.
    client_secret: Option<String>,
}

/// The form of `/oauth2/introspect`, as the document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // only its OpenAPI description is used
pub struct IntrospectionForm {
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The form of `/oauth2/par`: an authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID
/// Connect Core §3.1.2.1), as the document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // only its OpenAPI description is used
pub struct PushedForm {
    /// `code`.
    response_type: String,
    /// Identical to one the client registered.
    redirect_uri: String,
    /// Space-separated, within the client's scopes.
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    /// RFC 7636: 43 to 128 characters; required of public clients and with `require_pkce`.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// `query` or `form_post`.
    response_mode: Option<String>,
    /// `none`, `login`, `consent`, `select_account`.
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    id_token_hint: Option<String>,
    ui_locales: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The errors every OAuth endpoint may answer, each an RFC 6749 object.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its OpenAPI description is used
pub enum OAuthErrors {
    /// `invalid_request`, `invalid_grant`, `invalid_scope`, `unauthorized_client`,
    /// `unsupported_grant_type`.
    #[response(status = 400, description = "The request is refused (RFC 6749 §5.2)")]
    Refused(OAuthErrorBody),
    #[response(
        status = 401, description = "invalid_client: the client's authentication failed",
        headers(("WWW-Authenticate" = String, description = "`Basic realm=\"portcullis\"`")),
    )]
    InvalidClient(OAuthErrorBody),
    #[response(status = 413, description = "invalid_request: the body is too large")]
    TooLarge(OAuthErrorBody),
    #[response(
        status = 429, description = "rate_limited: over the client's or the address's budget",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
    )]
    RateLimited(OAuthErrorBody),
    #[response(status = 500, description = "server_error")]
    Internal(OAuthErrorBody),
    #[response(
        status = 503, description = "temporarily_unavailable: a backend is down",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
    )]
    Unavailable(OAuthErrorBody),
}

/// Marks an answer whose body is already what the client expects: the problem-details layer
/// leaves it as it is.
#[derive(Clone, Copy, Debug)]
pub struct OwnBody;

/// An answer of an OAuth endpoint: its JSON, or an RFC 6749 error.
pub struct OAuthReply(Result<Response, OAuthError>);

impl<T: Serialize> From<Result<T, OAuthError>> for OAuthReply {
    fn from(result: Result<T, OAuthError>) -> Self {
        Self(result.map(|body| Json(body).into_response()))
    }
}

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let mut response = match self.0 {
            Ok(response) => response,
            Err(error) => error_response(error),
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response.extensions_mut().insert(OwnBody);
        response
    }
}

fn error_response(error: OAuthError) -> Response {
    let body = |status: StatusCode, error: &'static str, description: String| {
        (status, Json(OAuthErrorBody { error, error_description: description })).into_response()
    };
    match error {
        OAuthError::Refused { error, description } => {
            body(StatusCode::BAD_REQUEST, error, description)
        }
        OAuthError::InvalidClient(why) => {
            let mut response = body(StatusCode::UNAUTHORIZED, "invalid_client", why.to_owned());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="portcullis""#),
            );
            response
        }
        OAuthError::RateLimited { retry_after } => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let why = "too many requests; retry after the time Retry-After gives".to_owned();
            let mut response = body(StatusCode::TOO_MANY_REQUESTS, "rate_limited", why);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            response
        }
        OAuthError::Failed(error) => failed(error),
    }
}

/// A failure of a backend or of the service: the status and cause the API would give (the
/// cause is logged by the problem-details layer, never shown).
fn failed(error: AuthError) -> Response {
    let api = ApiError::from(error).into_response();
    let status = api.status();
    let (error, description) = if status == StatusCode::SERVICE_UNAVAILABLE {
        ("temporarily_unavailable", "the service is unavailable; retry shortly")
    } else if status.is_server_error() {
        ("server_error", "the request could not be completed")
    } else {
        ("invalid_request", "the request was refused")
    };
    let mut response =
        (status, Json(OAuthErrorBody { error, error_description: description.into() }))
            .into_response();
    if let Some(retry) = api.headers().get(header::RETRY_AFTER) {
        response.headers_mut().insert(header::RETRY_AFTER, retry.clone());
    }
    if let Some(cause) = api.extensions().get::<InternalCause>() {
        response.extensions_mut().insert(cause.clone());
    }
    response
}

/// The parameters of a form body, each at most once (RFC 6749 §3.2); `None` for a body that is
/// not `application/x-www-form-urlencoded` or repeats a parameter.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form {
            let why = "the body must be application/x-www-form-urlencoded";
            return Err(OAuthError::invalid_request(why));
        }
        let pairs = super::extract::unique_pairs(body).map_err(|name| {
            OAuthError::invalid_request(format!("{name} is sent more than once"))
        })?;
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    }
}

/// A request of a client that authenticated: its form, read once, and the client. The form is
/// parsed and the client authenticated before the handler runs, the same way at every
/// endpoint where a client authenticates.
pub struct ClientRequest {
    client: AuthenticatedClient,
    form: Form,
    context: crate::auth::RequestContext,
}

impl<S> FromRequest<S> for ClientRequest
where
    S: Send + Sync,
    Arc<ClientEndpoints>: FromRef<S>,
    TrustedProxies: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Context(context) = Context::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        // A body over the limit answers 413, in RFC 6749's shape (see `generic_error`).
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let endpoints = Arc::<ClientEndpoints>::from_ref(state);
        let authenticated = async {
            let form = Form::parse(&headers, &bytes)?;
            let client =
                endpoints.authenticate(&context, client_credentials(&headers, &form)?).await?;
            Ok(Self { client, form, context: context.clone() })
        };
        authenticated.await.map_err(|error| OAuthReply(Err(error)).into_response())
    }
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1: id and secret form-urlencoded, then
/// base64) or `client_id` and `client_secret` in the body, never both; a public client sends
/// only `client_id`.
fn client_credentials(headers: &HeaderMap, form: &Form) -> Result<ClientCredentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(basic_credentials(value).ok_or(OAuthError::InvalidClient(
            "the Authorization header is not valid Basic credentials",
        ))?),
    };
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "the client authenticates in the Authorization header or the body, not both",
        )),
        (Some(basic), Some(id), None) if basic.client_id != id => {
            Err(OAuthError::invalid_request("client_id differs from the Authorization header"))
        }
        (Some(basic), _, None) => Ok(basic),
        (None, Some(id), secret) => Ok(ClientCredentials {
            client_id: id.to_owned(),
            secret: secret.map(|s| SecretString::from(s.to_owned())),
        }),
        (None, None, _) => Err(OAuthError::InvalidClient("the client must authenticate")),
    }
}

fn basic_credentials(value: &HeaderValue) -> Option<ClientCredentials> {
    // RFC 9110 §11.1: the scheme's name is case-insensitive.
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    let (client_id, secret) = (unescape(id)?, unescape(secret)?);
    if client_id.is_empty() {
        return None;
    }
    Some(ClientCredentials {
        client_id,
        secret: (!secret.is_empty()).then(|| SecretString::from(secret)),
    })
}

/// POST /oauth2/token: the `authorization_code`, `refresh_token` and `client_credentials` grants.
#[utoipa::path(
    post, path = "/oauth2/token", tag = "oauth",
    summary = "Token endpoint (RFC 6749 §3.2): authorization_code, refresh_token, client_credentials",
    description = "The client authenticates with HTTP Basic or `client_id` and `client_secret` \
        in the body. Errors are RFC 6749 objects, not problem details.",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "An access token", body = TokenResponse), OAuthErrors),
)]
pub async fn token(
    State(endpoints): State<Arc<ClientEndpoints>>,
    ClientRequest { client, form, context }: ClientRequest,
) -> OAuthReply {
    let answer = match form.required("grant_type") {
        Ok("authorization_code") => match form.required("code") {
            Ok(code) => {
                let (redirect_uri, verifier) =
                    (form.get("redirect_uri"), form.get("code_verifier"));
                endpoints.redeem_code(&context, &client, code, redirect_uri, verifier).await
            }
            Err(error) => Err(error),
        },
        Ok("refresh_token") => match form.required("refresh_token") {
            Ok(token) => {
                endpoints.refresh_for_client(&context, &client, token, form.get("scope")).await
            }
            Err(error) => Err(error),
        },
        Ok("client_credentials") => endpoints.client_credentials(&client, form.get("scope")),
        Ok(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {:?} is not supported",
            other.chars().take(40).collect::<String>()
        ))),
        Err(error) => Err(error),
    };
    answer.into()
}

/// POST /oauth2/par: RFC 9126, a pushed authorization request.
#[utoipa::path(
    post, path = "/oauth2/par", tag = "oauth",
    summary = "Pushed authorization request (RFC 9126)",
    description = "The client authenticates as at the token endpoint and sends the parameters \
        of an authorization request, checked as `/oauth2/authorize` checks them; the answer's \
        `request_uri` stands for them there, once, for 60 seconds.",
    request_body(content = PushedForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "The request is kept", body = PushedRequest),
        OAuthErrors,
    ),
)]
pub async fn par(
    State(endpoints): State<Arc<ClientEndpoints>>,
    ClientRequest { client, form, .. }: ClientRequest,
) -> OAuthReply {
    let pushed = endpoints.push_request(&client, |name| form.get(name)).await;
    OAuthReply(pushed.map(|pushed| (StatusCode::CREATED, Json(pushed)).into_response()))
}

/// POST /oauth2/introspect: RFC 7662, for confidential clients.
#[utoipa::path(
    post, path = "/oauth2/introspect", tag = "oauth",
    summary = "Token introspection (RFC 7662)",
    description = "Only a confidential client may ask; a token that is not live answers \
        `{\"active\": false}`.",
    request_body(content = IntrospectionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Whether the token is live, and its claims", body = Introspection),
        OAuthErrors,
    ),
)]
pub async fn introspect(
    State(endpoints): State<Arc<ClientEndpoints>>,
    ClientRequest { client, form, .. }: ClientRequest,
) -> OAuthReply {
    let answer = match form.required("token") {
        Ok(token) => endpoints.introspect(&client, token).await,
        Err(error) => Err(error),
    };
    answer.into()
}

/// The form of `/oauth2/revoke`, as the document describes it.
#[derive(ToSchema)]
#[allow(dead_code)] // only its OpenAPI description is used
pub struct RevocationForm {
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// POST /oauth2/revoke: RFC 7009.
#[utoipa::path(
    post, path = "/oauth2/revoke", tag = "oauth",
    summary = "Token revocation (RFC 7009)",
    description = "Ends the grant the client's token belongs to: every token of it stops \
        working at once. A token that is not the client's, or not live, is left alone, with the \
        same answer.",
    request_body(content = RevocationForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or nothing to revoke"), OAuthErrors),
)]
pub async fn revoke(
    State(endpoints): State<Arc<ClientEndpoints>>,
    ClientRequest { client, form, context }: ClientRequest,
) -> OAuthReply {
    let answer = match form.required("token") {
        Ok(token) => endpoints.revoke(&context, &client, token).await,
        Err(error) => Err(error),
    };
    OAuthReply(answer.map(|()| StatusCode::OK.into_response()))
}

/// An error on an OAuth path that no OAuth handler built (axum's 405, the body limit's 413, the
/// timeout's 408, a panic's 500), in RFC 6749's shape with the problem's detail.
pub fn generic_error(mut parts: axum::http::response::Parts, problem: &Problem) -> Response {
    let error = if parts.status == StatusCode::SERVICE_UNAVAILABLE {
        "temporarily_unavailable"
    } else if parts.status.is_server_error() {
        "server_error"
    } else {
        "invalid_request"
    };
    let description = problem.0.get("detail").and_then(|d| d.as_str()).unwrap_or_default();
    let body = OAuthErrorBody { error, error_description: description.to_owned() };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let value =
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("my%3Aapp:s%2Bcret+x")))
                .unwrap();
        let credentials = basic_credentials(&value).unwrap();
        assert_eq!(credentials.client_id, "my:app");
        use secrecy::ExposeSecret;
        assert_eq!(credentials.secret.unwrap().expose_secret(), "s+cret x");
        // The scheme's name in any case (RFC 9110 §11.1).
        let lower = HeaderValue::from_str(&format!("basic {}", STANDARD.encode("app:s"))).unwrap();
        assert_eq!(basic_credentials(&lower).unwrap().client_id, "app");
        for bad in ["Bearer abc", "Basic !!!", "Basic Og==", "Basic"] {
            assert!(basic_credentials(&HeaderValue::from_static(bad)).is_none(), "{bad}");
        }
    }
}
