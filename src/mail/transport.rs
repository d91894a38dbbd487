//! Delivery: SMTP through `lettre` (`smtp://` in clear for a local relay, `smtp+starttls://`,
//! `smtps://`, with credentials from the URL; connections are pooled and reused), or, without
//! `SMTP_URL`, one RFC 5322 file per message under `DATA_DIR/mail/`.

use std::path::Path;
use std::time::Duration;

use lettre::message::Body;
use lettre::message::Mailbox;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Message;

/// How long one delivery may take, connection and TLS included.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Why a delivery failed; `permanent` when the server refused the message for good (a 5xx
/// answer), so trying again cannot help. It never holds the SMTP credentials.
#[derive(Debug)]
pub struct DeliveryError {
    pub permanent: bool,
    pub message: String,
}

impl Transport {
    /// The transport `smtp_url` names, or the file transport into `mail_dir` (created 0700).
    pub fn new(smtp_url: Option<&str>, mail_dir: &Path) -> Result<Self, String> {
        let Some(url) = smtp_url else {
            create_private_dir(mail_dir)
                .map_err(|e| format!("cannot create {}: {e}", mail_dir.display()))?;
            return Ok(Self::File(AsyncFileTransport::new(mail_dir)));
        };
        // lettre reads `smtp://` (in clear), `smtps://` (TLS from the start) and
        // `smtp://…?tls=required` (STARTTLS, refusing a server that does not offer it).
        let url = match url.strip_prefix("smtp+starttls://") {
            Some(rest) if rest.contains('?') => format!("smtp://{rest}&tls=required"),
            Some(rest) => format!("smtp://{rest}?tls=required"),
            None => url.to_owned(),
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|_| "PORTCULLIS_SMTP_URL is not a valid SMTP URL".to_owned())?;
        Ok(Self::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build()))
    }

    pub async fn deliver(&self, from: &Mailbox, message: &Message) -> Result<(), DeliveryError> {
        let permanent = |message: String| DeliveryError { permanent: true, message };
        let to: Mailbox = message
            .to
            .parse()
            .map_err(|_| permanent("the recipient is not a valid address".to_owned()))?;
        // 7bit (8bit for non-ASCII text) whenever every line fits SMTP's 998 octets, rather
        // than lettre's quoted-printable for lines over 76: a link must stay whole and
        // readable in the message as stored, in a `.eml` file as in a mailbox.
        let text = message.body.replace("\r\n", "\n").replace('\n', "\r\n");
        let fits = text.split("\r\n").all(|line| line.len() <= 998) && !text.contains('\0');
        let body = match (fits, text.is_ascii()) {
            (true, true) => {
                Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::SevenBit)
            }
            (true, false) => {
                Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::EightBit)
            }
            (false, _) => Body::new(message.body.clone()),
        };
        let email = lettre::Message::builder()
            .from(from.clone())
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| permanent(format!("cannot build the message: {e}")))?;
        match self {
            Self::File(transport) => {
                transport.send(email).await.map(|_| ()).map_err(|e| DeliveryError {
                    permanent: false,
                    message: format!("cannot write the message: {e}"),
                })
            }
            Self::Smtp(transport) => transport
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| DeliveryError { permanent: e.is_permanent(), message: e.to_string() }),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
