//! TOTP with recovery codes, and the second step of a login.
//!
//! - TOTP is RFC 6238 with the parameters every authenticator app supports: SHA-1, 6 digits, 30 s
//!   steps, a 160-bit secret (RFC 4226 §4 asks for at least 128, recommends 160). The secret is
//!   sealed under the master key, bound to its user, so a copy of the database cannot compute
//!   codes. A code is accepted for the current step and one either side, and only for a step
//!   later than the last one accepted (RFC 6238 §5.2): no code works twice, across instances,
//!   because acceptance is one conditional write.
//! - Recovery codes are 60 random bits each, shown once and stored as keyed hashes (they are
//!   random, so a fast keyed hash is enough; the key is a server secret outside the row).
//! - A right password for an account with TOTP mints no token: it answers `mfa_required` with a
//!   single-use `mfa_token` for the second step. That step counts toward the same lockout key as
//!   the password did (so parallel guesses get at most the threshold of checks), takes from the
//!   same budgets, and records every failure. The password alone neither adds to nor clears the
//!   count: only a completed login clears it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use super::limits::Account;
use super::lockout::{device_lock_key, email_lock_key};
use super::{
    AuthError, AuthService, Principal, RequestContext, TokenPair, chrono_duration, tokens,
};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::crypto::Sealer;
use crate::domain::{Amr, Timestamp, UserId};
use crate::store::{
    ChallengePurpose, ChallengeRecord, LockKey, MfaStore, TokenHash, TotpRecord, UserRecord,
};

const TOTP_DIGITS: usize = 6;
const TOTP_STEP_SECS: i64 = 30;
const TOTP_SECRET_BYTES: usize = 20;
/// Steps either side of the current one that are accepted (RFC 6238 §5.2 recommends one).
const TOTP_DRIFT_STEPS: i64 = 1;
const RECOVERY_CODE_COUNT: usize = 10;
/// Characters of a recovery code, without its dashes: 12 of 36 symbols, about 62 bits.
const RECOVERY_CODE_CHARS: usize = 12;
const RECOVERY_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// How long the second step of a login may follow its first.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(300);
/// The methods a second step accepts.
pub const MFA_METHODS: [&str; 2] = ["totp", "recovery_code"];
/// How recent a sign-in stands in for the password (and code) before a change of the factors.
pub const RECENT_SIGN_IN: Duration = Duration::from_secs(300);

/// The password, and with TOTP on a code, that a sensitive change asks for.
#[derive(Clone, Copy)]
pub struct Proof<'a> {
    pub password: &'a str,
    pub code: Option<&'a str>,
}

/// What the second factors rest on, built once by `startup`.
pub struct SecondFactors {
    pub store: std::sync::Arc<dyn MfaStore>,
    /// Seals TOTP secrets and ceremony states under the master key.
    pub sealer: Sealer,
    /// Keys the hashes of recovery codes and the decoy credential ids of unknown emails.
    pub key: SecretSlice<u8>,
    /// The relying party of passkeys.
    pub webauthn: webauthn_rs_core::WebauthnCore,
    /// The issuer named in `otpauth://` URIs.
    pub issuer: String,
}

