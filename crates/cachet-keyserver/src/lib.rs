//! The cachet key server: the second, independent party of password recovery
//! (`docs/recovery.md`).
//!
//! It holds one additive share of each user's OPRF key, checks the user's identity with
//! its own one-time code (independent of the data server's), limits OPRF evaluations per
//! account, and keeps a copy of the sealed key ring. The data server runs the same
//! [`service`] over its own database, so every recovery needs both servers.
//!
//! * [`spawn`] starts a key server in the background (tests, demo); [`serve`] runs one
//!   until a shutdown future resolves.
//! * [`refresh_shares`] re-randomises every account's shares together with the data
//!   server, without the users.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cachet_crypto::SignKeyPair;
use cachet_recovery::oprf::RefreshDelta;
use cachet_recovery::wire::{self, RateLimit};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod error;
pub mod service;
pub mod sqlite;

pub use error::{Error, Result};
pub use service::{RecoveryBackend, RecoveryRow, Role, Service};
pub use sqlite::SqliteBackend;

/// Route of the data server's operator endpoint that applies its half of a refresh.
pub const DATA_SERVER_REFRESH_ROUTE: &str = "/api/v1/operator/recovery/refresh";

/// Settings of a key server; flags and `CACHET_KEYSERVER_*` environment variables.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyServerConfig {
    /// Address to listen on [default: 127.0.0.1:7781].
    #[arg(long, env = "CACHET_KEYSERVER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the key server's database; created if missing [default: ./cachet-keyserver-data].
    #[arg(long, env = "CACHET_KEYSERVER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Failed recoveries allowed back to back before delays start [default: 3].
    #[arg(long, env = "CACHET_KEYSERVER_FREE_ATTEMPTS", value_name = "N")]
    pub free_attempts: Option<u32>,
    /// First delay after the free attempts, doubling each time [default: 60].
    #[arg(
        long,
        env = "CACHET_KEYSERVER_BASE_DELAY_SECONDS",
        value_name = "SECONDS"
    )]
    pub base_delay_seconds: Option<u64>,
    /// Failures after which the account is locked out [default: 10].
    #[arg(long, env = "CACHET_KEYSERVER_MAX_FAILURES", value_name = "N")]
    pub max_failures: Option<u32>,
    /// Length of the lock-out [default: 86400].
    #[arg(long, env = "CACHET_KEYSERVER_LOCKOUT_SECONDS", value_name = "SECONDS")]
    pub lockout_seconds: Option<u64>,
}

impl KeyServerConfig {
    /// A configuration naming only the data directory, listening on an ephemeral
    /// loopback port.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: Some(data_dir.into()),
            ..Default::default()
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("cachet-keyserver-data"))
    }

    /// The rate limit these settings describe.
    pub fn limits(&self) -> Result<RateLimit> {
        let d = RateLimit::DEFAULT;
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let limits = RateLimit {
            free_attempts: self.free_attempts.unwrap_or(d.free_attempts),
            base_delay_ms: self.base_delay_seconds.map_or(d.base_delay_ms, ms),
            max_failures: self.max_failures.unwrap_or(d.max_failures),
            lockout_ms: self.lockout_seconds.map_or(d.lockout_ms, ms),
        };
        if limits.max_failures == 0 || limits.free_attempts > limits.max_failures {
            return Err(Error::Config(
                "need 0 < free_attempts <= max_failures".into(),
            ));
        }
        Ok(limits)
    }
}

/// A key server running in the background.
#[derive(Debug)]
pub struct RunningKeyServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningKeyServer {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The development notifier's code file.
    pub fn dev_codes_path(&self) -> PathBuf {
        self.data_dir.join(sqlite::DEV_CODES_FILE)
    }

    /// Stops accepting, finishes in-flight requests, and waits.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(())
    }
}

/// The key server's routes over its SQLite backend.
pub fn router(backend: Arc<SqliteBackend>, limits: RateLimit) -> axum::Router {
    let service = Arc::new(Service {
        backend,
        role: Role::KeyServer,
        limits,
        code_ttl_ms: 600_000,
        code_max_attempts: 5,
        clock: service::now_ms,
    });
    service::router(service).route("/healthz", axum::routing::get(|| async { "ok" }))
}

