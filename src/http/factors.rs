//! Handlers of the second factors: the second step of a login, TOTP with recovery codes, and
//! passkeys. Each parses its input, makes one call to `auth`, and maps the result.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cookie::{CookiePolicy, pair_response};
use super::extract::{Authenticated, Context, JsonBody, OptionalJsonBody};
use super::openapi::problems;
use crate::auth::{
    Factors, PasskeyOptions, PasskeyView, Proof, RecoveryCodes, SecondFactor, SignIn, TokenPair,
    TotpEnrolment,
};
use crate::error::ApiError;

/// The second step of a login: the `mfa_token` of the `mfa_required` answer and one code.
#[derive(Deserialize, ToSchema)]
pub struct SecondStep {
    mfa_token: String,
    /// A TOTP code.
    code: Option<String>,
    /// A recovery code, in place of `code`.
    recovery_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordOnly {
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CodeOnly {
    code: String,
}

/// The password and a TOTP or recovery code.
#[derive(Deserialize, ToSchema)]
pub struct PasswordAndCode {
    password: String,
    code: Option<String>,
}

/// The proof a passkey change asks for: the password and, with TOTP on, a code. Left out (or
/// `{}`), the session's own sign-in must be recent enough.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyChangeProof {
    password: Option<String>,
    code: Option<String>,
}

impl PasskeyChangeProof {
    fn proof(&self) -> Option<Proof<'_>> {
        let password = self.password.as_deref()?;
        Some(Proof { password, code: self.code.as_deref() })
    }
}

/// A registration's result: `credential` is what `PublicKeyCredential.toJSON()` gives.
#[derive(Deserialize, ToSchema)]
pub struct NewPasskey {
    challenge_id: String,
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    name: Option<String>,
}

/// Login options for an account; without `email`, any discoverable credential.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyLoginRequest {
    email: Option<String>,
}

/// A login's assertion: `credential` is what `PublicKeyCredential.toJSON()` gives.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyAssertion {
    challenge_id: String,
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    device_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    passkeys: Vec<PasskeyView>,
}

problems!(SecondStepProblems: JSON_BODY, [
    InvalidToken, InvalidMfaCode, AccountLocked, RateLimited, ServiceUnavailable,
]);

/// POST /v1/auth/login/mfa: the second step of a login for an account with TOTP.
#[utoipa::path(
    post, path = "/v1/auth/login/mfa", tag = "mfa", summary = "Complete a login with a second factor",
    description = "A wrong code answers invalid_mfa_code and counts toward the lockout like a \
        wrong password; the mfa_token stays usable until it expires (5 minutes) or a login \
        completes with it.",
    request_body = SecondStep,
    responses(
        (status = 200, description = "A token pair and a device token", body = TokenPair),
        SecondStepProblems,
    ),
)]
pub async fn login_second_factor(
    State(sign_in): State<Arc<SignIn>>,
    State(cookie): State<Option<Arc<CookiePolicy>>>,
    Context(context): Context,
    JsonBody(body): JsonBody<SecondStep>,
) -> Result<Response, ApiError> {
    let factor = match (&body.code, &body.recovery_code) {
        (Some(code), None) => SecondFactor::Totp(code),
        (None, Some(code)) => SecondFactor::RecoveryCode(code),
        _ => return Err(ApiError::malformed("give either code or recovery_code")),
    };
    let pair = sign_in.login_second_factor(&context, &body.mfa_token, factor).await?;
    Ok(pair_response(&cookie, pair))
}

problems!(StartTotpProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, Conflict, AccountLocked, RateLimited, ServiceUnavailable,
]);

/// POST /v1/auth/mfa/totp: starts a TOTP enrolment behind the password.
#[utoipa::path(
    post, path = "/v1/auth/mfa/totp", tag = "mfa", summary = "Start a TOTP enrolment",
    description = "Nothing changes at login until confirm receives a valid code. 409 while TOTP \
        is on.",
    request_body = PasswordOnly,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret, pending", body = TotpEnrolment),
        StartTotpProblems,
    ),
)]
pub async fn start_totp(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordOnly>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    Ok(Json(factors.start_totp(&context, &principal, &body.password).await?))
}

