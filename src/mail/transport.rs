//! Delivery: SMTP through `lettre` (`smtp://` in clear for a local relay, `smtp+starttls://`,
//! `smtps://`, with credentials from the URL; connections are pooled and reused), or, without
//! `SMTP_URL`, one RFC 5322 file per message under `DATA_DIR/mail/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Body;
use lettre::message::Mailbox;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Message;

/// How long one delivery may take, connection and TLS included.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Transport {
    /// One `.eml` file per message in this directory, each readable by this user only.
    File(PathBuf),
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
            return Ok(Self::File(mail_dir.to_owned()));
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
            Self::File(dir) => {
                write_private_file(dir, &email.formatted()).await.map_err(|e| DeliveryError {
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

/// Creates `dir` and any missing parent (the data directory, on PostgreSQL) 0700, and makes
/// `dir` itself 0700 whatever the umask or an earlier start left.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `message` to a new file `<uuid>.eml` in `dir`, created 0600: a message holds a
/// one-time link, for the addressee only. The message is written under a hidden name and renamed
/// once whole (as a maildir delivers), so whoever watches the directory never reads half of one.
async fn write_private_file(dir: &Path, message: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let id = uuid::Uuid::new_v4();
    let partial = dir.join(format!(".{id}.partial"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial).await?;
    let written = async {
        file.write_all(message).await?;
        file.sync_all().await
    }
    .await;
    drop(file);
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    tokio::fs::rename(&partial, dir.join(format!("{id}.eml"))).await
}
