//! The settings both servers share, declared once.
//!
//! A server's settings come from flags, environment variables and a TOML file, in that
//! order of precedence, over built-in defaults. Both servers have the same dozen and a half
//! of them (listen address, data directory, database, TLS, code delivery, connection
//! limits), under their own environment prefix (`CACHET_` or `CACHET_KEYSERVER_`).
//! [`server_config!`](crate::server_config) writes those fields and the code that layers
//! them once; each server adds its own fields and its own checks.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Parses a settings TOML document (the same keys as the flags, snake_case).
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Config(format!("config file: {e}")))
}

/// Reads and parses a settings TOML file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    parse_toml(&text)
}

/// The TLS certificate and key, when both are given; one without the other is refused.
pub fn tls_pair(
    cert: Option<&PathBuf>,
    key: Option<&PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
        (None, None) => Ok(None),
        _ => Err(Error::Config(
            "tls_cert and tls_key must be given together".into(),
        )),
    }
}

/// Declares a server's settings struct: the fields every cachet server has, then the
/// server's own, each an `Option` that falls back to the next layer. Generates
/// `from_env`, `from_toml`, `from_toml_file`, `or` (fill unset fields from a lower layer),
/// `merged` (the named TOML file underneath), `tls`, `serve_options`,
/// `notifier_settings_in` and `data_dir_or_default`.
///
/// The crate using it needs `clap` and `serde` (the derives name them), and an error type
/// that converts from [`crate::Error`].
#[macro_export]
macro_rules! server_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            program: $program:literal,
            env_prefix: $prefix:literal,
            default_listen: $listen:literal,
            default_data_dir: $data_dir:literal,
            error: $error:ty,
            $(
                $(#[$fmeta:meta])*
                pub $field:ident: Option<$ty:ty>,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// TOML file with any of the settings below (same names, snake_case).
            #[arg(long = "config", env = concat!($prefix, "CONFIG"), value_name = "FILE")]
            #[serde(skip)]
            pub config_file: Option<std::path::PathBuf>,
            #[doc = concat!("Address to listen on [default: ", $listen, "].")]
            #[arg(long, env = concat!($prefix, "LISTEN"), value_name = "ADDR", help = concat!("Address to listen on [default: ", $listen, "]"))]
            pub listen: Option<std::net::SocketAddr>,
            #[doc = concat!("Directory of the server's database and files; created if missing [default: ./", $data_dir, "].")]
            #[arg(long, env = concat!($prefix, "DATA_DIR"), value_name = "DIR", help = concat!("Directory of the server's database and files; created if missing [default: ./", $data_dir, "]"))]
            pub data_dir: Option<std::path::PathBuf>,
            /// PostgreSQL URL, `postgres://user:password@host:port/database`, to keep the
            /// state in PostgreSQL (several nodes may share it) instead of SQLite in the data
            /// directory; the development code file stays in the data directory.
            #[arg(long, env = concat!($prefix, "DATABASE_URL"), value_name = "URL", hide_env_values = true)]
            pub database_url: Option<String>,
            /// PEM certificate chain; with `tls_key`, serve TLS 1.3 only.
            #[arg(long, env = concat!($prefix, "TLS_CERT"), value_name = "FILE")]
            pub tls_cert: Option<std::path::PathBuf>,
            /// PEM private key matching `tls_cert`.
            #[arg(long, env = concat!($prefix, "TLS_KEY"), value_name = "FILE")]
            pub tls_key: Option<std::path::PathBuf>,
            /// How one-time codes are delivered [default: dev].
            #[arg(long, value_enum, env = concat!($prefix, "NOTIFIER"))]
            pub notifier: Option<$crate::notify::NotifierKind>,
            /// SMTP relay for the smtp notifier, e.g. `smtps://user:password@mail.example.org:465`
            /// or `smtp://mail.example.org:587?tls=required`.
            #[arg(long, env = concat!($prefix, "SMTP_URL"), value_name = "URL", hide_env_values = true)]
            pub smtp_url: Option<String>,
            /// Sender address of code e-mails, e.g. `cachet <no-reply@example.org>`.
            #[arg(long, env = concat!($prefix, "SMTP_FROM"), value_name = "MAILBOX")]
            pub smtp_from: Option<String>,
            /// URL the webhook notifier POSTs each code to (JSON `{to, code, purpose, text,
            /// expires_at}`), e.g. an SMS gateway: `https://sms.example.org/send`.
            #[arg(long, env = concat!($prefix, "WEBHOOK_URL"), value_name = "URL")]
            pub webhook_url: Option<String>,
            /// Bearer token sent with each webhook call (`Authorization: Bearer ...`).
            #[arg(long, env = concat!($prefix, "WEBHOOK_TOKEN"), value_name = "TOKEN", hide_env_values = true)]
            pub webhook_token: Option<$crate::Secret>,
            /// Most open connections; at the limit the longest-idle connection is closed to
            /// make room [default: the descriptor limit less 256, at most 16384].
            #[arg(long, env = concat!($prefix, "MAX_CONNECTIONS"), value_name = "N")]
            pub max_connections: Option<usize>,
            /// Time allowed for a whole request head to arrive [default: 30].
            #[arg(long, env = concat!($prefix, "HEADER_TIMEOUT_SECONDS"), value_name = "SECONDS")]
            pub header_timeout_seconds: Option<u64>,
            /// Longest pause while a request body is received [default: 30].
            #[arg(long, env = concat!($prefix, "BODY_TIMEOUT_SECONDS"), value_name = "SECONDS")]
            pub body_timeout_seconds: Option<u64>,
            /// A connection without a request in flight and without traffic this long is
            /// closed [default: 120].
            #[arg(long, env = concat!($prefix, "IDLE_TIMEOUT_SECONDS"), value_name = "SECONDS")]
            pub idle_timeout_seconds: Option<u64>,
            /// Largest request head (request line and header fields) [default: 32768].
            #[arg(long, env = concat!($prefix, "MAX_HEADER_BYTES"), value_name = "BYTES")]
            pub max_header_bytes: Option<usize>,
            $(
                $(#[$fmeta])*
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// Reads the environment variables (no command line).
            pub fn from_env() -> ::std::result::Result<Self, $error> {
                #[derive(clap::Parser)]
                struct EnvOnly {
                    #[command(flatten)]
                    config: $name,
                }
                <EnvOnly as clap::Parser>::try_parse_from([$program])
                    .map(|e| e.config)
                    .map_err(|e| $crate::Error::Config(e.to_string()).into())
            }

            /// Parses a TOML document with the same keys as the flags (snake_case).
            pub fn from_toml(text: &str) -> ::std::result::Result<Self, $error> {
                Ok($crate::config::parse_toml(text)?)
            }

            /// Reads a TOML file.
            pub fn from_toml_file(path: &::std::path::Path) -> ::std::result::Result<Self, $error> {
                Ok($crate::config::read_toml(path)?)
            }

            /// Fills every unset field from `lower`.
            pub fn or(self, lower: Self) -> Self {
                Self {
                    config_file: self.config_file.or(lower.config_file),
                    listen: self.listen.or(lower.listen),
                    data_dir: self.data_dir.or(lower.data_dir),
                    database_url: self.database_url.or(lower.database_url),
                    tls_cert: self.tls_cert.or(lower.tls_cert),
                    tls_key: self.tls_key.or(lower.tls_key),
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
                    $( $field: self.$field.or(lower.$field), )*
                }
            }

            /// These settings with the TOML file they name (if any) merged in underneath.
            pub fn merged(&self) -> ::std::result::Result<Self, $error> {
                match &self.config_file {
                    Some(path) => Ok(self.clone().or(Self::from_toml_file(path)?)),
                    None => Ok(self.clone()),
                }
            }

            /// The TLS certificate and key, when TLS is on.
            pub fn tls(
                &self,
            ) -> ::std::result::Result<Option<(::std::path::PathBuf, ::std::path::PathBuf)>, $error> {
                Ok($crate::config::tls_pair(self.tls_cert.as_ref(), self.tls_key.as_ref())?)
            }

            /// The data directory, or the default one.
            pub fn data_dir_or_default(&self) -> ::std::path::PathBuf {
                self.data_dir.clone().unwrap_or_else(|| ::std::path::PathBuf::from($data_dir))
            }

            /// Connection limit and timeouts of the accept loop: the defaults with every
            /// given setting applied, checked.
            pub fn serve_options(&self) -> ::std::result::Result<$crate::ServeOptions, $error> {
                let secs = ::std::time::Duration::from_secs;
                let mut o = $crate::ServeOptions::default();
                o.max_connections = self.max_connections.unwrap_or(o.max_connections);
                o.header_timeout = self.header_timeout_seconds.map_or(o.header_timeout, secs);
                o.body_timeout = self.body_timeout_seconds.map_or(o.body_timeout, secs);
                o.idle_timeout = self.idle_timeout_seconds.map_or(o.idle_timeout, secs);
                o.max_header_bytes = self.max_header_bytes.unwrap_or(o.max_header_bytes);
                o.check()?;
                Ok(o)
            }

            /// The code delivery these settings name, for a server whose (development)
            /// code file lives in `data_dir` (not yet checked: see `NotifierSettings::check`).
            pub fn notifier_settings_in(
                &self,
                data_dir: &::std::path::Path,
            ) -> $crate::notify::NotifierSettings {
                $crate::notify::NotifierSettings {
                    kind: self.notifier.unwrap_or_default(),
                    dev_codes_file: data_dir.join($crate::notify::DEV_CODES_FILE),
                    smtp_url: self.smtp_url.clone(),
                    smtp_from: self.smtp_from.clone(),
                    webhook_url: self.webhook_url.clone(),
                    webhook_token: self.webhook_token.clone(),
                }
            }
        }
    };
}
