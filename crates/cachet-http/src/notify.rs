//! Delivery of one-time codes: a development file, e-mail through an SMTP relay, or an
//! HTTP webhook (for an SMS gateway or a mail service with an HTTP API).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Secret;

/// File of the development notifier inside a server's data directory.
pub const DEV_CODES_FILE: &str = "dev-codes.txt";

/// How long the webhook notifier waits for the gateway.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);

/// What a code is for; tells the user which server sent it and which prompt it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The data server's registration (a new account or installation).
    Registration,
    /// The data server's identity check of a password recovery (it also registers the
    /// new installation that follows).
    Recovery,
    /// The key server's identity check of a password recovery.
    KeyServerRecovery,
}

impl Purpose {
    /// The stable name sent to webhooks: `registration`, `recovery`, `key_server_recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Registration => "registration",
            Purpose::Recovery => "recovery",
            Purpose::KeyServerRecovery => "key_server_recovery",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Purpose::Registration => "Your cachet registration code",
            Purpose::Recovery => "Your cachet recovery code (data server)",
            Purpose::KeyServerRecovery => "Your cachet recovery code (key server)",
        }
    }

    fn sentence(self, code: &str) -> String {
        match self {
            Purpose::Registration => format!("Your cachet registration code is {code}."),
            Purpose::Recovery => {
                format!("Your cachet recovery code from the data server is {code}.")
            }
            Purpose::KeyServerRecovery => {
                format!("Your cachet recovery code from the key server is {code}.")
            }
        }
    }
}

/// One one-time code to deliver. Named fields, so that the recipient and the code (both
/// strings) cannot be swapped by a caller; no `Debug`, since the code is a secret.
#[derive(Clone, Copy)]
pub struct CodeMessage<'a> {
    /// The (normalised) phone number or e-mail address.
    pub to: &'a str,
    /// The code.
    pub code: &'a str,
    /// What the code is for; the text sent says so.
    pub purpose: Purpose,
    /// When the code expires, ms since the epoch.
    pub expires_at_ms: i64,
}

/// Sends a one-time code to a phone number or e-mail address.
#[async_trait]
pub trait CodeNotifier: Send + Sync + 'static {
    /// Delivers `message.code` to `message.to`.
    async fn send_code(&self, message: CodeMessage<'_>) -> Result<()>;
}

/// How one-time codes reach the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    /// Development: log the code and append `identifier<TAB>code` to
    /// `<data-dir>/dev-codes.txt`. Never use in production.
    #[default]
    Dev,
    /// Send e-mail through an SMTP relay (`smtp_url`, `smtp_from`). Phone numbers are refused.
    Smtp,
    /// POST the code as JSON to `webhook_url` (an SMS gateway or mail service), with
    /// `webhook_token` as a bearer token if set.
    Webhook,
}

/// The notifier settings of a server, checked and turned into a notifier.
#[derive(Debug, Clone, Default)]
pub struct NotifierSettings {
    /// Which notifier.
    pub kind: NotifierKind,
    /// File of the development notifier.
    pub dev_codes_file: PathBuf,
    /// SMTP relay URL (smtp notifier).
    pub smtp_url: Option<String>,
    /// Sender of code e-mails (smtp notifier).
    pub smtp_from: Option<String>,
    /// Where codes are POSTed (webhook notifier).
    pub webhook_url: Option<String>,
    /// Bearer token sent with each webhook call.
    pub webhook_token: Option<Secret>,
}

impl NotifierSettings {
    /// Refuses a notifier without the settings it needs.
    pub fn check(&self) -> Result<()> {
        match self.kind {
            NotifierKind::Dev => Ok(()),
            NotifierKind::Smtp => {
                if self.smtp_url.is_none() || self.smtp_from.is_none() {
                    return Err(Error::Config(
                        "the smtp notifier needs smtp_url and smtp_from".into(),
                    ));
                }
                Ok(())
            }
            NotifierKind::Webhook => match self.webhook_url.as_deref() {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(()),
                Some(_) => Err(Error::Config(
                    "webhook_url must be an http:// or https:// URL".into(),
                )),
                None => Err(Error::Config(
                    "the webhook notifier needs webhook_url".into(),
                )),
            },
        }
    }

