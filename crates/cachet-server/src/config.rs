//! Server configuration: command-line flags, `CACHET_*` environment variables and a TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Size of every stored attachment chunk but the last: 2 MiB of plaintext plus the
/// 16-byte secretbox tag (`docs/protocol.md`, section 5).
pub const CHUNK_SIZE: u32 = cachet_crypto::attachment::SEALED_CHUNK_SIZE as u32;

pub use cachet_http::notify::NotifierKind;
pub use cachet_http::Secret;

cachet_http::server_config! {
    /// Settings as given by the operator; every field is optional and falls back, in order,
    /// to the TOML file named by `config` and then to the defaults of [`Settings`].
    ///
    /// Derives [`clap::Args`] so that a command-line tool can `#[command(flatten)]` it; each
    /// flag also reads the environment variable named in its help. The fields both servers
    /// have are declared by [`cachet_http::server_config!`].
    pub struct ServerConfig {
        program: "cachet-server",
        env_prefix: "CACHET_",
        default_listen: "127.0.0.1:7780",
        default_data_dir: "cachet-data",
        error: Error,
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

        // ---- Scale-out ----
        /// NATS server(s) carrying long-poll wake-ups between nodes, e.g.
        /// `nats://127.0.0.1:4222` (several separated by commas) [default: in-process only].
        #[arg(long, env = "CACHET_NATS_URL", value_name = "URL", hide_env_values = true)]
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
        #[arg(long, env = "CACHET_S3_SECRET_ACCESS_KEY", value_name = "SECRET", hide_env_values = true)]
        pub s3_secret_access_key: Option<Secret>,
    }
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
    pub notifier: cachet_http::notify::NotifierSettings,
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
            notifier: cachet_http::notify::NotifierSettings {
                dev_codes_file: data_dir.join(cachet_http::notify::DEV_CODES_FILE),
                ..Default::default()
            },
            serve: cachet_http::ServeOptions::default(),
            janitor_interval: Duration::from_secs(60),
            nats: None,
            s3: None,
            data_dir,
        }
    }

    /// Body limit of a chunk upload: one stored chunk.
    pub fn chunk_body_limit(&self) -> usize {
        CHUNK_SIZE as usize
    }
}

impl ServerConfig {
    /// A configuration that only names the data directory (everything else from defaults).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: Some(data_dir.into()),
            ..Default::default()
        }
    }

    /// Merges in the TOML file (if any), applies defaults and checks the result.
    pub fn resolve(&self) -> Result<Settings> {
        let merged = self.merged()?;
        let mut s = Settings::defaults(merged.data_dir_or_default());
        let secs = Duration::from_secs;
        s.tls = merged.tls()?;
        s.notifier = merged.notifier_settings_in(&s.data_dir);
        s.notifier.check()?;
        s.serve = merged.serve_options()?;
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
        if let Some(v) = checked(
            merged.database_timeout_seconds,
            |v| v > 0,
            "database_timeout_seconds must be positive",
        )? {
            s.database_timeout = secs(v);
        }
        if let Some(v) = checked(
            merged.discover_max_hashes,
            |v| v > 0,
            "discover_max_hashes must be positive",
        )? {
            s.discover_max_hashes = v;
        }
        if let Some(v) = checked(
            merged.discover_window_seconds,
            |v| v > 0,
            "discover_window_seconds must be positive",
        )? {
            s.discover_window = secs(v);
        }
        if let Some(v) = checked(
            merged.max_body_bytes,
            |v| v >= 1024,
            "max_body_bytes must be at least 1024",
        )? {
            s.max_body_bytes = v;
        }
        if let Some(v) = checked(
            merged.receive_max_envelopes,
            |v| v > 0,
            "receive_max_envelopes must be positive",
        )? {
            s.receive_max_envelopes = v;
        }
        s.web_retention = merged.web_retention_seconds.map_or(s.web_retention, secs);
        s.max_attachment_bytes = merged
            .max_attachment_bytes
            .unwrap_or(s.max_attachment_bytes);
        s.user_quota_bytes = merged.user_quota_bytes.unwrap_or(s.user_quota_bytes);
        s.long_poll_max = merged
            .long_poll_max_seconds
            .map_or(s.long_poll_max, |v| secs(u64::from(v)));
        s.code_ttl = merged
            .code_ttl_seconds
            .map_or(s.code_ttl, |v| secs(v.max(1)));
        s.code_max_attempts = merged
            .code_max_attempts
            .map_or(s.code_max_attempts, |v| v.max(1));
        s.allow_keys_without_block = merged
            .allow_keys_without_block
            .unwrap_or(s.allow_keys_without_block);
        if let Some(url) = merged.nats_url.filter(|u| !u.trim().is_empty()) {
            let subject = merged
                .nats_subject
                .unwrap_or_else(|| crate::wake::DEFAULT_NATS_SUBJECT.to_owned());
            s.nats = Some((url, subject));
        }
        if let Some(url) = merged.s3_url.filter(|u| !u.trim().is_empty()) {
            s.s3 = Some(S3Settings {
                endpoint: merged.s3_endpoint,
                region: merged.s3_region,
                access_key_id: merged.s3_access_key_id,
                secret_access_key: merged.s3_secret_access_key,
                ..S3Settings::from_url(url.trim())?
            });
        }
        Ok(s)
    }
}

/// `value` if it is unset or `acceptable`, else the configuration error `refusal`.
fn checked<T: Copy>(
    value: Option<T>,
    acceptable: impl Fn(T) -> bool,
    refusal: &str,
) -> Result<Option<T>> {
    match value {
        Some(v) if !acceptable(v) => Err(Error::Config(refusal.into())),
        other => Ok(other),
    }
}