problems!(ConfirmTotpProblems: JSON_BODY, [
    Unauthorized, InvalidMfaCode, Conflict, RateLimited, ServiceUnavailable,
]);

/// POST /v1/auth/mfa/totp/confirm: the first code turns TOTP on.
#[utoipa::path(
    post, path = "/v1/auth/mfa/totp/confirm", tag = "mfa", summary = "Confirm a TOTP enrolment",
    description = "Returns 10 recovery codes, shown once. From now on login asks for a code.",
    request_body = CodeOnly,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recovery codes", body = RecoveryCodes),
        ConfirmTotpProblems,
    ),
)]
pub async fn confirm_totp(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<CodeOnly>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    Ok(Json(factors.confirm_totp(&context, &principal, &body.code).await?))
}

problems!(FactorChangeProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, InvalidMfaCode, Conflict, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// DELETE /v1/auth/mfa/totp: turns TOTP off behind the password and a code.
#[utoipa::path(
    delete, path = "/v1/auth/mfa/totp", tag = "mfa", summary = "Turn TOTP off",
    description = "code: a TOTP code or a recovery code. The recovery codes go with it.",
    request_body = PasswordAndCode,
    security(("bearer" = [])),
    responses((status = 204, description = "TOTP is off"), FactorChangeProblems),
)]
pub async fn disable_totp(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordAndCode>,
) -> Result<StatusCode, ApiError> {
    factors.disable_totp(&context, &principal, &body.password, body.code.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/auth/mfa/recovery-codes: new recovery codes behind the password and a code.
#[utoipa::path(
    post, path = "/v1/auth/mfa/recovery-codes", tag = "mfa",
    summary = "Replace the recovery codes",
    description = "code: a TOTP code or a recovery code. The old codes stop working.",
    request_body = PasswordAndCode,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new recovery codes", body = RecoveryCodes),
        FactorChangeProblems,
    ),
)]
pub async fn regenerate_recovery_codes(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<PasswordAndCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let code = body.code.as_deref();
    Ok(Json(factors.regenerate_recovery_codes(&context, &principal, &body.password, code).await?))
}

problems!(RegistrationOptionsProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, InvalidMfaCode, Conflict, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// POST /v1/auth/passkeys/register/options: starts a passkey registration.
#[utoipa::path(
    post, path = "/v1/auth/passkeys/register/options", tag = "passkeys",
    summary = "Options for a passkey registration",
    description = "publicKey is a PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3), for \
        PublicKeyCredential.parseCreationOptionsFromJSON. The challenge is single use and \
        expires in 5 minutes. The body is the same proof as enrolling TOTP (the password, and \
        a code with TOTP on); it may be left out when the session signed in less than 5 \
        minutes ago with as much.",
    request_body(content = Option<PasskeyChangeProof>),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The options", body = PasskeyOptions),
        RegistrationOptionsProblems,
    ),
)]
pub async fn passkey_registration_options(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    OptionalJsonBody(body): OptionalJsonBody<PasskeyChangeProof>,
) -> Result<Json<PasskeyOptions>, ApiError> {
    let proof = body.as_ref().and_then(PasskeyChangeProof::proof);
    Ok(Json(factors.passkey_registration_options(&context, &principal, proof).await?))
}

problems!(AddPasskeyProblems: JSON_BODY, [
    InvalidChallenge, Unauthorized, ValidationFailed, RateLimited, ServiceUnavailable,
]);

/// POST /v1/auth/passkeys: finishes a passkey registration.
#[utoipa::path(
    post, path = "/v1/auth/passkeys", tag = "passkeys", summary = "Register a passkey",
    request_body = NewPasskey,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new passkey", body = PasskeyView),
        AddPasskeyProblems,
    ),
)]
pub async fn add_passkey(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<NewPasskey>,
) -> Result<(StatusCode, Json<PasskeyView>), ApiError> {
    let name = body.name.as_deref();
    let passkey = factors
        .add_passkey(&context, &principal, &body.challenge_id, body.credential, name)
        .await?;
    Ok((StatusCode::CREATED, Json(passkey)))
}

