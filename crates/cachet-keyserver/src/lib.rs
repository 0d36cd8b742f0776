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
//! * [`vault`] puts the key server's own database under its own master key, opened by
//!   its own key holders' Shamir shares.
//! * [`refresh_shares`] re-randomises every account's shares together with the data
//!   server, without the users.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;

use std::time::Duration;

use cachet_http::notify::NotifierSettings;
use cachet_recovery::wire::RateLimit;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod error;
pub mod refresh;
pub mod service;
pub mod store;
pub mod vault;

pub use error::{Error, Result};
pub use refresh::refresh_shares;
pub use service::{RecoveryBackend, RecoveryRow, Role, Service};
pub use store::KeyStore;

/// Route of the data server's operator endpoint that applies its half of a refresh.
pub const DATA_SERVER_REFRESH_ROUTE: &str = "/api/v1/operator/recovery/refresh";

cachet_http::server_config! {
    /// Settings of a key server: flags, `CACHET_KEYSERVER_*` environment variables and a
    /// TOML file (same names, snake_case), in that order of precedence, over the defaults.
    /// The fields both servers have are declared by [`cachet_http::server_config!`].
    pub struct KeyServerConfig {
        program: "cachet-keyserver",
        env_prefix: "CACHET_KEYSERVER_",
        default_listen: "127.0.0.1:7781",
        default_data_dir: "cachet-keyserver-data",
        error: Error,
        /// Log as JSON lines [default: false].
        #[arg(long, env = "CACHET_KEYSERVER_LOG_JSON", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        pub log_json: Option<bool>,
        /// Failed recoveries allowed back to back before delays start [default: 3].
        #[arg(long, env = "CACHET_KEYSERVER_FREE_ATTEMPTS", value_name = "N")]
        pub free_attempts: Option<u32>,
        /// First delay after the free attempts, doubling each time [default: 60].
        #[arg(long, env = "CACHET_KEYSERVER_BASE_DELAY_SECONDS", value_name = "SECONDS")]
        pub base_delay_seconds: Option<u64>,
        /// Failures after which the account is locked out [default: 10].
        #[arg(long, env = "CACHET_KEYSERVER_MAX_FAILURES", value_name = "N")]
        pub max_failures: Option<u32>,
        /// Length of the lock-out [default: 86400].
        #[arg(long, env = "CACHET_KEYSERVER_LOCKOUT_SECONDS", value_name = "SECONDS")]
        pub lockout_seconds: Option<u64>,
    }
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

    /// Whether to log JSON lines (after [`KeyServerConfig::merged`]).
    pub fn log_json(&self) -> bool {
        self.log_json.unwrap_or(false)
    }

    /// The notifier these settings name.
    pub fn notifier_settings(&self) -> NotifierSettings {
        self.notifier_settings_in(&self.data_dir_or_default())
    }

    /// Opens the database these settings name: PostgreSQL at `database_url`, else SQLite
    /// in the data directory.
    pub async fn open_store(&self) -> Result<KeyStore> {
        KeyStore::open(self.database_url.as_deref(), &self.data_dir_or_default()).await
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
    tls: bool,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningKeyServer {
    /// `http://addr`, or `https://addr` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The development notifier's code file.
    pub fn dev_codes_path(&self) -> PathBuf {
        self.data_dir.join(store::DEV_CODES_FILE)
    }

    /// Stops accepting, finishes in-flight requests, and waits.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        tracing::info!("key server stopped");
        Ok(())
    }
}

/// The key server's routes over its storage: the recovery service (refused
/// while sealed, its protected columns sealed under `vault`), and the operator routes.
pub fn router(backend: Arc<KeyStore>, vault: Arc<vault::Vault>, limits: RateLimit) -> axum::Router {
    let sealed = Arc::new(vault::SealedBackend::new(backend.clone(), vault.clone()));
    let service = Arc::new(Service {
        backend: sealed.clone(),
        role: Role::KeyServer,
        limits,
        code_ttl_ms: 600_000,
        code_max_attempts: 5,
        clock: service::now_ms,
    });
    let gate = vault.clone();
    let operators = vault::OperatorState {
        backend: backend.clone(),
        vault: vault.clone(),
    };
    service::router(service.clone())
        .merge(refresh::router(refresh::RefreshState {
            operators: operators.clone(),
            service,
            accounts: sealed,
        }))
        .layer(axum::middleware::from_fn(move |req, next| {
            vault::refuse_while_sealed(gate.clone(), req, next)
        }))
        .merge(vault::operator_router(operators))
        .route(
            "/healthz",
            axum::routing::get(move || health(backend.clone(), vault.clone())),
        )
        .fallback(|| async {
            cachet_http::json_error(StatusCode::NOT_FOUND, "unknown_route", "no such route")
        })
        .method_not_allowed_fallback(|| async {
            cachet_http::json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
}

/// `/healthz`: whether the database answers within the pool's own acquire timeout (else 503
/// `database_unavailable`), and whether the vault is initialised and sealed.
async fn health(backend: Arc<KeyStore>, vault: Arc<vault::Vault>) -> axum::response::Response {
    let database =
        cachet_http::health::ping_within(store::POSTGRES_ACQUIRE_TIMEOUT, backend.ping()).await;
    let status = vault.status();
    cachet_http::health::health_answer(database, status.initialised, status.sealed)
}

/// Registers an operator of the key server (its vault and audit routes) in the database
/// `config` names. Returns false if the name is taken.
pub async fn add_operator(config: &KeyServerConfig, name: &str, public_key: &[u8]) -> Result<bool> {
    // The data server's rule, so one operator name works at both.
    if !cachet_proto::auth::valid_operator_name(name) {
        return Err(Error::InvalidField(
            "name",
            "1 to 64 of a-z, 0-9, '.', '_' or '-'".into(),
        ));
    }
    cachet_crypto::SignPublicKey::from_slice(public_key)
        .map_err(|_| Error::InvalidField("public_key", "not a 32-byte Ed25519 key".into()))?;
    let backend = config.open_store().await?;
    let added = backend
        .add_operator(name, public_key, service::now_ms())
        .await;
    backend.close().await;
    added
}

/// Starts a key server in the background.
pub async fn spawn(config: KeyServerConfig) -> Result<RunningKeyServer> {
    let config = config.merged()?;
    let data_dir = config.data_dir_or_default();
    let limits = config.limits()?;
    let serve_options = config.serve_options()?;
    let notifier = config.notifier_settings().build()?;
    let tls = match config.tls()? {
        Some((cert, key)) => Some(cachet_http::tls_acceptor(&cert, &key)?),
        None => None,
    };
    let backend = Arc::new(
        KeyStore::open_waiting(config.database_url.as_deref(), &data_dir)
            .await?
            .with_notifier(notifier),
    );
    let vault = vault::load(backend.clone()).await?;
    if vault.is_sealed() {
        tracing::warn!(
            "key server is sealed: operators must unseal it (cachet operator --server <this key server> unseal)"
        );
    }
    let listen = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7781)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let backend_kind = backend.kind();
    let app = router(backend.clone(), vault, limits);
    let janitor_backend = backend.clone();
    let mut janitor_rx = rx.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = janitor_backend.purge_expired(service::now_ms()).await {
                tracing::warn!(error = %e, "purge failed");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                () = cachet_http::stopping(&mut janitor_rx) => return,
            }
        }
    });
    let is_tls = tls.is_some();
    let task = tokio::spawn(async move {
        cachet_http::run(listener, tls, app, rx, serve_options).await;
        backend.close().await;
    });
    tracing::info!(
        %addr,
        tls = is_tls,
        data_dir = %data_dir.display(),
        database = backend_kind,
        notifier = ?config.notifier.unwrap_or_default(),
        "cachet key server listening"
    );
    Ok(RunningKeyServer {
        addr,
        data_dir,
        tls: is_tls,
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
