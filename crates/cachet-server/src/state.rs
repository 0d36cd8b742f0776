//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::watch;

use crate::blob::BlobStore;
use crate::config::Settings;
use crate::notify::CodeNotifier;
use crate::store::Store;
use crate::wake::MailboxSignal;

pub(crate) use cachet_server_common::now_ms;

/// Everything a handler may use.
pub(crate) struct Inner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub signal: Arc<dyn MailboxSignal>,
    pub notifier: Arc<dyn CodeNotifier>,
    /// The key hierarchy: sealed, unsealed or absent.
    pub vault: Arc<crate::vault::Vault>,
    /// The trust log: its key and Merkle tree.
    pub trust: Arc<crate::trust_log::TrustLog>,
    /// Turns true when the server starts shutting down; long polls end early.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
