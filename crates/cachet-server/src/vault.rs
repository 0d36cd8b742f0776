//! The data server's key hierarchy: its KEK purposes and its [`VaultStorage`] over the
//! [`Store`]. The sealed/unsealed life itself is `cachet_vault::Vault`
//! (`docs/operations.md`).

use std::sync::Arc;

use async_trait::async_trait;
pub use cachet_vault::Status;
use cachet_vault::VaultStorage;

use crate::error::{Error, Result};
use crate::store::{AuditDraft, Store};

/// The data server's vault.
pub type Vault = cachet_vault::Vault<StoreVault>;

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

/// The vault's view of the raw store (not the encrypting wrapper).
pub struct StoreVault(pub Arc<dyn Store>);

#[async_trait]
impl VaultStorage for StoreVault {
    type Error = Error;

    async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        self.0.vault_config().await
    }

    async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        self.0.put_vault_config(expected, config).await
    }

    async fn holds_records(&self) -> Result<bool> {
        Ok(self.0.user_count().await? > 0)
    }

    async fn record(&self, operator: &str, action: &str, detail: String) -> Result<()> {
        self.0
            .append_audit(&AuditDraft {
                timestamp: crate::state::now_ms(),
                operator_id: operator.to_owned(),
                action: action.to_owned(),
                subject: "vault".to_owned(),
                detail,
            })
            .await
            .map(|_| ())
    }
}

/// Loads the vault of the data server's database.
pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Vault>> {
    Vault::load(StoreVault(store), PURPOSES).await
}

/// The form of an identifier hash the database keeps: a keyed hash once a vault protects
/// the server (a stolen database cannot be tested against phone numbers).
pub fn blind_identifier(vault: &Vault, discovery_hash: &[u8]) -> Result<Vec<u8>> {
    Ok(vault.blind_identifier(IDENTIFIERS, discovery_hash)?)
}
