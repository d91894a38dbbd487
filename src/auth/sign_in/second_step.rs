//! The second step of a login: the token the password step hands out, and the TOTP or recovery
//! code that completes the login under the same lockout key and budgets.

use super::SignIn;
use crate::auth::factors::{MFA_TOKEN_TTL, PendingLogin, SecondFactor};
use crate::auth::limits::Account;
use crate::auth::lockout::{device_lock_key, email_lock_key};
use crate::auth::{AuthError, MfaToken, RequestContext, TokenPair, chrono_duration, tokens};
use crate::domain::Amr;
use crate::store::{ChallengePurpose, LockKey, UserRecord};

impl SignIn {
    /// After a right password for an account with TOTP: the single-use token of the second step
    /// (the login answers `mfa_required` with it). The attempt the password counted is taken
    /// back, not forgiven: failures before it stay.
    pub(super) async fn require_second_factor(
        &self,
        user: &UserRecord,
        attempted: &str,
        lock_key: &LockKey,
        device_token: Option<&str>,
    ) -> Result<MfaToken, AuthError> {
        let now = self.now();
        self.lockout.release(lock_key).await?;
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
        Ok(MfaToken(token))
    }

    /// `POST /v1/auth/login/mfa`: the second step of a login.
    pub async fn login_second_factor(
        &self,
        context: &RequestContext,
        mfa_token: &str,
        factor: SecondFactor<'_>,
    ) -> Result<TokenPair, AuthError> {
        self.budgets.limit_credential_request(context, None).await?;
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
        self.budgets.take_account_budget(context, account).await?;
        let user = self.users.user_by_id(user_id).await?;
        let user = user.filter(|u| !u.disabled).ok_or(AuthError::InvalidToken)?;
        let lock_key = match &device {
            Some(device) => device_lock_key(user.id, device),
            None => email_lock_key(&pending.attempted),
        };
        let locks = match self.lockout.begin_attempt(&lock_key).await {
            Ok(locks) => locks,
            Err(error) => {
                self.proofs.record_mfa_failure(context, &user, factor, "locked").await?;
                return Err(error);
            }
        };
        if !self.proofs.check_second_factor(context, &user, factor).await? {
            self.proofs.record_mfa_failure(context, &user, factor, "invalid_mfa_code").await?;
            if locks {
                let attempted = &pending.attempted;
                self.lockout
                    .record_lockout(context, attempted, Some(user.id), device.is_some())
                    .await?;
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
        self.lockout.forgive(&lock_key).await?;
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
}