problems!(PasskeyReadProblems: [Unauthorized, RateLimited, ServiceUnavailable]);

/// GET /v1/auth/passkeys: the caller's passkeys.
#[utoipa::path(
    get, path = "/v1/auth/passkeys", tag = "passkeys", summary = "The user's passkeys",
    security(("bearer" = [])),
    responses((status = 200, description = "The passkeys", body = PasskeyList), PasskeyReadProblems),
)]
pub async fn passkeys(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
) -> Result<Json<PasskeyList>, ApiError> {
    Ok(Json(PasskeyList { passkeys: factors.passkeys(&context, &principal).await? }))
}

problems!(RemovePasskeyProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, InvalidMfaCode, NotFound, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// DELETE /v1/auth/passkeys/{id}: removes one of the caller's passkeys; 404 for any other.
#[utoipa::path(
    delete, path = "/v1/auth/passkeys/{id}", tag = "passkeys", summary = "Remove a passkey",
    description = "The body is the same proof as enrolling TOTP (the password, and a code with \
        TOTP on); it may be left out when the session signed in less than 5 minutes ago with \
        as much.",
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    request_body(content = Option<PasskeyChangeProof>),
    security(("bearer" = [])),
    responses((status = 204, description = "The passkey is removed"), RemovePasskeyProblems),
)]
pub async fn remove_passkey(
    State(factors): State<Arc<Factors>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<PasskeyChangeProof>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
    let proof = body.as_ref().and_then(PasskeyChangeProof::proof);
    factors.remove_passkey(&context, &principal, &id.to_string(), proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(LoginOptionsProblems: JSON_BODY, [RateLimited, ServiceUnavailable]);

/// POST /v1/auth/passkeys/login/options: starts a passkey login.
#[utoipa::path(
    post, path = "/v1/auth/passkeys/login/options", tag = "passkeys",
    summary = "Options for a passkey login",
    description = "publicKey is a PublicKeyCredentialRequestOptionsJSON (WebAuthn Level 3). \
        Without email any discoverable credential is allowed; with it, that account's \
        credentials are listed (an unknown email gets credential ids of the same shape).",
    request_body(content = Option<PasskeyLoginRequest>),
    responses((status = 200, description = "The options", body = PasskeyOptions), LoginOptionsProblems),
)]
pub async fn passkey_login_options(
    State(sign_in): State<Arc<SignIn>>,
    Context(context): Context,
    OptionalJsonBody(body): OptionalJsonBody<PasskeyLoginRequest>,
) -> Result<Json<PasskeyOptions>, ApiError> {
    let email = body.and_then(|b| b.email);
    Ok(Json(sign_in.passkey_login_options(&context, email.as_deref()).await?))
}

problems!(PasskeyLoginProblems: JSON_BODY, [InvalidChallenge, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/passkeys/login: finishes a passkey login.
#[utoipa::path(
    post, path = "/v1/auth/passkeys/login", tag = "passkeys", summary = "Log in with a passkey",
    description = "A passkey login is never held by a lockout and needs no second factor. A \
        failed ceremony answers invalid_challenge.",
    request_body = PasskeyAssertion,
    responses(
        (status = 200, description = "A token pair and a device token", body = TokenPair),
        PasskeyLoginProblems,
    ),
)]
pub async fn passkey_login(
    State(sign_in): State<Arc<SignIn>>,
    State(cookie): State<Option<Arc<CookiePolicy>>>,
    Context(context): Context,
    JsonBody(body): JsonBody<PasskeyAssertion>,
) -> Result<Response, ApiError> {
    let device = body.device_token.as_deref();
    let pair = sign_in.passkey_login(&context, &body.challenge_id, body.credential, device).await?;
    Ok(pair_response(&cookie, pair))
}