impl std::fmt::Debug for SecondFactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactors")
            .field("sealer", &self.sealer)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl SecondFactors {
    /// A keyed hash for `purpose` over `parts`, each length-prefixed so no two inputs collide.
    pub(super) fn keyed_hash(&self, purpose: &str, parts: &[&[u8]]) -> TokenHash {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose_secret()) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return TokenHash([0; 32]);
        };
        mac.update(b"portcullis/");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        TokenHash(mac.finalize().into_bytes().into())
    }

    pub(super) fn seal(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.sealer.seal(context, value).map_err(|e| AuthError::Internal(e.to_string()))
    }

    pub(super) fn open(&self, context: &str, stored: &[u8]) -> Result<(Vec<u8>, bool), AuthError> {
        self.sealer.open(context, stored).map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// Stores a ceremony's state, sealed and bound to its id, and returns the id to hand out.
    pub(super) async fn begin_ceremony(
        &self,
        purpose: ChallengePurpose,
        user: Option<UserId>,
        state: &impl Serialize,
        expires_at: Timestamp,
    ) -> Result<String, AuthError> {
        let id = tokens::random_token();
        let hash = tokens::hash_token(&id);
        let json = serde_json::to_vec(state).map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = self.seal(&challenge_context(&hash, purpose), &json)?;
        let record = ChallengeRecord { user, state: sealed };
        self.store.put_challenge(&hash, purpose, &record, expires_at).await?;
        Ok(id)
    }

    /// The state of a ceremony in progress: peeked (it stays usable) or taken (used up).
    pub(super) async fn ceremony<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        take: bool,
        now: Timestamp,
    ) -> Result<Option<(Option<UserId>, T)>, AuthError> {
        if !tokens::is_well_formed(id) {
            return Ok(None);
        }
        let hash = tokens::hash_token(id);
        let record = if take {
            self.store.take_challenge(&hash, purpose, now).await?
        } else {
            self.store.peek_challenge(&hash, purpose, now).await?
        };
        let Some(record) = record else { return Ok(None) };
        let (json, _) = self.open(&challenge_context(&hash, purpose), &record.state)?;
        let state =
            serde_json::from_slice(&json).map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok(Some((record.user, state)))
    }
}

/// The associated data of a ceremony's sealed state: its purpose and id hash.
fn challenge_context(hash: &TokenHash, purpose: ChallengePurpose) -> String {
    format!("challenge {} {}", purpose.as_str(), URL_SAFE_NO_PAD.encode(hash.0))
}

fn totp_context(user: UserId) -> String {
    format!("totp {user}")
}

/// A started TOTP enrolment: the secret to put in an authenticator app.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// The secret, base32 (RFC 4648, no padding).
    pub secret: String,
    /// `otpauth://totp/ISSUER:EMAIL?secret=…`, for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(..)")
    }
}

/// Fresh recovery codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodes(..)")
    }
}

/// A second factor as presented.
#[derive(Clone, Copy)]
pub enum SecondFactor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl<'a> SecondFactor<'a> {
    /// A `code` that may be either: six digits are a TOTP code, anything else a recovery code.
    pub fn either(code: &'a str) -> Self {
        if code.len() == TOTP_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            Self::Totp(code)
        } else {
            Self::RecoveryCode(code)
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// What the second step of a login keeps of its first, sealed in the challenge.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// The attempted email, normalised: the account budget and the lockout key.
    attempted: String,
    /// The device token the first step presented, when it was this account's: the lockout key
    /// is then that device's, and the login binds its session to it.
    device_token: Option<String>,
}

impl AuthService {
    /// After a right password for an account with TOTP: the single-use token of the second step.
    /// The attempt the password counted is taken back, not forgiven: failures before it stay.
    pub(super) async fn require_second_factor(
        &self,
        user: &UserRecord,
        attempted: &str,
        lock_key: &LockKey,
        device_token: Option<&str>,
    ) -> Result<AuthError, AuthError> {
        let now = self.now();
        self.lockouts.release_attempt(lock_key, self.settings.lockout, now).await?;
        let pending = PendingLogin {
            attempted: attempted.to_owned(),
            device_token: device_token.map(str::to_owned),
        };
        let expires_at = now + chrono_duration(MFA_TOKEN_TTL);
        let token = self
            .factors
            .begin_ceremony(ChallengePurpose::MfaLogin, Some(user.id), &pending, expires_at)
            .await?;
        self.metrics.refusal("mfa_required");
        Ok(AuthError::MfaRequired { mfa_token: super::error::MfaToken(token) })
    }

