//! The key hierarchy's view of a server's database: [`StorageVault`] turns what each
//! server's storage offers ([`VaultBackend`]) into `cachet_vault`'s storage trait, so the
//! vault document's compare-and-swap, the "database still empty" check and the audit of
//! every vault action are written once for both servers.

use std::sync::Arc;

use async_trait::async_trait;
use cachet_crypto::SignPublicKey;
use cachet_proto::auth::OPERATOR_PREFIX;
use cachet_proto::v1::VaultSplit;
use cachet_vault::{holder, VaultError, VaultStorage};

use crate::audit::Action;
use crate::errors::ServerError;

/// The vault document: one row, id 1.
pub const CONFIG_SQL: &str = "SELECT config FROM vault_config WHERE id = 1";
/// Stores the first vault document (`$1`); changes nothing when one exists.
pub const INSERT_CONFIG_SQL: &str =
    "INSERT INTO vault_config (id, config) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
/// Replaces the vault document with `$1` if it is still `$2`.
pub const SWAP_CONFIG_SQL: &str =
    "UPDATE vault_config SET config = $1 WHERE id = 1 AND config = $2";

/// What a server's storage offers the vault.
#[async_trait]
pub trait VaultBackend: Send + Sync {
    /// The server's own error type.
    type Error: From<VaultError> + Send;
    /// The stored vault document, if any.
    async fn stored_vault_config(&self) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Replaces the document if the stored one is still `expected` (`None`: absent);
    /// false if it changed meanwhile.
    async fn swap_vault_config(
        &self,
        expected: Option<&[u8]>,
        config: &[u8],
    ) -> Result<bool, Self::Error>;
    /// How many records the vault would find in the clear (users, accounts).
    async fn record_count(&self) -> Result<u64, Self::Error>;
    /// Appends an action to the server's audit log.
    async fn audit(&self, action: Action<'_>) -> Result<(), Self::Error>;
}

/// The holders named in a split request (init, rotation, re-sharing) and their
/// registered keys (`registered_key` looks one up by bare operator name), checked before
/// anything is split: an unknown holder after init would lose that share.
pub async fn holder_keys<E, F, Fut>(
    req: &VaultSplit,
    mut registered_key: F,
) -> Result<Vec<SignPublicKey>, E>
where
    E: ServerError,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Vec<u8>>, E>>,
{
    let mut keys = Vec::with_capacity(req.holders.len());
    for name in &req.holders {
        let bare = name.strip_prefix(OPERATOR_PREFIX).unwrap_or(name);
        let key = registered_key(bare.to_owned())
            .await?
            .ok_or_else(|| E::invalid_field("holders", format!("no operator named {bare:?}")))?;
        keys.push(
            SignPublicKey::from_slice(&key)
                .map_err(|_| E::internal("stored operator key is malformed".into()))?,
        );
    }
    if !keys.is_empty() {
        holder::check_holders(req.shares, &keys)?;
    }
    Ok(keys)
}

/// The vault's storage over a server's backend.
pub struct StorageVault<B: ?Sized>(pub Arc<B>);

impl<B: ?Sized> std::fmt::Debug for StorageVault<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageVault").finish_non_exhaustive()
    }
}

#[async_trait]
impl<B: VaultBackend + ?Sized> VaultStorage for StorageVault<B> {
    type Error = B::Error;

    async fn vault_config(&self) -> Result<Option<Vec<u8>>, B::Error> {
        self.0.stored_vault_config().await
    }

    async fn put_vault_config(
        &self,
        expected: Option<&[u8]>,
        config: &[u8],
    ) -> Result<bool, B::Error> {
        self.0.swap_vault_config(expected, config).await
    }

    async fn holds_records(&self) -> Result<bool, B::Error> {
        Ok(self.0.record_count().await? > 0)
    }

    async fn record(&self, operator: &str, action: &str, detail: String) -> Result<(), B::Error> {
        self.0
            .audit(Action {
                timestamp: crate::now_ms(),
                operator_id: operator,
                action,
                subject: "vault",
                detail: &detail,
            })
            .await
    }
}
