//! The cachet data server (whitepaper section 8): it routes and holds end-to-end encrypted
//! envelopes it cannot read, keeps the directory of public keys and their history, stores
//! encrypted attachment chunks and patient cases, and offers an audited operator API.
//!
//! * [`serve`] runs a server until a shutdown future resolves; [`spawn`] starts one in the
//!   background and returns its address and a handle (for tests and embedding).
//! * [`ServerConfig`] is the configuration (flags, `CACHET_*` environment, TOML file).
//! * Persistent state sits behind [`store::Store`] (SQLite by default), attachment chunks
//!   behind [`blob::BlobStore`] (files by default), long-poll wake-ups behind
//!   [`wake::MailboxSignal`] (in-process by default), code delivery behind
//!   [`notify::CodeNotifier`]. [`spawn_with`] takes any implementations.
//!
//! The HTTP API is documented in `docs/protocol.md` ("HTTP API") and `docs/server.md`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod api;
mod app;
pub mod audit;
mod auth;
pub mod blob;
pub mod config;
pub mod conformance;
pub mod error;
mod extract;
pub mod notify;
pub mod sealed_store;
pub use cachet_server_common::private_files;
mod state;
pub mod store;
mod trust_log;
pub mod vault;
pub mod wake;

pub use auth::{valid_operator_name, OPERATOR_PREFIX};
pub use config::{NotifierKind, S3Settings, Secret, ServerConfig, Settings, CHUNK_SIZE};
pub use error::{Error, Result};
pub use extract::PROTOBUF;

use blob::{BlobStore, FsBlobStore, S3BlobStore};
use notify::CodeNotifier;
use store::{AuditDraft, SqliteStore, Store};
use wake::{LocalSignal, MailboxSignal, NatsSignal};

/// Folder of attachment chunks inside the data directory.
pub const BLOB_DIR: &str = "blobs";

/// The pluggable parts of a server.
#[derive(Clone)]
pub struct Components {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Attachment chunks.
    pub blobs: Arc<dyn BlobStore>,
    /// Long-poll wake-ups.
    pub signal: Arc<dyn MailboxSignal>,
    /// One-time code delivery.
    pub notifier: Arc<dyn CodeNotifier>,
}

impl Components {
    /// The components the settings name: SQLite in the data directory or PostgreSQL
    /// (`database_url`), chunk files or an S3-compatible store (`s3_url`), in-process or
    /// NATS wake-ups (`nats_url`), and the notifier.
    ///
    /// A PostgreSQL database that cannot be reached is waited for (logged, with backoff)
    /// rather than failing the start.
    pub async fn local(settings: &Settings) -> Result<Self> {
        private_files::create_dir(&settings.data_dir)?;
        let store: Arc<dyn Store> = match &settings.database_url {
            Some(url) => Arc::new(
                store::PostgresStore::connect_waiting(url, settings.database_timeout).await?,
            ),
            None => Arc::new(SqliteStore::open_in(&settings.data_dir).await?),
        };
        let blobs: Arc<dyn BlobStore> = match &settings.s3 {
            Some(s3) => Arc::new(S3BlobStore::new(s3)?),
            None => Arc::new(FsBlobStore::new(settings.data_dir.join(BLOB_DIR))?),
        };
        let signal: Arc<dyn MailboxSignal> = match &settings.nats {
            Some((url, subject)) => Arc::new(NatsSignal::connect(url, subject).await?),
            None => Arc::new(LocalSignal::new()),
        };
        let notifier: Arc<dyn CodeNotifier> = settings.notifier.build()?;
        Ok(Components {
            store,
            blobs,
            signal,
            notifier,
        })
    }
}

/// A server running in the background.
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    settings: Settings,
    store: Arc<dyn Store>,
    vault: Arc<vault::Vault>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    janitor: JoinHandle<()>,
}

