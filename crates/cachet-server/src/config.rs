//! Server configuration: command-line flags, `CACHET_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Size of every stored attachment chunk but the last: 2 MiB of plaintext plus the
/// 16-byte secretbox tag (`docs/protocol.md`, section 5).
pub const CHUNK_SIZE: u32 = cachet_crypto::attachment::SEALED_CHUNK_SIZE as u32;

pub use cachet_http::notify::NotifierKind;
pub use cachet_http::Secret;

/// Settings as given by the operator; every field is optional and falls back, in order,
/// to the TOML file named by `config` and then to the defaults of [`Settings`].
///
/// Derives [`clap::Args`] so that a command-line tool can `#[command(flatten)]` it; each flag
/// also reads the environment variable named in its help.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long = "config", env = "CACHET_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7780].
    #[arg(long, env = "CACHET_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the database and attachment blobs; created if missing [default: ./cachet-data].
    #[arg(long, env = "CACHET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `postgres://user:password@host:port/database` stores state in
    /// PostgreSQL (several nodes may share it) [default: SQLite in the data directory].
    #[arg(
        long,
        env = "CACHET_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// How long a request waits for a PostgreSQL connection (and `/healthz` for its
    /// query) before it is answered 503 `database_unavailable` [default: 5].
    #[arg(long, env = "CACHET_DATABASE_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub database_timeout_seconds: Option<u64>,
    /// Identifier hashes one user may look up through `/api/v1/directory/discover` per
    /// discovery window, counted across every node sharing the database
    /// [default: 10000].
    #[arg(long, env = "CACHET_DISCOVER_MAX_HASHES", value_name = "N")]
    pub discover_max_hashes: Option<u64>,
    /// Length of the discovery window [default: 3600 = 1 hour].
    #[arg(long, env = "CACHET_DISCOVER_WINDOW_SECONDS", value_name = "SECONDS")]
    pub discover_window_seconds: Option<u64>,
    /// PEM certificate chain; with `tls_key`, serve TLS 1.3 only.
    #[arg(long, env = "CACHET_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    #[arg(long, env = "CACHET_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// How long envelopes acked by a web client stay readable through
    /// `/api/v1/messages/history` [default: 604800 = 7 days].
    #[arg(long, env = "CACHET_WEB_RETENTION_SECONDS", value_name = "SECONDS")]
    pub web_retention_seconds: Option<u64>,
    /// Largest request body of API calls [default: 4194304 = 4 MiB].
    #[arg(long, env = "CACHET_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest stored (sealed) attachment [default: 104857600 = 100 MiB].
    #[arg(long, env = "CACHET_MAX_ATTACHMENT_BYTES", value_name = "BYTES")]
    pub max_attachment_bytes: Option<u64>,
    /// Attachment storage allowed per user [default: 1073741824 = 1 GiB].
    #[arg(long, env = "CACHET_USER_QUOTA_BYTES", value_name = "BYTES")]
    pub user_quota_bytes: Option<u64>,
    /// Longest wait of a long-polling receive [default: 30].
    #[arg(long, env = "CACHET_LONG_POLL_MAX_SECONDS", value_name = "SECONDS")]
    pub long_poll_max_seconds: Option<u32>,
    /// Most envelopes returned by one receive [default: 500].
    #[arg(long, env = "CACHET_RECEIVE_MAX_ENVELOPES", value_name = "N")]
    pub receive_max_envelopes: Option<u32>,
    /// Lifetime of a one-time registration code [default: 600].
    #[arg(long, env = "CACHET_CODE_TTL_SECONDS", value_name = "SECONDS")]
    pub code_ttl_seconds: Option<u64>,
    /// Wrong codes allowed per registration challenge [default: 5].
    #[arg(long, env = "CACHET_CODE_MAX_ATTEMPTS", value_name = "N")]
    pub code_max_attempts: Option<u32>,
    /// Serve directory keys that have no block in the trust log yet (for users
    /// registered before the trust log, and protocol tests that write blocks by hand)
    /// [default: false: such a lookup is refused with `keys_not_in_log`].
    #[arg(long, env = "CACHET_ALLOW_KEYS_WITHOUT_BLOCK", value_name = "BOOL")]
    pub allow_keys_without_block: Option<bool>,
    /// How one-time codes are delivered [default: dev].
    #[arg(long, value_enum, env = "CACHET_NOTIFIER")]
    pub notifier: Option<NotifierKind>,
    /// SMTP relay for the smtp notifier, e.g. `smtps://user:password@mail.example.org:465`
    /// or `smtp://mail.example.org:587?tls=required`.
    #[arg(
        long,
        env = "CACHET_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Sender address of code e-mails, e.g. `cachet <no-reply@example.org>`.
    #[arg(long, env = "CACHET_SMTP_FROM", value_name = "MAILBOX")]
    pub smtp_from: Option<String>,
    /// URL the webhook notifier POSTs each code to (JSON `{to, code, purpose, text,
    /// expires_at}`), e.g. an SMS gateway: `https://sms.example.org/send`.
    #[arg(long, env = "CACHET_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Bearer token sent with each webhook call (`Authorization: Bearer ...`).
    #[arg(
        long,
        env = "CACHET_WEBHOOK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub webhook_token: Option<Secret>,

    // ---- Connections ----
    /// Most open connections; at the limit the longest-idle connection is closed to make
    /// room [default: the descriptor limit less 256, at most 16384].
    #[arg(long, env = "CACHET_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time allowed for a whole request head to arrive [default: 30].
    #[arg(long, env = "CACHET_HEADER_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub header_timeout_seconds: Option<u64>,
    /// Longest pause while a request body is received [default: 30].
    #[arg(long, env = "CACHET_BODY_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub body_timeout_seconds: Option<u64>,
    /// A connection without a request in flight and without traffic this long is closed
    /// [default: 120].
    #[arg(long, env = "CACHET_IDLE_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Largest request head (request line and header fields) [default: 32768].
    #[arg(long, env = "CACHET_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,

    // ---- Scale-out ----
    /// NATS server(s) carrying long-poll wake-ups between nodes, e.g.
    /// `nats://127.0.0.1:4222` (several separated by commas) [default: in-process only].
    #[arg(
        long,
        env = "CACHET_NATS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub nats_url: Option<String>,
    /// NATS subject of the wake-ups; nodes of one deployment share it
    /// [default: cachet.mailbox.wake].
    #[arg(long, env = "CACHET_NATS_SUBJECT", value_name = "SUBJECT")]
    pub nats_subject: Option<String>,
    /// Keep attachment chunks in an S3-compatible object store: `s3://bucket[/prefix]`
    /// [default: files in the data directory].
    #[arg(long, env = "CACHET_S3_URL", value_name = "URL")]
    pub s3_url: Option<String>,
    /// Endpoint of a non-AWS S3-compatible store, e.g. `http://127.0.0.1:9000` (path-style
    /// requests) [default: AWS, or AWS_ENDPOINT].
    #[arg(long, env = "CACHET_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Region of the bucket [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "CACHET_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Access key id [default: AWS_ACCESS_KEY_ID or the instance's credentials].
    #[arg(long, env = "CACHET_S3_ACCESS_KEY_ID", value_name = "ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret access key [default: AWS_SECRET_ACCESS_KEY or the instance's credentials].
    #[arg(
        long,
        env = "CACHET_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<Secret>,
}

