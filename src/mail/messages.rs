//! The messages themselves. Links are built from the configured templates alone (never from a
//! request's `Host` or forwarding headers), and a message holds no secret but its one token.

use super::Message;
use crate::config::MailSettings;

pub struct Templates {
    issuer: String,
    verify_email_url: String,
    reset_password_url: String,
}

impl Templates {
    pub fn new(brand: &str, mail: &MailSettings) -> Self {
        Self {
            issuer: brand.to_owned(),
            verify_email_url: mail.verify_email_url.clone(),
            reset_password_url: mail.reset_password_url.clone(),
        }
    }

    fn message(&self, to: &str, subject: &str, body: String) -> Message {
        Message {
            to: to.to_owned(),
            subject: format!("{}: {subject}", self.issuer),
            body: format!("{body}\n\n-- \nThis message was sent by {} to {to}.\n", self.issuer),
        }
    }

    pub fn verify(&self, to: &str, token: &str) -> Message {
        let link = self.verify_email_url.replace("{token}", token);
        self.message(
            to,
            "confirm your email address",
            format!(
                "Please confirm that this address belongs to your {} account by opening this \
                 link:\n\n{link}\n\nIf you did not create an account, ignore this message.",
                self.issuer
            ),
        )
    }

    pub fn confirm_new_address(&self, to: &str, token: &str) -> Message {
        let link = self.verify_email_url.replace("{token}", token);
        self.message(
            to,
            "confirm your new email address",
            format!(
                "Someone asked to move a {} account to this address. To confirm, open this \
                 link:\n\n{link}\n\nUntil then the account keeps its old address. If it was not \
                 you, ignore this message.",
                self.issuer
            ),
        )
    }

    pub fn reset(&self, to: &str, token: &str) -> Message {
        let link = self.reset_password_url.replace("{token}", token);
        self.message(
            to,
            "reset your password",
            format!(
                "Someone asked to reset the password of your {} account. To choose a new one, \
                 open this link:\n\n{link}\n\nThe link works once and expires soon. If it was \
                 not you, ignore this message: your password stays as it is.",
                self.issuer
            ),
        )
    }

    pub fn password_changed(&self, to: &str) -> Message {
        self.message(
            to,
            "your password was changed",
            "The password of your account was just changed, and every other session was \
             signed out. If it was not you, reset your password at once."
                .to_owned(),
        )
    }

    /// A second factor was turned on, off, or removed (`what` says which).
    pub fn mfa_changed(&self, to: &str, what: &str) -> Message {
        self.message(
            to,
            "your sign-in factors changed",
            format!(
                "Two-step verification of your account was just {what}. If it was not you, \
                 reset your password at once and sign in again to check your factors."
            ),
        )
    }

    /// A passkey was added to, or removed from, the account (`what` says which).
    pub fn passkey_changed(&self, to: &str, what: &str) -> Message {
        self.message(
            to,
            "your passkeys changed",
            format!(
                "A passkey was just {what} your account. If it was not you, reset your \
                 password at once and remove the passkeys you do not know."
            ),
        )
    }

    /// The password was reset. `factors_removed`: the reset was the first proof that this
    /// address is the owner's, so the second factors and passkeys added before it were removed.
    pub fn password_reset(&self, to: &str, factors_removed: bool) -> Message {
        let mut text = "The password of your account was just reset with a link sent to this \
             address, and every session was signed out. If it was not you, reset your password \
             again and check your mailbox's security."
            .to_owned();
        if factors_removed {
            text.push_str(
                "\n\nThis reset was the first proof that this address is yours, so the \
                 two-step verification, recovery codes, passkeys and remembered devices added \
                 to the account before it were removed: whoever registered the address may \
                 have added them. Add your own again once you are signed in.",
            );
        }
        self.message(to, "your password was reset", text)
    }

    pub fn recovery_codes_replaced(&self, to: &str) -> Message {
        self.message(
            to,
            "your recovery codes were replaced",
            "New recovery codes were just made for your account, and the old ones stopped \
             working. If it was not you, reset your password at once and sign in again to \
             check your factors."
                .to_owned(),
        )
    }

    pub fn address_change_requested(&self, to: &str) -> Message {
        self.message(
            to,
            "your email address is being changed",
            "Someone signed in to your account asked to move it to another email address. It \
             moves once the new address is confirmed. If it was not you, change your password \
             at once."
                .to_owned(),
        )
    }

    pub fn account_deleted(&self, to: &str) -> Message {
        self.message(
            to,
            "your account was deleted",
            "Your account and its sessions were deleted at your request.".to_owned(),
        )
    }
}
