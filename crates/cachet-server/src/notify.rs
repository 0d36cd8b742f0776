//! Delivery of one-time registration codes.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::error::{Error, Result};

/// File of the development notifier inside the data directory.
pub const DEV_CODES_FILE: &str = "dev-codes.txt";

/// Sends a one-time code to a phone number or e-mail address.
#[async_trait]
pub trait CodeNotifier: Send + Sync + 'static {
    /// Delivers `code` to the (normalised) `identifier`.
    async fn send_code(&self, identifier: &str, code: &str, expires_at_ms: i64) -> Result<()>;
}

/// Development notifier: logs the code and appends `identifier<TAB>code` to a file.
#[derive(Debug)]
pub struct DevNotifier {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl DevNotifier {
    /// Appends to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DevNotifier {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl CodeNotifier for DevNotifier {
    async fn send_code(&self, identifier: &str, code: &str, _expires_at_ms: i64) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        tracing::info!(identifier, code, "development notifier: one-time code");
        // Serialised so that concurrent registrations never interleave partial lines.
        let _guard = self.lock.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        f.write_all(format!("{identifier}\t{code}\n").as_bytes())
            .await?;
        f.flush().await?;
        Ok(())
    }
}

/// E-mail notifier through an SMTP relay. Refuses phone numbers.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpNotifier {
    /// `url` as lettre reads it: `smtp://host:port` (plain), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://user:password@host:465` (implicit TLS).
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::Config(format!("smtp_url: {e}")))?
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| Error::Config(format!("smtp_from: {e}")))?;
        Ok(SmtpNotifier { transport, from })
    }
}

#[async_trait]
impl CodeNotifier for SmtpNotifier {
    async fn send_code(&self, identifier: &str, code: &str, _expires_at_ms: i64) -> Result<()> {
        if !identifier.contains('@') {
            return Err(Error::IdentifierNotDeliverable(
                "this server sends codes by e-mail only",
            ));
        }
        let to = identifier
            .parse::<Mailbox>()
            .map_err(|_| Error::InvalidIdentifier("not a deliverable e-mail address"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Your cachet registration code")
            .body(format!(
                "Your cachet registration code is {code}.\n\
                 It expires in a few minutes. If you did not ask for it, ignore this e-mail.\n"
            ))
            .map_err(|e| Error::CodeDeliveryFailed(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| Error::CodeDeliveryFailed(e.to_string()))?;
        Ok(())
    }
}