    /// The notifier these settings name.
    pub fn build(&self) -> Result<Arc<dyn CodeNotifier>> {
        self.check()?;
        Ok(match self.kind {
            NotifierKind::Dev => Arc::new(DevNotifier::new(self.dev_codes_file.clone())),
            NotifierKind::Smtp => Arc::new(SmtpNotifier::new(
                self.smtp_url.as_deref().unwrap_or_default(),
                self.smtp_from.as_deref().unwrap_or_default(),
            )?),
            NotifierKind::Webhook => Arc::new(WebhookNotifier::new(
                self.webhook_url.as_deref().unwrap_or_default(),
                self.webhook_token.clone(),
            )?),
        })
    }
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
    async fn send_code(&self, message: CodeMessage<'_>) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let (to, code, purpose) = (message.to, message.code, message.purpose);
        tracing::info!(
            identifier = to,
            code,
            purpose = purpose.as_str(),
            "development notifier: one-time code"
        );
        // Serialised so that concurrent requests never interleave partial lines.
        let _guard = self.lock.lock().await;
        // Codes are secrets: the file is the owner's only from its first line.
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut f = options.open(&self.path).await?;
        f.write_all(format!("{to}\t{code}\n").as_bytes()).await?;
        f.flush().await?;
        Ok(())
    }
}

/// E-mail notifier through an SMTP relay. Refuses phone numbers.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

crate::debug_some_fields!(SmtpNotifier { from });

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
    async fn send_code(&self, message: CodeMessage<'_>) -> Result<()> {
        let (to, code, purpose) = (message.to, message.code, message.purpose);
        if !to.contains('@') {
            return Err(Error::IdentifierNotDeliverable(
                "this server sends codes by e-mail only",
            ));
        }
        let mailbox = to
            .parse::<Mailbox>()
            .map_err(|_| Error::InvalidIdentifier("not a deliverable e-mail address"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(mailbox)
            .subject(purpose.subject())
            .body(format!(
                "{}\n\
                 It expires in a few minutes. If you did not ask for it, ignore this e-mail.\n",
                purpose.sentence(code)
            ))
            .map_err(|e| Error::CodeDeliveryFailed(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| Error::CodeDeliveryFailed(e.to_string()))?;
        Ok(())
    }
}

/// The JSON body of a webhook call.
#[derive(Serialize)]
struct WebhookCall<'a> {
    to: &'a str,
    code: &'a str,
    purpose: &'static str,
    text: String,
    expires_at: i64,
}

/// HTTP webhook notifier: POSTs `{"to", "code", "purpose", "text", "expires_at"}` as JSON
/// to a URL, with `Authorization: Bearer <token>` when a token is set. Any 2xx answer is
/// a delivery; anything else fails the request that asked for the code.
pub struct WebhookNotifier {
    url: reqwest::Url,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &self.url.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// Calls `url` (http or https), with `token` as a bearer token if given.
    pub fn new(url: &str, token: Option<Secret>) -> Result<Self> {
        let url =
            reqwest::Url::parse(url).map_err(|e| Error::Config(format!("webhook_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(
                "webhook_url must be an http:// or https:// URL".into(),
            ));
        }
        if url.scheme() == "http" {
            tracing::warn!("webhook_url is plain http: codes cross the network unencrypted");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(WEBHOOK_TIMEOUT)
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("webhook client: {e}")))?;
        Ok(WebhookNotifier { url, token, http })
    }
}

#[async_trait]
impl CodeNotifier for WebhookNotifier {
    async fn send_code(&self, message: CodeMessage<'_>) -> Result<()> {
        let CodeMessage {
            to,
            code,
            purpose,
            expires_at_ms,
        } = message;
        let call = WebhookCall {
            to,
            code,
            purpose: purpose.as_str(),
            text: purpose.sentence(code),
            expires_at: expires_at_ms,
        };
        let body = serde_json::to_vec(&call)
            .map_err(|e| Error::CodeDeliveryFailed(format!("webhook body: {e}")))?;
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::CodeDeliveryFailed(format!("webhook: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::CodeDeliveryFailed(format!(
                "webhook answered {status}"
            )));
        }
        Ok(())
    }
}
