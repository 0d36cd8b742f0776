//! The HTTP plumbing both cachet servers share (the data server, `cachet-server`, and the
//! key server, `cachet-keyserver`):
//!
//! * [`serve`]: the accept loop. Plain HTTP or TLS 1.3, HTTP/1.1 and HTTP/2, a limit on
//!   open connections (the longest-idle connection makes room for a new one), header,
//!   body and idle timeouts, JSON answers to request heads that cannot be read, and a
//!   graceful shutdown. [`ServeOptions`] holds the limits.
//! * [`notify`]: delivery of one-time codes (development file, SMTP, HTTP webhook).
//! * [`init_logging`] and [`raise_fd_limit`] for a server process.
//! * [`config`] and [`server_config!`]: the settings both servers share, declared once.
//! * [`debug_some_fields!`]: `Debug` that shows some fields and leaves the rest out.
//! * [`json_error`]: the error body of `docs/protocol.md`,
//!   `{"reason": "<snake_case>", "message": "<text>"}`.
#![forbid(unsafe_code)]

pub mod config;
mod debug;
pub mod error;
pub mod health;
pub mod notify;
pub mod serve;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use serve::{run, stopping, tls_acceptor, ServeOptions};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A configuration secret: wiped from memory when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(zeroize::Zeroizing::new(s)))
    }
}

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(zeroize::Zeroizing::new(s.to_owned())))
    }
}

/// The JSON error body both servers answer with.
pub fn json_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "reason": reason, "message": message })),
    )
        .into_response()
}

/// Installs a `tracing` subscriber for a server process: filter from `RUST_LOG` (default
/// `info`), human-readable or JSON lines. Does nothing if one is installed already.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Raises the soft limit of open file descriptors to the hard limit (where the system
/// allows it) and returns the soft limit in force afterwards. Every connection holds a
/// descriptor; the default soft limit (often 1,024) is easily reached.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}
