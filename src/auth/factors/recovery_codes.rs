//! Recovery codes: ten random codes shown once, stored as keyed hashes; regenerating them, and
//! removing every second factor of an account.

use super::{
    AuthError, Factors, Principal, RECOVERY_ALPHABET, RECOVERY_CODE_CHARS, RECOVERY_CODE_COUNT,
    RecoveryCodes, RequestContext, SecondFactors,
};
use crate::audit::{AuditEvent, EventType, Outcome};
use crate::auth::tokens;
use crate::domain::UserId;
use crate::store::TokenHash;

impl SecondFactors {
    pub(in crate::auth) fn recovery_code_hash(&self, user: UserId, code: &str) -> TokenHash {
        let normalised: String = code
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        self.keyed_hash("recovery code", &[user.to_string().as_bytes(), normalised.as_bytes()])
    }

    /// Fresh recovery codes and their hashes.
    pub(in crate::auth) fn new_recovery_codes(
        &self,
        user: UserId,
    ) -> (Vec<String>, Vec<TokenHash>) {
        let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| random_recovery_code()).collect();
        let hashes = codes.iter().map(|code| self.recovery_code_hash(user, code)).collect();
        (codes, hashes)
    }
}

impl Factors {
    /// `POST /v1/auth/mfa/recovery-codes`: after the password and a code, new codes replace the
    /// old ones.
    pub async fn regenerate_recovery_codes(
        &self,
        context: &RequestContext,
        principal: &Principal,
        password: &str,
        code: Option<&str>,
    ) -> Result<RecoveryCodes, AuthError> {
        let user = self.passwords.own_account_to_change(context, principal).await?;
        if !user.factors.totp {
            self.passwords
                .check_current(context, principal, &user, password, "recovery_codes")
                .await?;
            return Err(AuthError::Conflict("TOTP is not on".into()));
        }
        self.proofs
            .check_password_and_code(context, principal, &user, password, code, "recovery_codes")
            .await?;
        let (codes, hashes) = self.factors.new_recovery_codes(user.id);
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
        self.mail.notify(|t| t.recovery_codes_replaced(user.email.as_str())).await?;
        Ok(RecoveryCodes { recovery_codes: codes })
    }
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
    fn recovery_codes_have_their_shape_and_differ() {
        let (a, b) = (random_recovery_code(), random_recovery_code());
        assert_eq!(a.len(), 14);
        assert!(a.bytes().all(|c| c == b'-' || RECOVERY_ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }
}