    /// `POST /v1/auth/login/mfa`: the second step of a login.
    pub async fn login_second_factor(
        &self,
        context: &RequestContext,
        mfa_token: &str,
        factor: SecondFactor<'_>,
    ) -> Result<TokenPair, AuthError> {
        self.limit_credential_request(context, None).await?;
        let now = self.now();
        let found = self
            .factors
            .ceremony::<PendingLogin>(mfa_token, ChallengePurpose::MfaLogin, false, now)
            .await?;
        let Some((Some(user_id), pending)) = found else { return Err(AuthError::InvalidToken) };
        let device = pending.device_token.as_deref().map(tokens::hash_token);
        let account = match &device {
            Some(device) => Account::Device(user_id, device),
            None => Account::Email(&pending.attempted),
        };
        self.take_account_budget(context, account).await?;
        let user = self.users.user_by_id(user_id).await?;
        let user = user.filter(|u| !u.disabled).ok_or(AuthError::InvalidToken)?;
        let lock_key = match &device {
            Some(device) => device_lock_key(user.id, device),
            None => email_lock_key(&pending.attempted),
        };
        let locks = match self.begin_attempt(&lock_key).await {
            Ok(locks) => locks,
            Err(error) => {
                self.record_mfa_failure(context, &user, factor, "locked").await?;
                return Err(error);
            }
        };
        if !self.check_second_factor(context, &user, factor).await? {
            self.record_mfa_failure(context, &user, factor, "invalid_mfa_code").await?;
            if locks {
                let attempted = &pending.attempted;
                self.record_lockout(context, attempted, Some(user.id), device.is_some()).await?;
            }
            return Err(AuthError::InvalidMfaCode);
        }
        // Used up only now: a wrong code leaves the token usable until it expires.
        let taken = self
            .factors
            .ceremony::<PendingLogin>(mfa_token, ChallengePurpose::MfaLogin, true, self.now())
            .await?;
        if taken.is_none() {
            return Err(AuthError::InvalidToken);
        }
        self.forgive(&lock_key).await?;
        let amr = match factor {
            SecondFactor::Totp(_) => Amr::PASSWORD_AND_TOTP,
            SecondFactor::RecoveryCode(_) => Amr::PASSWORD_AND_RECOVERY_CODE,
        };
        self.complete_login(
            context,
            &user,
            pending.device_token.as_deref(),
            device,
            amr,
            factor.name(),
        )
        .await
    }

    /// Checks a TOTP or recovery code of an account with TOTP, using it up if it is right.
    pub(super) async fn check_second_factor(
        &self,
        context: &RequestContext,
        user: &UserRecord,
        factor: SecondFactor<'_>,
    ) -> Result<bool, AuthError> {
        let Some(totp) = self.factors.store.totp(user.id).await?.filter(|t| t.confirmed) else {
            return Ok(false);
        };
        match factor {
            SecondFactor::Totp(code) => {
                let Some(step) = self.matching_step(user.id, &totp, code)? else {
                    return Ok(false);
                };
                Ok(self.factors.store.accept_totp_step(user.id, step).await?)
            }
            SecondFactor::RecoveryCode(code) => {
                let hash = self.recovery_code_hash(user.id, code);
                let used = self.factors.store.use_recovery_code(user.id, &hash, self.now()).await?;
                if used {
                    let event = AuditEvent::new(
                        EventType::RecoveryCodeUsed,
                        Outcome::Success,
                        context,
                        self.now(),
                    )
                    .user(user.id);
                    self.audit.record(event).await?;
                }
                Ok(used)
            }
        }
    }

