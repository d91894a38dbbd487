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

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, Credential, PublicKeyCredential,
    RegisterPublicKeyCredential, RegistrationState, UserVerificationPolicy,
};

use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::limits::Account;
use crate::auth::{
    AuthError, AuthService, Principal, Proof, RequestContext, TokenPair, chrono_duration,
};
use crate::domain::{Amr, Email, Timestamp, UserId};
use crate::store::{ChallengePurpose, PasskeyRecord, StoreError, UserRecord};

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
const DECOY_LENGTHS: [usize; 5] = [16, 20, 32, 65, 64];

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

/// A login ceremony: the verifier's state, and the account its email named, if any.
#[derive(Serialize, Deserialize)]
struct LoginCeremony {
    state: AuthenticationState,
    user: Option<UserId>,
}

fn failed(why: impl Into<String>) -> AuthError {
    AuthError::InvalidChallenge(why.into())
}

impl AuthService {
    /// `POST /v1/auth/passkeys/register/options`.
    pub async fn passkey_registration_options(
        &self,
        context: &RequestContext,
        principal: &Principal,
        proof: Option<Proof<'_>>,
    ) -> Result<PasskeyOptions, AuthError> {
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        self.confirm_identity(context, principal, &user, proof, "passkey_registration").await?;
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
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let name = passkey_name(name)?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
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
        self.notify(self.templates.passkey_changed(user.email.as_str(), "added to")).await?;
        Ok(PasskeyView::from(passkey))
    }

    /// `GET /v1/auth/passkeys`.
    pub async fn passkeys(
        &self,
        context: &RequestContext,
        principal: &Principal,
    ) -> Result<Vec<PasskeyView>, AuthError> {
        self.limit_read(context, principal).await?;
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
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        self.confirm_identity(context, principal, &user, proof, "passkey_removal").await?;
        if !self.factors.store.remove_passkey(user.id, id).await? {
            return Err(AuthError::NotFound);
        }
        self.users.bump_credential_epoch(user.id).await?;
        let event =
            AuditEvent::new(EventType::PasskeyRemoved, Outcome::Success, context, self.now())
                .user(user.id)
                .detail(format!("passkey {id}"));
        self.audit.record(event).await?;
        self.notify(self.templates.passkey_changed(user.email.as_str(), "removed from")).await
    }

    /// `POST /v1/auth/passkeys/login/options`: any discoverable credential without `email`; with
    /// it, the account's credentials, or decoys of the same shape.
    pub async fn passkey_login_options(
        &self,
        context: &RequestContext,
        email: Option<&str>,
    ) -> Result<PasskeyOptions, AuthError> {
        let attempted = email.map(Email::normalise_key);
        self.limit_credential_request(context, attempted.as_deref().map(Account::Email)).await?;
        let (user, credentials) = match email {
            Some(email) => self.login_credentials(email).await?,
            None => (None, Vec::new()),
        };
        let listed = !credentials.is_empty();
        let webauthn = &self.factors.webauthn;
        let builder = webauthn
            .new_challenge_authenticate_builder(
                credentials,
                Some(UserVerificationPolicy::Preferred),
            )
            .map_err(|e| AuthError::internal("passkey options", e))?;
        let (options, state) = webauthn
            .generate_challenge_authenticate(builder)
            .map_err(|e| AuthError::internal("passkey options", e))?;
        let mut public_key = to_json(&options.public_key)?;
        let allowed = match (&attempted, listed) {
            (Some(attempted), false) => self.decoy_credentials(attempted)?,
            _ => public_key["allowCredentials"].as_array().cloned().unwrap_or_default(),
        };
        // Transports are only a hint, and decoys have none: leaving them out of every entry
        // keeps real and decoy answers alike.
        let allowed: Vec<serde_json::Value> = allowed
            .into_iter()
            .map(|entry| serde_json::json!({ "type": "public-key", "id": entry["id"] }))
            .collect();
        public_key["allowCredentials"] = serde_json::Value::Array(allowed);
        let expires_at = self.now() + chrono_duration(CEREMONY_TTL);
        let ceremony = LoginCeremony { state, user: user.filter(|_| listed) };
        let challenge_id = self
            .factors
            .begin_ceremony(ChallengePurpose::PasskeyLogin, ceremony.user, &ceremony, expires_at)
            .await?;
        Ok(PasskeyOptions { challenge_id, public_key })
    }

