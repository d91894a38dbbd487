//! Signing in with a passkey: the options (any discoverable credential, or an account's, or
//! decoys of the same shape for an unknown email), and the assertion that completes the login.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, UserVerificationPolicy,
};

use super::SignIn;
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::factors::{
    CEREMONY_TTL, DECOY_LENGTHS, PasskeyOptions, failed, stored_credential, to_json, to_json_text,
};
use crate::auth::limits::Account;
use crate::auth::{AuthError, RequestContext, TokenPair, chrono_duration};
use crate::domain::{Amr, Email, UserId};
use crate::store::{ChallengePurpose, UserRecord};

/// A login ceremony: the verifier's state, and the account its email named, if any.
#[derive(Serialize, Deserialize)]
struct LoginCeremony {
    state: AuthenticationState,
    user: Option<UserId>,
}

impl SignIn {
    /// `POST /v1/auth/passkeys/login/options`: any discoverable credential without `email`; with
    /// it, the account's credentials, or decoys of the same shape.
    pub async fn passkey_login_options(
        &self,
        context: &RequestContext,
        email: Option<&str>,
    ) -> Result<PasskeyOptions, AuthError> {
        let attempted = email.map(Email::normalise_key);
        self.budgets
            .limit_credential_request(context, attempted.as_deref().map(Account::Email))
            .await?;
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
        let Some(user) = self.passwords.find_user(email).await? else {
            return Ok((None, Vec::new()));
        };
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
        self.budgets.limit_credential_request(context, None).await?;
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
        let device = self.passwords.known_device(Some(&user), device_token).await?;
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
