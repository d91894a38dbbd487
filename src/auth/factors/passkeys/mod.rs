//! Passkeys (WebAuthn Level 3), verified with `webauthn-rs-core`.
//!
//! - Registration is for a signed-in user who proves it is them as for enrolling TOTP (the
//!   password, and a code with TOTP on, or a sign-in within the last five minutes with as
//!   much), and so is removal: a stolen access token cannot plant a passkey that outlives a
//!   password reset. Resident keys required, user verification preferred, attestation `none`,
//!   the user's existing credentials excluded.
//! - An assertion made in a cross-origin frame (`crossOrigin: true`) is refused, as
//!   registration refuses it; one without user verification logs in with `amr`
//!   `["hwk","user"]`, whatever the authenticator did at registration.
//! - Login works without an email (a discoverable credential names its user through its user
//!   handle) or with one (the account's credentials are listed; an unknown email, or an account
//!   without passkeys, gets decoy credential ids derived from the email under a server key, the
//!   same on every call, so the answer does not tell whether the account exists).
//! - Every ceremony's state is stored sealed in the database under a random id, single use and
//!   valid for five minutes, so any instance finishes a ceremony another began.
//! - A counter that does not increase is refused in the same statement that records the use, so
//!   two assertions racing with one counter value get one winner.
//! - A passkey cannot be guessed: its login is never held by a lockout and needs no second
//!   factor. Failed ceremonies take from the IP budget and are recorded as `login_failed`.

use std::time::Duration;

use serde::Serialize;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, Credential, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, Factors, Principal, Proof, RequestContext, chrono_duration};
use crate::domain::Timestamp;
use crate::store::{ChallengePurpose, PasskeyRecord, StoreError};

/// How long a ceremony may take, as the options tell the browser.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Passkeys one account may hold: enough for every device a person owns, and a bound on what
/// a login with an email lists.
const MAX_PASSKEYS_PER_USER: usize = 20;
/// The longest passkey name, in characters.
const MAX_NAME_CHARS: usize = 64;
const DEFAULT_NAME: &str = "passkey";
/// Credential id lengths of common authenticators (Bitwarden, Apple, Windows Hello, Google,
/// YubiKey), which decoys take after.
pub(in crate::auth) const DECOY_LENGTHS: [usize; 5] = [16, 20, 32, 65, 64];

/// A ceremony's options: the id to send back with its result, and `publicKey`, the WebAuthn
/// Level 3 `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasskeyOptions {
    pub challenge_id: String,
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// A passkey, as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Passkey)]
pub struct PasskeyView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
}

impl From<PasskeyRecord> for PasskeyView {
    fn from(passkey: PasskeyRecord) -> Self {
        Self {
            id: passkey.id,
            name: passkey.name,
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
        }
    }
}

pub(in crate::auth) fn failed(why: impl Into<String>) -> AuthError {
    AuthError::InvalidChallenge(why.into())
}