    /// The account an email names, with its verified credentials.
    async fn login_credentials(
        &self,
        email: &str,
    ) -> Result<(Option<UserId>, Vec<Credential>), AuthError> {
        let Some(user) = self.find_user(email).await? else { return Ok((None, Vec::new())) };
        let passkeys = self.factors.store.passkeys_of(user.id).await?;
        let credentials = passkeys.iter().map(stored_credential).collect::<Result<Vec<_>, _>>()?;
        Ok((Some(user.id), credentials))
    }

    /// Credential ids for an email with no passkeys: one or two, each of a length real passkeys
    /// have, derived from the email under a server key, so every call answers the same and the
    /// answer looks like an account's. (`webauthn-rs-core` has a generator, but it also answers
    /// none or three, which a real account listing its passkeys never does here.)
    fn decoy_credentials(&self, attempted: &str) -> Result<Vec<serde_json::Value>, AuthError> {
        let email = attempted.as_bytes();
        let seed = self.factors.keyed_hash("passkey decoys", &[email]).0;
        let count = 1 + usize::from(seed[0] & 1);
        let ids = (0..count).map(|index| {
            let length = DECOY_LENGTHS[usize::from(seed[1 + index]) % DECOY_LENGTHS.len()];
            let mut id = Vec::with_capacity(length);
            for block in 0u8.. {
                if id.len() >= length {
                    break;
                }
                let index = [index as u8, block];
                id.extend(self.factors.keyed_hash("passkey decoy id", &[email, &index]).0);
            }
            id.truncate(length);
            id
        });
        let encoded = ids.map(|id| base64::Engine::encode(&URL_SAFE_NO_PAD, id));
        Ok(encoded.map(|id| serde_json::json!({ "type": "public-key", "id": id })).collect())
    }

    /// `POST /v1/auth/passkeys/login`: a verified assertion answers a token pair.
    pub async fn passkey_login(
        &self,
        context: &RequestContext,
        challenge_id: &str,
        credential: serde_json::Value,
        device_token: Option<&str>,
    ) -> Result<TokenPair, AuthError> {
        self.limit_credential_request(context, None).await?;
        let (user, verified) = match self.verify_assertion(challenge_id, credential).await {
            Ok(done) => done,
            Err((user, error)) => {
                if let AuthError::InvalidChallenge(why) = &error {
                    let mut event = AuditEvent::new(
                        EventType::LoginFailed,
                        Outcome::Failure,
                        context,
                        self.now(),
                    )
                    .detail(format!("passkey: {why}"));
                    event.user_id = user;
                    self.audit.record(event).await?;
                }
                return Err(error);
            }
        };
        self.refuse_if_disabled(context, &user).await?;
        let device = self.known_device(Some(&user), device_token).await?;
        let amr = Amr::passkey(verified);
        self.complete_login(context, &user, device_token, device, amr, "passkey").await
    }

