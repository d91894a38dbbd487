//! TOTP (RFC 6238): enrolment, the check of a code against the last accepted step, disabling,
//! and sealing the stored secrets again after a master-key rotation.

use super::{
    AuthError, Factors, Principal, RecoveryCodes, RequestContext, SecondFactor, SecondFactors,
    TOTP_DIGITS, TOTP_DRIFT_STEPS, TOTP_SECRET_BYTES, TOTP_STEP_SECS, TotpEnrolment, totp_context,
};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::tokens;
use crate::domain::{Timestamp, UserId};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::store::TotpRecord;

impl SecondFactors {
    /// The step within the drift whose code is `code` and that is later than the last accepted
    /// one. Every candidate is compared in constant time, whichever matches.
    pub(in crate::auth) fn matching_step(
        &self,
        user: UserId,
        totp: &TotpRecord,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<i64>, AuthError> {
        if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let secret = self.totp_secret(user, totp)?;
        let current = now.timestamp().div_euclid(TOTP_STEP_SECS);
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
        let (secret, reseal) = self.open(&totp_context(user), &totp.secret)?;
        if reseal {
            let sealed = self.seal(&totp_context(user), &secret)?;
            let store = self.store.clone();
            // Best effort and off the request's path: the value opens either way.
            tokio::spawn(async move {
                if let Err(error) = store.replace_totp_secret(user, &sealed).await {
                    tracing::warn!(%user, error = error.with_causes(), "could not reseal a TOTP secret");
                }
            });
        }
        Ok(secret)
    }
}

impl Factors {
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
    /// `POST /v1/auth/mfa/totp`: after the password, a pending enrolment with a fresh secret.
    pub async fn start_totp(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
    ) -> Result<TotpEnrolment, AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        self.passwords.check_current(context, principal, &user, password, "totp_enrolment").await?;
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
        let user = self.passwords.own_account_to_change(context, principal).await?;
        let pending = self.factors.store.totp(user.id).await?.filter(|t| !t.confirmed);
        let Some(pending) = pending else {
            return Err(AuthError::Conflict("no TOTP enrolment is pending".into()));
        };
        let Some(step) = self.factors.matching_step(user.id, &pending, code, self.now())? else {
            self.proofs
                .record_mfa_failure(context, &user, SecondFactor::Totp(code), "enrolment")
                .await?;
            return Err(AuthError::InvalidMfaCode);
        };
        let (codes, hashes) = self.factors.new_recovery_codes(user.id);
        if !self.factors.store.confirm_totp(user.id, step, &hashes, self.now()).await? {
            return Err(AuthError::InvalidMfaCode);
        }
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaEnabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail("totp");
        self.audit.record(event).await?;
        self.mail.notify(|t| t.mfa_changed(user.email.as_str(), "turned on")).await?;
        Ok(RecoveryCodes { recovery_codes: codes })
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
        let user = self.passwords.own_account_to_change(context, principal).await?;
        if !user.factors.totp {
            // Still behind the password, so the answer tells nothing to a token thief.
            self.passwords
                .check_current(context, principal, &user, password, "totp_disable")
                .await?;
            return Err(AuthError::Conflict("TOTP is not on".into()));
        }
        self.proofs
            .check_password_and_code(context, principal, &user, password, code, "totp_disable")
            .await?;
        self.factors.store.remove_totp(user.id).await?;
        self.users.bump_credential_epoch(user.id).await?;
        let event = AuditEvent::new(EventType::MfaDisabled, Outcome::Success, context, self.now())
            .user(user.id)
            .email(user.email.as_str())
            .detail("totp");
        self.audit.record(event).await?;
        self.mail.notify(|t| t.mfa_changed(user.email.as_str(), "turned off")).await
    }
}

/// The code of `step` for `secret` (RFC 6238 with SHA-1, 6 digits).
pub(in crate::auth) fn totp_code(secret: &[u8], step: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::factors::SecondFactor;

    #[test]
    fn totp_matches_the_rfc_6238_test_vectors() {
        // RFC 6238 Appendix B, SHA-1, the last 6 of the 8 digits.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59 / 30), "287082");
        assert_eq!(totp_code(secret, 1_111_111_109 / 30), "081804");
        assert_eq!(totp_code(secret, 2_000_000_000 / 30), "279037");
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