cachet_http::debug_some_fields!(RunningServer { addr, tls });

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` or `https://addr`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The effective settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server's store (for inspection and administration).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The key hierarchy of this node.
    pub fn vault(&self) -> Arc<vault::Vault> {
        self.vault.clone()
    }

    /// Stops accepting connections, ends long polls, lets in-flight requests finish and
    /// waits until everything has stopped.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.task.await;
        let _ = self.janitor.await;
        // Every request has finished: close the database, so that its files are whole
        // once this returns (SQLite folds its WAL back in).
        self.store.close().await;
        served.map_err(|e| Error::Internal(format!("server task: {e}")))?;
        tracing::info!("server stopped");
        Ok(())
    }

    /// Waits until the server stops by itself (it only does when shut down).
    async fn stopped(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Starts a server with the default components in the background.
pub async fn spawn(config: ServerConfig) -> Result<RunningServer> {
    let settings = config.resolve()?;
    let components = Components::local(&settings).await?;
    spawn_with(settings, components).await
}

/// Starts a server with the given components in the background.
pub async fn spawn_with(settings: Settings, components: Components) -> Result<RunningServer> {
    let tls = match &settings.tls {
        Some((cert, key)) => Some(cachet_http::tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Metadata is sealed under the key hierarchy on its way to the database.
    let vault = vault::load(components.store.clone()).await?;
    if vault.is_sealed() {
        tracing::warn!("server is sealed: operators must unseal it (cachet operator unseal)");
    }
    let store: Arc<dyn Store> = Arc::new(sealed_store::EncryptedStore::new(
        components.store.clone(),
        vault.clone(),
    ));
    let state = state::AppState(Arc::new(state::Inner {
        settings: settings.clone(),
        store: store.clone(),
        vault: vault.clone(),
        blobs: components.blobs.clone(),
        signal: components.signal.clone(),
        notifier: components.notifier.clone(),
        trust: Arc::new(trust_log::TrustLog::open(components.store.as_ref()).await?),
        shutdown: shutdown_rx.clone(),
    }));
    let router = app::router(state);
    let is_tls = tls.is_some();
    let task = tokio::spawn(cachet_http::run(
        listener,
        tls,
        router,
        shutdown_rx.clone(),
        settings.serve.clone(),
    ));
    let janitor = tokio::spawn(janitor(
        settings.clone(),
        components.store.clone(),
        components.signal.clone(),
        shutdown_rx,
    ));
    tracing::info!(
        %addr,
        tls = is_tls,
        data_dir = %settings.data_dir.display(),
        notifier = ?settings.notifier.kind,
        "cachet server listening"
    );
    Ok(RunningServer {
        addr,
        tls: is_tls,
        settings,
        store,
        vault,
        shutdown: shutdown_tx,
        task,
        janitor,
    })
}

/// Runs a server until `shutdown` resolves (for example on Ctrl-C), then shuts down
/// gracefully.
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut running = spawn(config).await?;
    tokio::select! {
        () = shutdown => {}
        () = running.stopped() => {
            return Err(Error::Internal("server stopped unexpectedly".into()));
        }
    }
    tracing::info!("shutting down");
    running.shutdown().await
}

/// Deletes what expired: registration challenges, seen signatures past the replay window
/// and web-acked envelopes past retention. Runs at start and then periodically.
async fn janitor(
    settings: Settings,
    store: Arc<dyn Store>,
    signal: Arc<dyn MailboxSignal>,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention = i64::try_from(settings.web_retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let now = state::now_ms();
        match store
            .purge_expired(now, now.saturating_sub(retention))
            .await
        {
            Ok(p) => tracing::debug!(?p, "purged expired rows"),
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        signal.sweep().await;
        tokio::select! {
            () = tokio::time::sleep(settings.janitor_interval) => {}
            () = cachet_http::stopping(&mut shutdown) => return,
        }
    }
}

/// Registers an operator (or replaces their key) in the server's database, for the
/// command line: PostgreSQL at `database_url`, else SQLite in `data_dir`. `public_key` is the operator's 32-byte Ed25519 public key; they then sign
/// requests with `x-siilo-uid: op:<name>`. The action is written to the audit log under
/// the operator id `console` (someone with access to the server host).
pub async fn add_operator(
    data_dir: &Path,
    database_url: Option<&str>,
    name: &str,
    public_key: &[u8],
) -> Result<()> {
    if !valid_operator_name(name) {
        return Err(Error::invalid(
            "name",
            "operator names are 1 to 64 of a-z 0-9 . _ -",
        ));
    }
    if public_key.len() != cachet_crypto::KEY_LEN {
        return Err(Error::InvalidKey("operator public key must be 32 bytes"));
    }
    let store: Arc<dyn Store> = match database_url {
        Some(url) => Arc::new(store::PostgresStore::connect(url).await?),
        None => Arc::new(SqliteStore::open_in(data_dir).await?),
    };
    let audit = AuditDraft {
        timestamp: state::now_ms(),
        operator_id: "console".into(),
        action: "put_operator".into(),
        subject: format!("{OPERATOR_PREFIX}{name}"),
        detail: format!("sign_key={}", hex::encode(public_key)),
    };
    store.put_operator(name, public_key, &audit).await?;
    store.close().await;
    Ok(())
}

/// Checks the audit log's hash chain in the database of `data_dir`. Returns the number of
/// entries and the hash of the last one.
pub async fn verify_audit_log(data_dir: &Path) -> Result<(u64, Vec<u8>)> {
    let store = SqliteStore::open_in(data_dir).await?;
    let result = audit::verify_audit_log(&store).await;
    store.close().await;
    result
}

/// Installs a `tracing` subscriber for a server process: filter from `RUST_LOG` (default
/// `info`), human-readable or JSON lines. Does nothing if one is installed already.
pub fn init_logging(json: bool) {
    cachet_http::init_logging(json);
}
