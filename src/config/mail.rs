//! The mail settings: where messages go, what their links look like, and how long they are
//! retried.

use std::fmt;
use std::time::Duration;

use super::parse::{format_duration, mask_url, parse_positive_duration};
use super::{ConfigError, Raw, Shown, shown_url};

/// Whether registration asks the owner to confirm the address, and whether login waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailVerification {
    Off,
    Optional,
    Required,
}

impl EmailVerification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

#[derive(Clone)]
pub struct MailSettings {
    /// `None`: messages are written as `.eml` files under `DATA_DIR/mail/`.
    pub smtp_url: Option<String>,
    /// The `From` mailbox, such as `portcullis <no-reply@localhost>`.
    pub from: String,
    /// Link templates; each contains `{token}`.
    pub verify_email_url: String,
    pub reset_password_url: String,
    pub verification: EmailVerification,
    pub email_token_ttl: Duration,
    pub password_reset_ttl: Duration,
    /// How long a message is retried before it is given up.
    pub retry_for: Duration,
    /// The longest wait between two tries.
    pub retry_max_delay: Duration,
}

/// SMTP credentials are masked; everything else is shown.
impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            smtp_url,
            from,
            verify_email_url,
            reset_password_url,
            verification,
            email_token_ttl,
            password_reset_ttl,
            retry_for,
            retry_max_delay,
        } = self;
        f.debug_struct("MailSettings")
            .field("smtp_url", &smtp_url.as_deref().map(mask_url))
            .field("from", from)
            .field("verify_email_url", verify_email_url)
            .field("reset_password_url", reset_password_url)
            .field("verification", verification)
            .field("email_token_ttl", email_token_ttl)
            .field("password_reset_ttl", password_reset_ttl)
            .field("retry_for", retry_for)
            .field("retry_max_delay", retry_max_delay)
            .finish()
    }
}

pub(super) fn from_raw(raw: &Raw) -> Result<MailSettings, ConfigError> {
    let smtp_url = raw
        .optional("SMTP_URL")
        .map(|url| {
            let schemes = ["smtp://", "smtp+starttls://", "smtps://"];
            if schemes.iter().any(|s| url.starts_with(s)) {
                Ok(url.trim().to_owned())
            } else {
                Err(ConfigError::new(
                    "SMTP_URL",
                    "must start with smtp://, smtp+starttls:// or smtps://",
                ))
            }
        })
        .transpose()?;
    Ok(MailSettings {
        smtp_url,
        from: raw.parse("MAIL_FROM", |v| {
            v.parse::<lettre::message::Mailbox>()
                .map(|_| v.to_owned())
                .map_err(|_| "must be a mailbox such as `name <address@example.com>`".to_owned())
        })?,
        verify_email_url: raw.parse("VERIFY_EMAIL_URL", link_template)?,
        reset_password_url: raw.parse("RESET_PASSWORD_URL", link_template)?,
        verification: raw.parse("EMAIL_VERIFICATION", |v| match v {
            "off" => Ok(EmailVerification::Off),
            "optional" => Ok(EmailVerification::Optional),
            "required" => Ok(EmailVerification::Required),
            _ => Err("must be off, optional or required".to_owned()),
        })?,
        email_token_ttl: raw.parse("EMAIL_TOKEN_TTL", parse_positive_duration)?,
        password_reset_ttl: raw.parse("PASSWORD_RESET_TTL", parse_positive_duration)?,
        retry_for: raw.parse("MAIL_RETRY_FOR", parse_positive_duration)?,
        retry_max_delay: raw.parse("MAIL_RETRY_MAX_DELAY", parse_positive_duration)?,
    })
}

/// A link template: an http(s) URL with `{token}` in it. Links are built from it alone, never
/// from a request's `Host` or forwarding headers.
fn link_template(value: &str) -> Result<String, String> {
    let web = value.starts_with("https://") || value.starts_with("http://");
    if web && value.contains("{token}") && !value.chars().any(char::is_whitespace) {
        Ok(value.to_owned())
    } else {
        Err("must be an http(s) URL that contains {token}".to_owned())
    }
}

impl MailSettings {
    pub(super) fn describe(&self) -> Vec<(&'static str, Shown)> {
        let secs = |d: Duration| Shown::Value(format_duration(d));
        vec![
            ("SMTP_URL", shown_url(self.smtp_url.as_deref())),
            ("MAIL_FROM", Shown::Value(self.from.clone())),
            ("VERIFY_EMAIL_URL", Shown::Value(self.verify_email_url.clone())),
            ("RESET_PASSWORD_URL", Shown::Value(self.reset_password_url.clone())),
            ("EMAIL_VERIFICATION", Shown::Value(self.verification.as_str().to_owned())),
            ("EMAIL_TOKEN_TTL", secs(self.email_token_ttl)),
            ("PASSWORD_RESET_TTL", secs(self.password_reset_ttl)),
            ("MAIL_RETRY_FOR", secs(self.retry_for)),
            ("MAIL_RETRY_MAX_DELAY", secs(self.retry_max_delay)),
        ]
    }
}
