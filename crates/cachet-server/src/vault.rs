//! The data server's key hierarchy: its KEK purposes and its [`VaultBackend`] over the
//! [`Store`]. The sealed/unsealed life itself is `cachet_vault::Vault`
//! (`docs/operations.md`).

use std::sync::Arc;

use async_trait::async_trait;
use cachet_server_common::audit::Action;
use cachet_server_common::vault::{StorageVault, VaultBackend};
pub use cachet_vault::Status;

use crate::error::{Error, Result};
use crate::store::{AuditDraft, Store};

/// The data server's vault.
pub type Vault = cachet_vault::Vault<StorageVault<dyn Store>>;

/// KEK purposes of the data server.
pub const PURPOSES: &[&str] = &[
    PROFILES,
    IDENTIFIERS,
    AUDIT,
    OPRF_SHARES,
    KEY_RINGS,
    TRUST_LOG,
];
/// The trust log's signing-key seed (sealed).
pub const TRUST_LOG: &str = "trust-log";
/// The data server's OPRF key shares of password recovery (sealed).
pub const OPRF_SHARES: &str = "oprf-shares";
/// The data server's copies of users' sealed key rings (sealed again).
pub const KEY_RINGS: &str = "key-rings";
/// Display names (sealed).
pub const PROFILES: &str = "profiles";
/// Identifier hashes (keyed hash only).
pub const IDENTIFIERS: &str = "identifiers";
/// Audit log subjects and details (sealed).
pub const AUDIT: &str = "audit";

// The vault's view of the raw store (not the encrypting wrapper).
#[async_trait]
impl<'a> VaultBackend for dyn Store + 'a {
    type Error = Error;

    async fn stored_vault_config(&self) -> Result<Option<Vec<u8>>> {
        self.vault_config().await
    }

    async fn swap_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        self.put_vault_config(expected, config).await
    }

    async fn record_count(&self) -> Result<u64> {
        self.user_count().await
    }

    async fn audit(&self, action: Action<'_>) -> Result<()> {
        self.append_audit(&AuditDraft {
            timestamp: action.timestamp,
            operator_id: action.operator_id.to_owned(),
            action: action.action.to_owned(),
            subject: action.subject.to_owned(),
            detail: action.detail.to_owned(),
        })
        .await
        .map(|_| ())
    }
}

/// Loads the vault of the data server's database.
pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Vault>> {
    Vault::load(StorageVault(store), PURPOSES).await
}

/// The form of an identifier hash the database keeps: a keyed hash once a vault protects
/// the server (a stolen database cannot be tested against phone numbers).
pub fn blind_identifier(vault: &Vault, discovery_hash: &[u8]) -> Result<Vec<u8>> {
    Ok(vault.blind_identifier(IDENTIFIERS, discovery_hash)?)
}