/// Where attachment chunks go when they are kept in an S3-compatible object store.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Custom endpoint (non-AWS stores).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
}

impl S3Settings {
    /// Parses `s3://bucket[/prefix]`.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Config("s3_url must look like s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config("s3_url names no bucket".into()));
        }
        Ok(S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        })
    }
}

/// The effective settings after merging flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; `None` keeps the state in SQLite in the data directory.
    pub database_url: Option<String>,
    /// TLS certificate and key, when TLS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Wait for a database connection (and the health check's query).
    pub database_timeout: Duration,
    /// Identifier hashes one user may look up per discovery window.
    pub discover_max_hashes: u64,
    /// Length of the discovery window.
    pub discover_window: Duration,
    /// Retention of envelopes acked by web clients.
    pub web_retention: Duration,
    /// Body limit of API calls.
    pub max_body_bytes: usize,
    /// Largest stored attachment.
    pub max_attachment_bytes: u64,
    /// Attachment storage per user.
    pub user_quota_bytes: u64,
    /// Long-poll cap.
    pub long_poll_max: Duration,
    /// Page size cap of receive.
    pub receive_max_envelopes: u32,
    /// One-time code lifetime.
    pub code_ttl: Duration,
    /// Wrong codes allowed per challenge.
    pub code_max_attempts: u32,
    /// Whether the directory serves keys without a block in the trust log.
    pub allow_keys_without_block: bool,
    /// Code delivery.
    pub notifier: NotifierKind,
    /// SMTP relay URL (smtp notifier).
    pub smtp_url: Option<String>,
    /// SMTP sender (smtp notifier).
    pub smtp_from: Option<String>,
    /// Webhook URL (webhook notifier).
    pub webhook_url: Option<String>,
    /// Webhook bearer token (webhook notifier).
    pub webhook_token: Option<Secret>,
    /// Connection limit and timeouts of the accept loop.
    pub serve: cachet_http::ServeOptions,
    /// Period of the background purge of expired rows.
    pub janitor_interval: Duration,
    /// NATS URL and subject of cross-node wake-ups; `None`: in-process only.
    pub nats: Option<(String, String)>,
    /// Object store of attachment chunks; `None`: files in the data directory.
    pub s3: Option<S3Settings>,
}