    /// Verifies an assertion against its ceremony and the stored credential and records the
    /// use. Returns the account and whether the authenticator verified the user; a failure
    /// names the account when the credential was known.
    async fn verify_assertion(
        &self,
        challenge_id: &str,
        credential: serde_json::Value,
    ) -> Result<(UserRecord, bool), (Option<UserId>, AuthError)> {
        let now = self.now();
        let purpose = ChallengePurpose::PasskeyLogin;
        let ceremony = self.factors.ceremony::<LoginCeremony>(challenge_id, purpose, true, now);
        let Some((_, ceremony)) = ceremony.await.map_err(|e| (None, e))? else {
            return Err((None, failed("unknown, expired or used login challenge")));
        };
        let response: PublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| (None, failed("malformed credential")))?;
        let passkey = self.factors.store.passkey_by_credential(response.raw_id.as_slice()).await;
        let Some(passkey) = passkey.map_err(|e| (None, e.into()))? else {
            return Err((None, failed("unknown credential")));
        };
        let user = self.users.user_by_id(passkey.user).await.map_err(|e| (None, e.into()))?;
        let Some(user) = user else { return Err((None, failed("unknown credential"))) };
        let refuse = |why: &str| Err((Some(user.id), failed(why)));
        if ceremony.user.is_some_and(|listed| listed != user.id) {
            return refuse("the credential is not one the challenge listed");
        }
        // The user handle must name the credential's owner; a discoverable login has only it.
        match response.get_user_unique_id() {
            Some(handle) if handle != user.id.as_uuid().as_bytes() => {
                return refuse("the user handle is not the credential owner's");
            }
            None if ceremony.user.is_none() => return refuse("no user handle"),
            _ => {}
        }
        if is_cross_origin(response.response.client_data_json.as_slice()) {
            return refuse("the assertion was made in a cross-origin frame");
        }
        let mut stored = stored_credential(&passkey).map_err(|e| (None, e))?;
        let mut state = ceremony.state;
        // Whether the user was verified this time decides the `amr`, not whether the login
        // goes through: without this, the verifier refuses an assertion without it from a
        // credential that had it at registration.
        let mut checked = stored.clone();
        checked.user_verified = false;
        state.set_allowed_credentials(vec![checked]);
        let result = match self.factors.webauthn.authenticate_credential(&response, &state) {
            Ok(result) => result,
            Err(error) => return refuse(&format!("assertion failed verification: {error}")),
        };
        stored.counter = result.counter();
        stored.backup_state = result.backup_state();
        stored.backup_eligible = result.backup_eligible();
        let json = to_json_text(&stored).map_err(|e| (None, e))?;
        let store = &self.factors.store;
        let recorded = store.record_passkey_use(&passkey.id, &json, stored.counter, now).await;
        if !recorded.map_err(|e| (None, e.into()))? {
            return refuse("the signature counter did not increase");
        }
        Ok((user, result.user_verified()))
    }
}

/// Whether the client data says the ceremony ran in a frame of another origin. Unparseable
/// client data is left to the verifier, which refuses it.
fn is_cross_origin(client_data_json: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct ClientData {
        #[serde(rename = "crossOrigin", default)]
        cross_origin: Option<bool>,
    }
    serde_json::from_slice::<ClientData>(client_data_json)
        .is_ok_and(|data| data.cross_origin == Some(true))
}

fn stored_credential(passkey: &PasskeyRecord) -> Result<Credential, AuthError> {
    serde_json::from_str(&passkey.credential)
        .map_err(|e| AuthError::internal("a stored passkey is corrupt", e))
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, AuthError> {
    serde_json::to_value(value).map_err(|e| AuthError::Internal(e.into()))
}

fn to_json_text(value: &impl Serialize) -> Result<String, AuthError> {
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
    if name.chars().any(|c| c.is_control() || crate::domain::is_default_ignorable(c)) {
        return Err(AuthError::InvalidQuery(
            "name: control, bidirectional and invisible characters are not allowed".into(),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::passkey_name;

    #[test]
    fn a_passkey_name_is_trimmed_bounded_and_defaulted() {
        assert_eq!(passkey_name(None).ok().as_deref(), Some("passkey"));
        assert_eq!(passkey_name(Some("  ")).ok().as_deref(), Some("passkey"));
        assert_eq!(passkey_name(Some(" laptop ")).ok().as_deref(), Some("laptop"));
        assert!(passkey_name(Some(&"x".repeat(65))).is_err());
        assert!(passkey_name(Some("a\u{7}b")).is_err());
        for sneaky in ["a\u{202E}b", "a\u{200B}b", "a\u{2066}b", "a\u{FEFF}b", "a\u{AD}b"] {
            assert!(passkey_name(Some(sneaky)).is_err(), "{sneaky:?}");
        }
    }
}