impl Factors {
    /// `POST /v1/auth/passkeys/register/options`.
    pub async fn passkey_registration_options(
        &self,
        context: &RequestContext,
        principal: &Principal,
        proof: Option<Proof<'_>>,
    ) -> Result<PasskeyOptions, AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        self.proofs
            .confirm_identity(context, principal, &user, proof, "passkey_registration")
            .await?;
        let existing = self.factors.store.passkeys_of(user.id).await?;
        if existing.len() >= MAX_PASSKEYS_PER_USER {
            let why = format!("an account holds at most {MAX_PASSKEYS_PER_USER} passkeys");
            return Err(AuthError::Conflict(why));
        }
        let exclude = existing.into_iter().map(|p| p.credential_id.into()).collect();
        let webauthn = &self.factors.webauthn;
        let email = user.email.as_str();
        let builder = webauthn
            .new_challenge_register_builder(user.id.as_uuid().as_bytes(), email, email)
            .map_err(|e| AuthError::internal("passkey options", e))?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .require_resident_key(true)
            .exclude_credentials(Some(exclude));
        let (options, state) = webauthn
            .generate_challenge_register(builder)
            .map_err(|e| AuthError::internal("passkey options", e))?;
        let expires_at = self.now() + chrono_duration(CEREMONY_TTL);
        let challenge_id = self
            .factors
            .begin_ceremony(
                ChallengePurpose::PasskeyRegistration,
                Some(user.id),
                &state,
                expires_at,
            )
            .await?;
        Ok(PasskeyOptions { challenge_id, public_key: to_json(&options.public_key)? })
    }

    /// `POST /v1/auth/passkeys`: verifies the registration and stores the passkey.
    pub async fn add_passkey(
        &self,
        context: &RequestContext,
        principal: &Principal,
        challenge_id: &str,
        credential: serde_json::Value,
        name: Option<&str>,
    ) -> Result<PasskeyView, AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        let name = passkey_name(name)?;
        let now = self.now();
        let purpose = ChallengePurpose::PasskeyRegistration;
        let ceremony =
            self.factors.ceremony::<RegistrationState>(challenge_id, purpose, true, now).await?;
        let Some((Some(owner), state)) = ceremony else {
            return Err(failed("unknown, expired or used registration challenge"));
        };
        if owner != user.id {
            return Err(failed("the challenge was issued to another account"));
        }
        // serde's message may quote the input, so it stays out of the answer.
        let response: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| failed("malformed credential"))?;
        let verified = self
            .factors
            .webauthn
            .register_credential(&response, &state, None)
            .map_err(|e| failed(format!("registration failed verification: {e}")))?;
        let passkey = PasskeyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.id,
            credential_id: verified.cred_id.to_vec(),
            name,
            credential: to_json_text(&verified)?,
            sign_count: verified.counter,
            created_at: now,
            last_used_at: None,
        };
        match self.factors.store.add_passkey(&passkey).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(failed("the credential is registered already"));
            }
            Err(other) => return Err(other.into()),
        }
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::PasskeyAdded, Outcome::Success, context, now)
            .user(user.id)
            .detail(format!("passkey {}", passkey.id));
        self.audit.record(event).await?;
        self.mail.notify(|t| t.passkey_changed(user.email.as_str(), "added to")).await?;
        Ok(PasskeyView::from(passkey))
    }

    /// `GET /v1/auth/passkeys`.
    pub async fn passkeys(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<Vec<PasskeyView>, AuthError> {
        self.budgets.limit_read(context, principal).await?;
        let passkeys = self.factors.store.passkeys_of(principal.user).await?;
        Ok(passkeys.into_iter().map(PasskeyView::from).collect())
    }

    /// `DELETE /v1/auth/passkeys/{id}`: 404 for a passkey that is not the caller's.
    pub async fn remove_passkey(
        &self,
        context: &RequestContext,
        principal: &Principal,
        id: &str,
        proof: Option<Proof<'_>>,
    ) -> Result<(), AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        self.proofs.confirm_identity(context, principal, &user, proof, "passkey_removal").await?;
        if !self.factors.store.remove_passkey(user.id, id).await? {
            return Err(AuthError::NotFound);
        }
        self.users.bump_credential_epoch(user.id).await?;
        let event =
            AuditEvent::new(EventType::PasskeyRemoved, Outcome::Success, context, self.now())
                .user(user.id)
                .detail(format!("passkey {id}"));
        self.audit.record(event).await?;
        self.mail.notify(|t| t.passkey_changed(user.email.as_str(), "removed from")).await
    }
}

pub(in crate::auth) fn stored_credential(passkey: &PasskeyRecord) -> Result<Credential, AuthError> {
    serde_json::from_str(&passkey.credential)
        .map_err(|e| AuthError::internal("a stored passkey is corrupt", e))
}

pub(in crate::auth) fn to_json(value: &impl Serialize) -> Result<serde_json::Value, AuthError> {
    serde_json::to_value(value).map_err(|e| AuthError::Internal(e.into()))
}

pub(in crate::auth) fn to_json_text(value: &impl Serialize) -> Result<String, AuthError> {
    serde_json::to_string(value).map_err(|e| AuthError::Internal(e.into()))
}

/// The name of a new passkey: trimmed, at most 64 characters, no control, bidirectional or
/// default-ignorable characters (a name that reads one way and is stored another could pass
/// for a passkey the owner knows); a default when absent or blank.
fn passkey_name(name: Option<&str>) -> Result<String, AuthError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAME);
    if name.chars().count() > MAX_NAME_CHARS {
        let why = format!("name: at most {MAX_NAME_CHARS} characters");
        return Err(AuthError::InvalidQuery(why));
    }
    if crate::domain::has_hidden_characters(name) {
        return Err(AuthError::InvalidQuery(
            "name: control, bidirectional and invisible characters are not allowed".into(),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests;
