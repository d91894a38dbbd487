//! Handlers of the mail flows: address verification, password reset, email change and account
//! deletion. Each parses its input, makes one call to `auth`, and maps the result.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Authenticated, Context, JsonBody};
use super::openapi::problems;
use crate::auth::{Accounts, Recovery, UserView};
use crate::error::ApiError;

/// A token from a link.
#[derive(Deserialize, ToSchema)]
pub struct LinkToken {
    token: String,
}

/// An address to mail a link to.
#[derive(Deserialize, ToSchema)]
pub struct EmailOnly {
    email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordReset {
    token: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct EmailChange {
    new_email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct AccountDeletion {
    password: String,
    /// With TOTP on: a TOTP code or a recovery code.
    code: Option<String>,
}

/// The one body of a 202: the same whether or not anything was sent.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    status: &'static str,
}

const ACCEPTED: Accepted = Accepted { status: "accepted" };

problems!(VerifyProblems: JSON_BODY, [InvalidToken, EmailTaken, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/verify-email: uses a verification or email-change link.
#[utoipa::path(
    post, path = "/v1/auth/verify-email", tag = "account", summary = "Confirm an email address",
    description = "A verification token marks the address verified; an email-change token moves \
        the account to the new address. A reset token answers 401 invalid_token here and stays \
        usable where it belongs.",
    request_body = LinkToken,
    responses((status = 200, description = "The user", body = UserView), VerifyProblems),
)]
pub async fn verify_email(
    State(recovery): State<Arc<Recovery>>,
    Context(context): Context,
    JsonBody(body): JsonBody<LinkToken>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(recovery.verify_email(&context, &body.token).await?))
}

problems!(MailRequestProblems: JSON_BODY, [RateLimited, ServiceUnavailable]);

/// POST /v1/auth/verify-email/resend: a new link for an unverified account (202 either way).
#[utoipa::path(
    post, path = "/v1/auth/verify-email/resend", tag = "account",
    summary = "Send the verification link again",
    description = "Answers 202 with the same body, in about the same time, whether or not the \
        account exists or is verified.",
    request_body = EmailOnly,
    responses((status = 202, description = "Accepted", body = Accepted), MailRequestProblems),
)]
pub async fn resend_verification(
    State(recovery): State<Arc<Recovery>>,
    Context(context): Context,
    JsonBody(body): JsonBody<EmailOnly>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    recovery.resend_verification(&context, &body.email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// POST /v1/auth/password/forgot: mails a reset link to an existing account (202 either way).
#[utoipa::path(
    post, path = "/v1/auth/password/forgot", tag = "account", summary = "Ask for a reset link",
    description = "Answers 202 with the same body, in about the same time, whether or not the \
        account exists. A new link voids the account's earlier ones.",
    request_body = EmailOnly,
    responses((status = 202, description = "Accepted", body = Accepted), MailRequestProblems),
)]
pub async fn forgot_password(
    State(recovery): State<Arc<Recovery>>,
    Context(context): Context,
    JsonBody(body): JsonBody<EmailOnly>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    recovery.forgot_password(&context, &body.email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

problems!(ResetProblems: JSON_BODY, [InvalidToken, PasswordPolicy, RateLimited, ServiceUnavailable]);

/// POST /v1/auth/password/reset: sets a new password with a reset link.
#[utoipa::path(
    post, path = "/v1/auth/password/reset", tag = "account", summary = "Reset the password",
    description = "Ends every session, lifts the lockout and counts the address as verified. A \
        password the policy refuses leaves the link usable.",
    request_body = PasswordReset,
    responses((status = 204, description = "The password is reset"), ResetProblems),
)]
pub async fn reset_password(
    State(recovery): State<Arc<Recovery>>,
    Context(context): Context,
    JsonBody(body): JsonBody<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    recovery.reset_password(&context, &body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

problems!(EmailChangeProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, ValidationFailed, EmailTaken, AccountLocked, RateLimited,
    ServiceUnavailable,
]);

/// POST /v1/auth/email: mails a confirmation link to a new address (202).
#[utoipa::path(
    post, path = "/v1/auth/email", tag = "account", summary = "Change the email address",
    description = "Checks the password (a wrong one counts as a failed login), mails a \
        confirmation link to the new address and a notice to the current one. The account moves \
        when the link is used.",
    request_body = EmailChange,
    security(("bearer" = [])),
    responses((status = 202, description = "Accepted", body = Accepted), EmailChangeProblems),
)]
pub async fn change_email(
    State(accounts): State<Arc<Accounts>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<EmailChange>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    accounts.request_email_change(&context, &principal, &body.new_email, &body.password).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

problems!(DeletionProblems: JSON_BODY, [
    Unauthorized, InvalidCredentials, InvalidMfaCode, AccountLocked, Conflict, RateLimited,
    ServiceUnavailable,
]);

/// DELETE /v1/auth/me: deletes the account after its password.
#[utoipa::path(
    delete, path = "/v1/auth/me", tag = "account", summary = "Delete the account",
    description = "Ends every session at once and deletes the account with its factors; its \
        email can register again, and its audit events stay. With TOTP on, code (a TOTP or \
        recovery code) is needed too. The last enabled admin cannot delete itself (409).",
    request_body = AccountDeletion,
    security(("bearer" = [])),
    responses((status = 204, description = "The account is deleted"), DeletionProblems),
)]
pub async fn delete_account(
    State(accounts): State<Arc<Accounts>>,
    Context(context): Context,
    Authenticated(principal): Authenticated,
    JsonBody(body): JsonBody<AccountDeletion>,
) -> Result<StatusCode, ApiError> {
    accounts.delete_account(&context, &principal, &body.password, body.code.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