impl Settings {
    /// Defaults for a server on `data_dir`.
    pub fn defaults(data_dir: PathBuf) -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 7780)),
            data_dir,
            database_url: None,
            tls: None,
            database_timeout: Duration::from_secs(5),
            discover_max_hashes: 10_000,
            discover_window: Duration::from_secs(3600),
            web_retention: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 4 * 1024 * 1024,
            max_attachment_bytes: 100 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            long_poll_max: Duration::from_secs(30),
            receive_max_envelopes: 500,
            code_ttl: Duration::from_secs(600),
            code_max_attempts: 5,
            allow_keys_without_block: false,
            notifier: NotifierKind::Dev,
            smtp_url: None,
            smtp_from: None,
            webhook_url: None,
            webhook_token: None,
            serve: cachet_http::ServeOptions::default(),
            janitor_interval: Duration::from_secs(60),
            nats: None,
            s3: None,
        }
    }

    /// The notifier these settings name.
    pub fn notifier_settings(&self) -> cachet_http::notify::NotifierSettings {
        cachet_http::notify::NotifierSettings {
            kind: self.notifier,
            dev_codes_file: self.data_dir.join(cachet_http::notify::DEV_CODES_FILE),
            smtp_url: self.smtp_url.clone(),
            smtp_from: self.smtp_from.clone(),
            webhook_url: self.webhook_url.clone(),
            webhook_token: self.webhook_token.clone(),
        }
    }

    /// Body limit of a chunk upload: one stored chunk.
    pub fn chunk_body_limit(&self) -> usize {
        CHUNK_SIZE as usize
    }
}

/// Wrapper so that [`ServerConfig::from_env`] can reuse clap's environment handling.
#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    config: ServerConfig,
}

