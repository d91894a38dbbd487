//! The proof a change of the factors (or of the password, the email, the account) asks for: the
//! password and a code, or a sign-in recent enough to stand for them; and the check of a second
//! factor that the second step of a login shares with it.

use std::sync::Arc;

use super::{Proof, RECENT_SIGN_IN, SecondFactor, SecondFactors};
use crate::audit::{Audit, AuditEvent, EventType, Outcome};
use crate::auth::{AuthError, Lockouts, Passwords, Principal, RequestContext};
use crate::domain::{Clock, Timestamp, chrono_duration};
use crate::store::UserRecord;

/// Proofs of identity beyond a session: it holds only what checking a password and a second
/// factor needs.
pub struct Proofs {
    pub(in crate::auth) passwords: Arc<Passwords>,
    pub(in crate::auth) factors: Arc<SecondFactors>,
    pub(in crate::auth) lockout: Arc<Lockouts>,
    pub(in crate::auth) audit: Audit,
    pub(in crate::auth) clock: Arc<dyn Clock>,
}

impl Proofs {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Checks the password and then a TOTP or recovery code before a change to the factors (or
    /// the account's deletion), as a login does: a wrong password or code counts toward the
    /// lockout, a right password alone neither adds to the count nor clears it, and only a
    /// request whose password and code are both right clears it.
    pub(in crate::auth) async fn check_password_and_code(
        &self,
        context: &RequestContext,
        principal: &Principal,
        user: &UserRecord,
        password: &str,
        code: Option<&str>,
        what: &str,
    ) -> Result<(), AuthError> {
        let lock_key =
            self.passwords.count_current(context, principal, user, password, what).await?;
        if !user.factors.totp {
            return self.lockout.forgive(&lock_key).await;
        }
        self.lockout.release(&lock_key).await?;
        let factor = SecondFactor::either(code.unwrap_or_default());
        let locks = self.lockout.begin_attempt(&lock_key).await?;
        if code.is_none() || !self.check_second_factor(context, user, factor).await? {
            self.record_mfa_failure(context, user, factor, what).await?;
            if locks {
                let on_device = lock_key.member_name().is_some();
                self.lockout
                    .record_lockout(context, user.email.as_str(), Some(user.id), on_device)
                    .await?;
            }
            return Err(AuthError::InvalidMfaCode);
        }
        self.lockout.forgive(&lock_key).await
    }

    /// The proof a change of the factors needs: the password (and, with TOTP on, a code), or,
    /// without them, a session that signed in within `RECENT_SIGN_IN` with as much (ASVS 5
    /// V7.5.1: re-authenticate before changing an authentication factor). A stolen access token
    /// alone, or a session older than the account's TOTP, is not enough.
    pub(in crate::auth) async fn confirm_identity(
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

    /// Checks a TOTP or recovery code of an account with TOTP, using it up if it is right.
    pub(in crate::auth) async fn check_second_factor(
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
                let Some(step) = self.factors.matching_step(user.id, &totp, code, self.now())?
                else {
                    return Ok(false);
                };
                Ok(self.factors.store.accept_totp_step(user.id, step).await?)
            }
            SecondFactor::RecoveryCode(code) => {
                let hash = self.factors.recovery_code_hash(user.id, code);
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

    pub(in crate::auth) async fn record_mfa_failure(
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
}