    /// The step within the drift whose code is `code` and that is later than the last accepted
    /// one. Every candidate is compared in constant time, whichever matches.
    fn matching_step(
        &self,
        user: UserId,
        totp: &TotpRecord,
        code: &str,
    ) -> Result<Option<i64>, AuthError> {
        if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let secret = self.totp_secret(user, totp)?;
        let current = self.now().timestamp().div_euclid(TOTP_STEP_SECS);
        let mut matched = None;
        for step in current - TOTP_DRIFT_STEPS..=current + TOTP_DRIFT_STEPS {
            let expected = totp_code(&secret, step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && step > totp.last_step {
                matched = Some(step);
            }
        }
        Ok(matched)
    }

    /// The plain secret of a stored TOTP factor, sealed again if it was sealed under the previous
    /// master key (or stored in clear before there was one).
    fn totp_secret(&self, user: UserId, totp: &TotpRecord) -> Result<Vec<u8>, AuthError> {
        let (secret, reseal) = self.factors.open(&totp_context(user), &totp.secret)?;
        if reseal {
            let sealed = self.factors.seal(&totp_context(user), &secret)?;
            let store = self.factors.store.clone();
            // Best effort and off the request's path: the value opens either way.
            tokio::spawn(async move {
                if let Err(error) = store.replace_totp_secret(user, &sealed).await {
                    tracing::warn!(%user, error = error.with_causes(), "could not reseal a TOTP secret");
                }
            });
        }
        Ok(secret)
    }

    /// Seals again every TOTP secret stored in clear or under the previous master key; returns
    /// how many it sealed.
    pub async fn reseal_totp_secrets(&self) -> Result<u64, AuthError> {
        if !self.factors.sealer.is_sealing() {
            return Ok(0);
        }
        let (mut after, mut sealed) = (None, 0);
        loop {
            let page = self.factors.store.totp_secrets(after, 500).await?;
            let Some((last, _)) = page.last() else { return Ok(sealed) };
            after = Some(*last);
            for (user, stored) in page {
                let (secret, reseal) = self.factors.open(&totp_context(user), &stored)?;
                if reseal {
                    let again = self.factors.seal(&totp_context(user), &secret)?;
                    self.factors.store.replace_totp_secret(user, &again).await?;
                    sealed += 1;
                }
            }
        }
    }

    fn recovery_code_hash(&self, user: UserId, code: &str) -> TokenHash {
        let normalised: String = code
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        self.factors
            .keyed_hash("recovery code", &[user.to_string().as_bytes(), normalised.as_bytes()])
    }

    /// Fresh recovery codes and their hashes.
    fn new_recovery_codes(&self, user: UserId) -> (Vec<String>, Vec<TokenHash>) {
        let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| random_recovery_code()).collect();
        let hashes = codes.iter().map(|code| self.recovery_code_hash(user, code)).collect();
        (codes, hashes)
    }