impl ServerConfig {
    /// A configuration that only names the data directory (everything else from defaults).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: Some(data_dir.into()),
            ..Default::default()
        }
    }

    /// Reads the `CACHET_*` environment variables (no command line).
    pub fn from_env() -> Result<Self> {
        EnvOnly::try_parse_from(["cachet-server"])
            .map(|e| e.config)
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Parses a TOML document with the same keys as the flags (snake_case).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(format!("config file: {e}")))
    }

    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// Fills every unset field from `lower`.
    pub fn or(self, lower: ServerConfig) -> ServerConfig {
        ServerConfig {
            config_file: self.config_file.or(lower.config_file),
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            database_timeout_seconds: self
                .database_timeout_seconds
                .or(lower.database_timeout_seconds),
            discover_max_hashes: self.discover_max_hashes.or(lower.discover_max_hashes),
            discover_window_seconds: self
                .discover_window_seconds
                .or(lower.discover_window_seconds),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            web_retention_seconds: self.web_retention_seconds.or(lower.web_retention_seconds),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_attachment_bytes: self.max_attachment_bytes.or(lower.max_attachment_bytes),
            user_quota_bytes: self.user_quota_bytes.or(lower.user_quota_bytes),
            long_poll_max_seconds: self.long_poll_max_seconds.or(lower.long_poll_max_seconds),
            receive_max_envelopes: self.receive_max_envelopes.or(lower.receive_max_envelopes),
            code_ttl_seconds: self.code_ttl_seconds.or(lower.code_ttl_seconds),
            code_max_attempts: self.code_max_attempts.or(lower.code_max_attempts),
            allow_keys_without_block: self
                .allow_keys_without_block
                .or(lower.allow_keys_without_block),
            notifier: self.notifier.or(lower.notifier),
            smtp_url: self.smtp_url.or(lower.smtp_url),
            smtp_from: self.smtp_from.or(lower.smtp_from),
            webhook_url: self.webhook_url.or(lower.webhook_url),
            webhook_token: self.webhook_token.or(lower.webhook_token),
            max_connections: self.max_connections.or(lower.max_connections),
            header_timeout_seconds: self.header_timeout_seconds.or(lower.header_timeout_seconds),
            body_timeout_seconds: self.body_timeout_seconds.or(lower.body_timeout_seconds),
            idle_timeout_seconds: self.idle_timeout_seconds.or(lower.idle_timeout_seconds),
            max_header_bytes: self.max_header_bytes.or(lower.max_header_bytes),
            nats_url: self.nats_url.or(lower.nats_url),
            nats_subject: self.nats_subject.or(lower.nats_subject),
            s3_url: self.s3_url.or(lower.s3_url),
            s3_endpoint: self.s3_endpoint.or(lower.s3_endpoint),
            s3_region: self.s3_region.or(lower.s3_region),
            s3_access_key_id: self.s3_access_key_id.or(lower.s3_access_key_id),
            s3_secret_access_key: self.s3_secret_access_key.or(lower.s3_secret_access_key),
        }
    }

    /// Merges in the TOML file (if any), applies defaults and checks the result.
    pub fn resolve(&self) -> Result<Settings> {
        let merged = match &self.config_file {
            Some(path) => self.clone().or(Self::from_toml_file(path)?),
            None => self.clone(),
        };
        let data_dir = merged
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("cachet-data"));
        let mut s = Settings::defaults(data_dir);
        if let Some(v) = merged.listen {
            s.listen = v;
        }
        if let Some(url) = merged.database_url.filter(|u| !u.trim().is_empty()) {
            if !crate::store::postgres::is_postgres_url(&url) {
                return Err(Error::Config(
                    "database_url must start with postgres:// (SQLite needs none)".into(),
                ));
            }
            s.database_url = Some(url);
        }
        if let Some(v) = merged.database_timeout_seconds {
            if v == 0 {
                return Err(Error::Config(
                    "database_timeout_seconds must be positive".into(),
                ));
            }
            s.database_timeout = Duration::from_secs(v);
        }
        if let Some(v) = merged.discover_max_hashes {
            if v == 0 {
                return Err(Error::Config("discover_max_hashes must be positive".into()));
            }
            s.discover_max_hashes = v;
        }
        if let Some(v) = merged.discover_window_seconds {
            if v == 0 {
                return Err(Error::Config(
                    "discover_window_seconds must be positive".into(),
                ));
            }
            s.discover_window = Duration::from_secs(v);
        }
        s.tls = match (merged.tls_cert, merged.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "tls_cert and tls_key must be given together".into(),
                ))
            }
        };
        if let Some(v) = merged.web_retention_seconds {
            s.web_retention = Duration::from_secs(v);
        }
        if let Some(v) = merged.max_body_bytes {
            if v < 1024 {
                return Err(Error::Config("max_body_bytes must be at least 1024".into()));
            }
            s.max_body_bytes = v;
        }
        if let Some(v) = merged.max_attachment_bytes {
            s.max_attachment_bytes = v;
        }
        if let Some(v) = merged.user_quota_bytes {
            s.user_quota_bytes = v;
        }
        if let Some(v) = merged.long_poll_max_seconds {
            s.long_poll_max = Duration::from_secs(u64::from(v));
        }
        if let Some(v) = merged.receive_max_envelopes {
            if v == 0 {
                return Err(Error::Config(
                    "receive_max_envelopes must be positive".into(),
                ));
            }
            s.receive_max_envelopes = v;
        }
        if let Some(v) = merged.code_ttl_seconds {
            s.code_ttl = Duration::from_secs(v.max(1));
        }
        if let Some(v) = merged.code_max_attempts {
            s.code_max_attempts = v.max(1);
        }
        if let Some(v) = merged.allow_keys_without_block {
            s.allow_keys_without_block = v;
        }
        if let Some(v) = merged.notifier {
            s.notifier = v;
        }
        s.smtp_url = merged.smtp_url;
        s.smtp_from = merged.smtp_from;
        s.webhook_url = merged.webhook_url;
        s.webhook_token = merged.webhook_token;
        s.notifier_settings().check()?;
        if let Some(v) = merged.max_connections {
            s.serve.max_connections = v;
        }
        if let Some(v) = merged.header_timeout_seconds {
            s.serve.header_timeout = Duration::from_secs(v);
        }
        if let Some(v) = merged.body_timeout_seconds {
            s.serve.body_timeout = Duration::from_secs(v);
        }
        if let Some(v) = merged.idle_timeout_seconds {
            s.serve.idle_timeout = Duration::from_secs(v);
        }
        if let Some(v) = merged.max_header_bytes {
            s.serve.max_header_bytes = v;
        }
        s.serve.check()?;
        if let Some(url) = merged.nats_url.filter(|u| !u.trim().is_empty()) {
            let subject = merged
                .nats_subject
                .unwrap_or_else(|| crate::wake::DEFAULT_NATS_SUBJECT.to_owned());
            s.nats = Some((url, subject));
        }
        if let Some(url) = merged.s3_url.filter(|u| !u.trim().is_empty()) {
            let mut s3 = S3Settings::from_url(url.trim())?;
            s3.endpoint = merged.s3_endpoint;
            s3.region = merged.s3_region;
            s3.access_key_id = merged.s3_access_key_id;
            s3.secret_access_key = merged.s3_secret_access_key;
            s.s3 = Some(s3);
        }
        Ok(s)
    }
}
