//! The second factors: TOTP with recovery codes, passkeys, the second step of a login, and the
//! proof a change of them asks for. Each has its file; what they share (the keyed hashes, sealing,
//! ceremonies in progress) is here.
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

mod passkeys;
mod proof;
mod recovery_codes;
mod totp;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{AuthError, Budgets, Notifier, Passwords, Principal, RequestContext, tokens};
use crate::audit::Audit;
use crate::crypto::{KeyedHasher, Sealer};
use crate::domain::{Clock, Timestamp, UserId};
use crate::store::{ChallengePurpose, ChallengeRecord, MfaStore, TokenHash, UserStore};

pub use proof::Proofs;

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

/// A signed-in user's second factors: enrolling, replacing and removing them. It holds only
/// the stores and keys they use.
pub struct Factors {
    pub(in crate::auth) users: Arc<dyn UserStore>,
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) proofs: Arc<Proofs>,
    pub(in crate::auth) budgets: Arc<Budgets>,
    pub(in crate::auth) factors: Arc<SecondFactors>,
    pub(in crate::auth) mail: Arc<Notifier>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Factors {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// What the second factors rest on, built once by `startup`.
pub struct SecondFactors {
    pub store: Arc<dyn MfaStore>,
    /// Seals TOTP secrets and ceremony states under the master key.
    pub sealer: Sealer,
    /// Keys the hashes of recovery codes and the decoy credential ids of unknown emails.
    pub key: KeyedHasher,
    /// The relying party of passkeys.
    pub webauthn: webauthn_rs_core::WebauthnCore,
    /// The issuer named in `otpauth://` URIs: `BRAND_NAME`.
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
    pub(in crate::auth) fn keyed_hash(&self, purpose: &str, parts: &[&[u8]]) -> TokenHash {
        TokenHash(self.key.hash(purpose, parts))
    }

    pub(in crate::auth) fn seal(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.sealer.seal(context, value).map_err(|e| AuthError::Internal(e.into()))
    }

    pub(in crate::auth) fn open(
        &self,
        context: &str,
        stored: &[u8],
    ) -> Result<(Vec<u8>, bool), AuthError> {
        self.sealer.open(context, stored).map_err(|e| AuthError::Internal(e.into()))
    }

    /// Stores a ceremony's state, sealed and bound to its id, and returns the id to hand out.
    pub(in crate::auth) async fn begin_ceremony(
        &self,
        purpose: ChallengePurpose,
        user: Option<UserId>,
        state: &impl Serialize,
        expires_at: Timestamp,
    ) -> Result<String, AuthError> {
        let id = tokens::random_token();
        let hash = tokens::hash_token(&id);
        let json = serde_json::to_vec(state).map_err(|e| AuthError::Internal(e.into()))?;
        let sealed = self.seal(&challenge_context(&hash, purpose), &json)?;
        let record = ChallengeRecord { user, state: sealed };
        self.store.put_challenge(&hash, purpose, &record, expires_at).await?;
        Ok(id)
    }

    /// The state of a ceremony in progress: peeked (it stays usable) or taken (used up).
    pub(in crate::auth) async fn ceremony<T: for<'de> Deserialize<'de>>(
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
        let state = serde_json::from_slice(&json).map_err(|e| AuthError::Internal(e.into()))?;
        Ok(Some((record.user, state)))
    }
}

/// The associated data of a ceremony's sealed state: its purpose and id hash.
fn challenge_context(hash: &TokenHash, purpose: ChallengePurpose) -> String {
    format!("challenge {} {}", purpose.as_str(), URL_SAFE_NO_PAD.encode(hash.0))
}

pub(in crate::auth) fn totp_context(user: UserId) -> String {
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

    pub(in crate::auth) fn name(self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// What the second step of a login keeps of its first, sealed in the challenge.
#[derive(Serialize, Deserialize)]
pub(in crate::auth) struct PendingLogin {
    /// The attempted email, normalised: the account budget and the lockout key.
    pub attempted: String,
    /// The device token the first step presented, when it was this account's: the lockout key
    /// is then that device's, and the login binds its session to it.
    pub device_token: Option<String>,
}

pub use passkeys::{CEREMONY_TTL, PasskeyOptions, PasskeyView};
pub(in crate::auth) use passkeys::{
    DECOY_LENGTHS, failed, stored_credential, to_json, to_json_text,
};