    async fn record_mfa_failure(
        &self,
        context: &RequestContext,
        user: &UserRecord,
        factor: SecondFactor<'_>,
        detail: &str,
    ) -> Result<(), AuthError> {
        let event = AuditEvent::new(EventType::MfaFailed, Outcome::Failure, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail(format!("{}: {detail}", factor.name()));
        Ok(self.audit.record(event).await?)
    }

    /// `POST /v1/auth/mfa/totp`: after the password, a pending enrolment with a fresh secret.
    pub async fn start_totp(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
    ) -> Result<TotpEnrolment, AuthError> {
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        self.check_current_password(context, principal, &user, password, "totp_enrolment").await?;
        if user.factors.totp {
            return Err(AuthError::Conflict("TOTP is already on; disable it first".into()));
        }
        let secret = tokens::random_bytes::<TOTP_SECRET_BYTES>();
        let sealed = self.factors.seal(&totp_context(user.id), &secret)?;
        if !self.factors.store.start_totp(user.id, &sealed, self.now()).await? {
            return Err(AuthError::Conflict("TOTP is already on; disable it first".into()));
        }
        let encoded = Secret::Raw(secret.to_vec()).to_encoded().to_string();
        let otpauth_uri = otpauth_uri(&self.factors.issuer, user.email.as_str(), &encoded);
        Ok(TotpEnrolment { secret: encoded, otpauth_uri })
    }

    /// `POST /v1/auth/mfa/totp/confirm`: the first code turns TOTP on and yields the recovery
    /// codes; that code counts as used.
    pub async fn confirm_totp(
        &self,
        context: &RequestContext,
        principal: &Principal,
        code: &str,
    ) -> Result<RecoveryCodes, AuthError> {
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        let pending = self.factors.store.totp(user.id).await?.filter(|t| !t.confirmed);
        let Some(pending) = pending else {
            return Err(AuthError::Conflict("no TOTP enrolment is pending".into()));
        };
        let Some(step) = self.matching_step(user.id, &pending, code)? else {
            self.record_mfa_failure(context, &user, SecondFactor::Totp(code), "enrolment").await?;
            return Err(AuthError::InvalidMfaCode);
        };
        let (codes, hashes) = self.new_recovery_codes(user.id);
        if !self.factors.store.confirm_totp(user.id, step, &hashes, self.now()).await? {
            return Err(AuthError::InvalidMfaCode);
        }
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaEnabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail("totp");
        self.audit.record(event).await?;
        self.notify(self.templates.mfa_changed(user.email.as_str(), "turned on")).await?;
        Ok(RecoveryCodes { recovery_codes: codes })
    }

    /// Checks the password and then a TOTP or recovery code before a change to the factors (or
    /// the account's deletion), as a login does: a wrong password or code counts toward the
    /// lockout, a right password alone neither adds to the count nor clears it, and only a
    /// request whose password and code are both right clears it.
    pub(super) async fn check_password_and_code(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        code: Option<&str>,
        what: &str,
    ) -> Result<(), AuthError> {
        let lock_key =
            self.count_current_password(context, principal, user, password, what).await?;
        if !user.factors.totp {
            return self.forgive(&lock_key).await;
        }
        self.lockouts.release_attempt(&lock_key, self.settings.lockout, self.now()).await?;
        let factor = SecondFactor::either(code.unwrap_or_default());
        let locks = self.begin_attempt(&lock_key).await?;
        if code.is_none() || !self.check_second_factor(context, user, factor).await? {
            self.record_mfa_failure(context, user, factor, what).await?;
            if locks {
                let on_device = lock_key.member_name().is_some();
                self.record_lockout(context, user.email.as_str(), Some(user.id), on_device).await?;
            }
            return Err(AuthError::InvalidMfaCode);
        }
        self.forgive(&lock_key).await
    }

    /// The proof a change of the factors needs: the password (and, with TOTP on, a code), or,
    /// without them, a session that signed in within `RECENT_SIGN_IN` with as much (ASVS 5
    /// V7.5.1: re-authenticate before changing an authentication factor). A stolen access token
    /// alone, or a session older than the account's TOTP, is not enough.
    pub(super) async fn confirm_identity(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        proof: Option<Proof<'_>>,
        what: &str,
    ) -> Result<(), AuthError> {
        if let Some(Proof { password, code }) = proof {
            return self
                .check_password_and_code(context, principal, user, password, code, what)
                .await;
        }
        let recent = principal.signed_in_at > self.now() - chrono_duration(RECENT_SIGN_IN);
        let enough = !user.factors.totp || principal.amr.is_multi_factor();
        if recent && enough { Ok(()) } else { Err(AuthError::InvalidCredentials) }
    }

    /// `DELETE /v1/auth/mfa/totp`: after the password and a code, TOTP and the recovery codes
    /// are gone and login asks for the password alone.
    pub async fn disable_totp(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<(), AuthError> {
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        if !user.factors.totp {
            // Still behind the password, so the answer tells nothing to a token thief.
            self.check_current_password(context, principal, &user, password, "totp_disable")
                .await?;
            return Err(AuthError::Conflict("TOTP is not on".into()));
        }
        self.check_password_and_code(context, principal, &user, password, code, "totp_disable")
            .await?;
        self.factors.store.remove_totp(user.id).await?;
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaDisabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail("totp");
        self.audit.record(event).await?;
        self.notify(self.templates.mfa_changed(user.email.as_str(), "turned off")).await
    }

    /// `POST /v1/auth/mfa/recovery-codes`: after the password and a code, new codes replace the
    /// old ones.
    pub async fn regenerate_recovery_codes(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<RecoveryCodes, AuthError> {
        self.limit_credential_request(context, Some(Account::User(principal.user))).await?;
        let user = self.users.user_by_id(principal.user).await?.ok_or(AuthError::Unauthorized)?;
        if !user.factors.totp {
            self.check_current_password(context, principal, &user, password, "recovery_codes")
                .await?;
            return Err(AuthError::Conflict("TOTP is not on".into()));
        }
        self.check_password_and_code(context, principal, &user, password, code, "recovery_codes")
            .await?;
        let (codes, hashes) = self.new_recovery_codes(user.id);
        self.factors.store.replace_recovery_codes(user.id, &hashes).await?;
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(
            EventType::RecoveryCodesRegenerated,
            Outcome::Success,
            context,
            self.now(),
        )
        .user(user.id);
        self.audit.record(event).await?;
        self.notify(self.templates.recovery_codes_replaced(user.email.as_str())).await?;
        Ok(RecoveryCodes { recovery_codes: codes })
    }

    /// `portcullis user reset-mfa`: removes every second factor of an account whose owner lost
    /// them, for an operator who has checked who is asking.
    pub async fn reset_second_factors(
        &self,
        context: &RequestContext,
        email: &str,
        by: &str,
    ) -> Result<u64, AuthError> {
        let user = self.find_user(email).await?.ok_or(AuthError::NotFound)?;
        let removed = self.factors.store.remove_factors(user.id).await?;
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaDisabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail(format!("every second factor removed ({removed}) {by}"));
        self.audit.record(event).await?;
        self.notify(self.templates.mfa_changed(user.email.as_str(), "removed by an operator"))
            .await?;
        Ok(removed)
    }
}

/// The code of `step` for `secret` (RFC 6238 with SHA-1, 6 digits).
fn totp_code(secret: &[u8], step: i64) -> String {
    let totp = TOTP::new_unchecked(Algorithm::SHA1, TOTP_DIGITS, 0, 30, secret.to_vec());
    let time = u64::try_from(step.saturating_mul(TOTP_STEP_SECS)).unwrap_or_default();
    totp.generate(time)
}

/// `otpauth://totp/ISSUER:EMAIL?…` (the Key URI Format of Google Authenticator, which every
/// authenticator app reads), with the label and issuer percent-encoded.
fn otpauth_uri(issuer: &str, email: &str, secret: &str) -> String {
    let (issuer, email) = (percent_encode(issuer), percent_encode(email));
    format!(
        "otpauth://totp/{issuer}:{email}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits=6&period=30"
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters and `@` (which a label may
/// hold as it is). Written here because the URI needs only this, and `url`'s serializer would
/// also encode `@` and `:` differently in the path and the query.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A recovery code: `xxxx-xxxx-xxxx` of lower-case letters and digits, drawn without bias.
fn random_recovery_code() -> String {
    let mut chars = Vec::with_capacity(RECOVERY_CODE_CHARS);
    while chars.len() < RECOVERY_CODE_CHARS {
        for byte in tokens::random_bytes::<16>() {
            // 252 is the largest multiple of 36 below 256: larger bytes would bias the draw.
            if byte < 252 && chars.len() < RECOVERY_CODE_CHARS {
                chars.push(char::from(RECOVERY_ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_the_rfc_6238_test_vectors() {
        // RFC 6238 Appendix B, SHA-1, the last 6 of the 8 digits.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59 / 30), "287082");
        assert_eq!(totp_code(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(totp_code(secret, 2_000_000_000 / 30), "279037");
    }

    #[test]
    fn recovery_codes_have_their_shape_and_differ() {
        let (a, b) = (random_recovery_code(), random_recovery_code());
        assert_eq!(a.len(), 14);
        assert!(a.bytes().all(|c| c == b'-' || RECOVERY_ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_encodes_the_label() {
        let uri = otpauth_uri("portcullis", "a+b@example.com", "ABC");
        assert_eq!(
            uri,
            "otpauth://totp/portcullis:a%2Bb@example.com?secret=ABC&issuer=portcullis\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn a_code_of_six_digits_is_totp_and_anything_else_a_recovery_code() {
        assert!(matches!(SecondFactor::either("123456"), SecondFactor::Totp(_)));
        assert!(matches!(SecondFactor::either("abcd-efgh-ijkm"), SecondFactor::RecoveryCode(_)));
        assert!(matches!(SecondFactor::either("12345"), SecondFactor::RecoveryCode(_)));
    }
}
