//! The mail settings: where messages go, what their links look like, and how long they are
//! retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Shown;
use super::formats::{choice, positive_duration, value_format, word_of};
use super::storage::{SecretUrl, shown_url};

/// Whether registration asks the owner to confirm the address, and whether login waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailVerification {
    Off,
    Optional,
    Required,
}

const VERIFICATIONS: [(&str, EmailVerification); 3] = [
    ("off", EmailVerification::Off),
    ("optional", EmailVerification::Optional),
    ("required", EmailVerification::Required),
];

impl EmailVerification {
    pub fn as_str(self) -> &'static str {
        VERIFICATIONS.iter().find(|(_, v)| *v == self).map_or("", |(name, _)| name)
    }
}

/// Its `Debug` masks the SMTP credentials (see `SecretUrl`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MailSettings {
    /// `None`: messages are written as `.eml` files under `DATA_DIR/mail/`.
    #[serde(rename = "smtp_url", with = "smtp_url")]
    pub smtp_url: Option<SecretUrl>,
    /// The `From` mailbox, such as `portcullis <no-reply@localhost>`.
    #[serde(rename = "mail_from", with = "mailbox")]
    pub from: String,
    /// Link templates; each contains `{token}`.
    #[serde(rename = "verify_email_url", with = "link_template")]
    pub verify_email_url: String,
    #[serde(rename = "reset_password_url", with = "link_template")]
    pub reset_password_url: String,
    #[serde(rename = "email_verification", with = "verification")]
    pub verification: EmailVerification,
    #[serde(rename = "email_token_ttl", with = "positive_duration")]
    pub email_token_ttl: Duration,
    #[serde(rename = "password_reset_ttl", with = "positive_duration")]
    pub password_reset_ttl: Duration,
    /// How long a message is retried before it is given up.
    #[serde(rename = "mail_retry_for", with = "positive_duration")]
    pub retry_for: Duration,
    /// The longest wait between two tries.
    #[serde(rename = "mail_retry_max_delay", with = "positive_duration")]
    pub retry_max_delay: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        let link = |path: &str| format!("http://localhost:8080/{path}?token={{token}}");
        Self {
            smtp_url: None,
            from: "portcullis <no-reply@localhost>".to_owned(),
            verify_email_url: link("verify-email"),
            reset_password_url: link("reset-password"),
            verification: EmailVerification::Optional,
            email_token_ttl: Duration::from_secs(24 * 3_600),
            password_reset_ttl: Duration::from_secs(30 * 60),
            retry_for: Duration::from_secs(24 * 3_600),
            retry_max_delay: Duration::from_secs(5),
        }
    }
}

value_format!(
    /// Plain SMTP (for a local relay), STARTTLS or implicit TLS.
    smtp_url: Option<SecretUrl> = optional(|url| {
        let schemes = ["smtp://", "smtp+starttls://", "smtps://"];
        SecretUrl::with_scheme(url, &schemes).and_then(|_| SecretUrl::with_scheme(url.trim(), &schemes))
    }),
    |url| shown_url(url.as_deref())
);
value_format!(
    /// `name <address@example.com>`.
    mailbox: String = required(|v| {
        v.parse::<lettre::message::Mailbox>()
            .map(|_| v.to_owned())
            .map_err(|_| "must be a mailbox such as `name <address@example.com>`".to_owned())
    }),
    |v| Shown::Value(v.clone())
);
value_format!(
    /// A link template: an http(s) URL with `{token}` in it. Links are built from it alone,
    /// never from a request's `Host` or forwarding headers.
    link_template: String = required(|value| {
        let web = value.starts_with("https://") || value.starts_with("http://");
        if web && value.contains("{token}") && !value.chars().any(char::is_whitespace) {
            Ok(value.to_owned())
        } else {
            Err("must be an http(s) URL that contains {token}".to_owned())
        }
    }),
    |v| Shown::Value(v.clone())
);
value_format!(
    /// `off`, `optional` or `required`.
    verification: EmailVerification = required(|v| choice(v, &VERIFICATIONS)),
    |v| word_of(v, &VERIFICATIONS)
);