/// Resolves once shutdown has begun (or its sender is gone).
async fn stopping(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// Starts a key server in the background.
pub async fn spawn(config: KeyServerConfig) -> Result<RunningKeyServer> {
    let data_dir = config.data_dir();
    let limits = config.limits()?;
    let backend = Arc::new(SqliteBackend::open_in(&data_dir).await?);
    let listen = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7781)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(false);
    let app = router(backend.clone(), limits);
    let janitor_backend = backend.clone();
    let mut janitor_rx = rx.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = janitor_backend.purge_expired(service::now_ms()).await {
                tracing::warn!(error = %e, "purge failed");
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                () = stopping(&mut janitor_rx) => return,
            }
        }
    });
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping(&mut rx).await })
            .await;
        backend.close().await;
        result
    });
    tracing::info!(%addr, data_dir = %data_dir.display(), "cachet key server listening");
    Ok(RunningKeyServer {
        addr,
        data_dir,
        shutdown: tx,
        task,
    })
}

/// Runs a key server until `shutdown` resolves.
pub async fn serve(config: KeyServerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let running = spawn(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await
}

/// Refreshes the key shares of every enrolled account with the data server, without the
/// users: for each account a random `δ` is recorded here first (so an interruption
/// resumes with the same `δ`), the data server adds it to its share (an operator
/// request signed with `operator_key` as `op:<operator>`), then this server subtracts it.
/// Both sides are idempotent. Returns how many accounts were refreshed.
pub async fn refresh_shares(
    data_dir: &Path,
    data_server_url: &str,
    operator: &str,
    operator_key: &SignKeyPair,
) -> Result<usize> {
    let backend = Arc::new(SqliteBackend::open_in(data_dir).await?);
    let service = Service {
        backend: backend.clone(),
        role: Role::KeyServer,
        limits: RateLimit::DEFAULT,
        code_ttl_ms: 0,
        code_max_attempts: 0,
        clock: service::now_ms,
    };
    let http = reqwest::Client::new();
    let url = format!(
        "{}{DATA_SERVER_REFRESH_ROUTE}",
        data_server_url.trim_end_matches('/')
    );
    let mut done = 0;
    for user_id in backend.enrolled_users().await? {
        let Some(row) = backend.account(&user_id).await? else {
            continue;
        };
        let delta = if row.pending_delta.is_empty() {
            let delta = RefreshDelta::generate();
            let mut next = row.clone();
            next.pending_delta = delta.expose_secret().to_vec();
            next.version += 1;
            if !backend.replace_account(&next, row.version).await? {
                return Err(Error::Concurrent);
            }
            delta
        } else {
            RefreshDelta::from_bytes(&row.pending_delta)
                .map_err(|_| Error::Internal("stored delta is malformed".into()))?
        };
        let request = wire::RefreshRequest {
            user_id: user_id.clone(),
            delta: hex::encode(delta.expose_secret()),
            old_data_server_share: hex::encode(&row.data_server_share),
            old_key_server_share: hex::encode(&row.key_server_share),
        };
        let body = serde_json::to_vec(&request).map_err(|e| Error::Internal(e.to_string()))?;
        let headers = cachet_proto::auth::sign_request(
            &cachet_proto::auth::Caller {
                user_id: format!("op:{operator}"),
                build_number: 1,
                client_type: cachet_proto::v1::ClientType::Unspecified,
            },
            operator_key,
            &cachet_proto::auth::RequestTarget {
                method: "POST",
                path: DATA_SERVER_REFRESH_ROUTE,
                body: &body,
            },
            service::now_ms(),
        );
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .header(cachet_proto::auth::UID_HEADER, headers.uid)
            .header(cachet_proto::auth::SIG_HEADER, headers.sig)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Peer(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Error::Peer(format!("{status}: {text}")));
        }
        service.apply_refresh(&request).await?;
        done += 1;
    }
    backend.close().await;
    Ok(done)
}
