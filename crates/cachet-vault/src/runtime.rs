//! The vault of one running server: sealed start, unseal by Shamir shares, rotation,
//! re-sharing and export, over whatever database the server keeps (the software
//! equivalent of the HSM pair of the seeds). The data server and the key server each run
//! one over their own database, through [`VaultStorage`].
//!
//! A server whose database holds no vault runs **unprotected** (development, the demo,
//! and every server before `cachet operator init`). Once initialised, every start is
//! **sealed**: the master key exists only in memory, so a restarted server serves nothing
//! but its vault status until operators enter enough shares.
//!
//! What the database keeps ([`VaultConfig`]) is not secret: the threshold, a digest per
//! share, a check value of the master key and the key-encryption keys wrapped under it.
//! Copying it to a second server (`export`/`import`) gives that server the same hierarchy,
//! opened by any threshold of the same shares.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    KeyHierarchy, MasterKey, SealedRoot, ShareToken, UnsealProgress, Unsealer, VaultError,
    WrappedKek,
};

/// What a server's database does for its vault.
#[async_trait]
pub trait VaultStorage: Send + Sync {
    /// The server's own error type; every vault error converts into it.
    type Error: From<VaultError> + Send;
    /// The stored [`VaultConfig`] document, if any.
    async fn vault_config(&self) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Replaces the document if the stored one is still `expected` (`None`: absent).
    /// Returns false if another writer got there first.
    async fn put_vault_config(
        &self,
        expected: Option<&[u8]>,
        config: &[u8],
    ) -> Result<bool, Self::Error>;
    /// Whether the database already holds records that would stay in the clear.
    async fn holds_records(&self) -> Result<bool, Self::Error>;
    /// Appends a vault action to the server's audit log.
    async fn record(&self, operator: &str, action: &str, detail: String)
        -> Result<(), Self::Error>;
}

/// The non-secret document kept in the database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VaultConfig {
    /// Format version (1).
    pub version: u32,
    /// Shares needed to unseal.
    pub threshold: u8,
    /// SHA-256 of each share, hex, by index.
    pub share_digests: Vec<String>,
    /// Check value of the master key, hex.
    pub master_check: String,
    /// Key-encryption keys wrapped under the master key.
    pub keks: Vec<StoredKek>,
}

/// One wrapped KEK in [`VaultConfig`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredKek {
    /// What it protects.
    pub purpose: String,
    /// `nonce ‖ ciphertext`, hex.
    pub sealed: String,
}

type Result<T, E = VaultError> = std::result::Result<T, E>;

fn unhex<const N: usize>(text: &str) -> Result<[u8; N]> {
    let bytes = hex::decode(text).map_err(|_| VaultError::BadConfig("bad hex"))?;
    bytes
        .try_into()
        .map_err(|_| VaultError::BadConfig("bad length"))
}

impl VaultConfig {
    fn new(root: &SealedRoot, keks: &[WrappedKek]) -> Self {
        Self {
            version: 1,
            threshold: root.threshold,
            share_digests: root.share_digests.iter().map(hex::encode).collect(),
            master_check: hex::encode(root.master_check),
            keks: keks
                .iter()
                .map(|k| StoredKek {
                    purpose: k.purpose.clone(),
                    sealed: hex::encode(&k.sealed),
                })
                .collect(),
        }
    }

    /// Parses and checks a stored or imported document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|_| VaultError::BadConfig("not a vault document"))?;
        if config.version != 1 {
            return Err(VaultError::BadConfig("unknown version"));
        }
        config.root()?;
        config.wrapped()?;
        Ok(config)
    }

    /// The JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The share digests and check value.
    pub fn root(&self) -> Result<SealedRoot> {
        let threshold = self.threshold;
        if threshold < 2 || usize::from(threshold) > self.share_digests.len() {
            return Err(VaultError::BadConfig("threshold out of range"));
        }
        Ok(SealedRoot {
            threshold,
            share_digests: self
                .share_digests
                .iter()
                .map(|d| unhex::<32>(d))
                .collect::<Result<_>>()?,
            master_check: unhex::<32>(&self.master_check)?,
        })
    }

    /// The wrapped KEKs.
    pub fn wrapped(&self) -> Result<Vec<WrappedKek>> {
        self.keks
            .iter()
            .map(|k| {
                Ok(WrappedKek {
                    purpose: k.purpose.clone(),
                    sealed: hex::decode(&k.sealed).map_err(|_| VaultError::BadConfig("bad hex"))?,
                })
            })
            .collect()
    }
}

enum Phase {
    /// No vault in the database: metadata is stored as given.
    Unprotected,
    /// A vault exists; the master key is not in memory.
    Sealed {
        config: VaultConfig,
        unsealer: Box<Unsealer>,
        entered_by: Vec<String>,
    },
    /// The master key and the KEKs are in memory.
    Unsealed {
        config: VaultConfig,
        master: MasterKey,
        keys: Arc<KeyHierarchy>,
    },
}

/// What [`Vault::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// A vault exists.
    pub initialised: bool,
    /// The master key is not in memory.
    pub sealed: bool,
    /// Shares entered in the current unseal.
    pub shares_entered: u32,
    /// Shares needed.
    pub threshold: u32,
    /// Shares handed out.
    pub shares: u32,
    /// Who entered them.
    pub entered_by: Vec<String>,
}

/// The run-time vault of one server node.
pub struct Vault<S> {
    storage: S,
    /// KEK purposes of this server.
    purposes: &'static [&'static str],
    phase: RwLock<Phase>,
    /// Serialises init, unseal, rotation and import (each reads then writes the config).
    ops: tokio::sync::Mutex<()>,
}

impl<S> std::fmt::Debug for Vault<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<redacted>)")
    }
}

fn split(shares: u32, threshold: u32) -> Result<(u8, u8)> {
    let s = u8::try_from(shares).map_err(|_| VaultError::InvalidSharing("at most 255 shares"))?;
    let t =
        u8::try_from(threshold).map_err(|_| VaultError::InvalidSharing("threshold at most 255"))?;
    Ok((s, t))
}

impl<S: VaultStorage> Vault<S> {
    /// Loads the vault state of the database: sealed if a vault exists, else unprotected.
    /// `storage` must reach the raw database (not an encrypting wrapper); `purposes` are
    /// the KEKs this server uses (a new one is added at the next unseal).
    pub async fn load(
        storage: S,
        purposes: &'static [&'static str],
    ) -> Result<Arc<Self>, S::Error> {
        let phase = match storage.vault_config().await? {
            None => Phase::Unprotected,
            Some(bytes) => {
                let config = VaultConfig::from_json(&bytes)?;
                Phase::Sealed {
                    unsealer: Box::new(Unsealer::new(config.root()?)),
                    config,
                    entered_by: Vec::new(),
                }
            }
        };
        Ok(Arc::new(Self {
            storage,
            purposes,
            phase: RwLock::new(phase),
            ops: tokio::sync::Mutex::new(()),
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Phase> {
        self.phase.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Phase> {
        self.phase.write().unwrap_or_else(|p| p.into_inner())
    }

    /// True while a vault exists and its key is not in memory.
    pub fn is_sealed(&self) -> bool {
        matches!(*self.read(), Phase::Sealed { .. })
    }

    /// The key hierarchy: `None` when unprotected, `Sealed` when sealed.
    pub fn keys(&self) -> Result<Option<Arc<KeyHierarchy>>> {
        match &*self.read() {
            Phase::Unprotected => Ok(None),
            Phase::Sealed { .. } => Err(VaultError::Sealed),
            Phase::Unsealed { keys, .. } => Ok(Some(keys.clone())),
        }
    }

    /// The form of an identifier hash the database keeps: a keyed hash once a vault
    /// protects the server (a stolen database cannot be tested against phone numbers).
    /// `purpose` names the KEK of the keyed hash.
    pub fn blind_identifier(&self, purpose: &str, discovery_hash: &[u8]) -> Result<Vec<u8>> {
        match self.keys()? {
            None => Ok(discovery_hash.to_vec()),
            Some(keys) => Ok(keys
                .keyed_hash(purpose, "identifier_hash", discovery_hash)?
                .to_vec()),
        }
    }

    /// The status, for operators and monitoring.
    pub fn status(&self) -> Status {
        match &*self.read() {
            Phase::Unprotected => Status {
                initialised: false,
                sealed: false,
                shares_entered: 0,
                threshold: 0,
                shares: 0,
                entered_by: Vec::new(),
            },
            Phase::Sealed {
                config, entered_by, ..
            } => Status {
                initialised: true,
                sealed: true,
                shares_entered: entered_by.len() as u32,
                threshold: config.threshold.into(),
                shares: config.share_digests.len() as u32,
                entered_by: entered_by.clone(),
            },
            Phase::Unsealed { config, .. } => Status {
                initialised: true,
                sealed: false,
                shares_entered: 0,
                threshold: config.threshold.into(),
                shares: config.share_digests.len() as u32,
                entered_by: Vec::new(),
            },
        }
    }

    async fn audit(&self, operator: &str, action: &str, detail: String) -> Result<(), S::Error> {
        // Through the raw storage: the entry names no user, and while the vault opens an
        // encrypting wrapper may not be usable yet.
        self.storage.record(operator, action, detail).await
    }

    /// Creates the master key, splits it and protects this (empty) server with it.
    /// The server is unsealed afterwards. Returns one token per holder.
    pub async fn init(
        &self,
        shares: u32,
        threshold: u32,
        operator: &str,
    ) -> Result<Vec<ShareToken>, S::Error> {
        let _op = self.ops.lock().await;
        if !matches!(*self.read(), Phase::Unprotected)
            || self.storage.vault_config().await?.is_some()
        {
            return Err(VaultError::AlreadyInitialised.into());
        }
        if self.storage.holds_records().await? {
            return Err(VaultError::NeedsEmptyDatabase.into());
        }
        let (s, t) = split(shares, threshold)?;
        let (master, root, tokens) = crate::init(s, t)?;
        let mut keys = KeyHierarchy::open(&master, &[])?;
        let wrapped = keys.ensure_purposes(&master, self.purposes);
        let config = VaultConfig::new(&root, &wrapped);
        if !self
            .storage
            .put_vault_config(None, &config.to_json())
            .await?
        {
            return Err(VaultError::AlreadyInitialised.into());
        }
        *self.write() = Phase::Unsealed {
            config,
            master,
            keys: Arc::new(keys),
        };
        self.audit(operator, "vault_init", format!("{s} shares, threshold {t}"))
            .await?;
        Ok(tokens)
    }

    /// Enters one share. Wrong, corrupted or foreign shares are named and not kept.
    pub async fn unseal(
        &self,
        token: &ShareToken,
        operator: &str,
    ) -> Result<UnsealProgress, S::Error> {
        let _op = self.ops.lock().await;
        let opened = {
            let mut phase = self.write();
            match &mut *phase {
                Phase::Unprotected => return Err(VaultError::NotInitialised.into()),
                Phase::Unsealed { .. } => return Ok(UnsealProgress::Unsealed),
                Phase::Sealed {
                    config,
                    unsealer,
                    entered_by,
                } => match unsealer.submit(token)? {
                    progress @ UnsealProgress::Need { .. } => {
                        entered_by.push(operator.to_owned());
                        return Ok(progress);
                    }
                    UnsealProgress::Unsealed => {
                        let master = unsealer
                            .master_key()
                            .cloned()
                            .ok_or(VaultError::WrongMasterKey)?;
                        let mut keys = KeyHierarchy::open(&master, &config.wrapped()?)?;
                        // A server upgraded with a new purpose gets its KEK now.
                        let wrapped = keys.ensure_purposes(&master, self.purposes);
                        entered_by.push(operator.to_owned());
                        let who = entered_by.join(", ");
                        let old = config.clone();
                        let new = VaultConfig::new(&config.root()?, &wrapped);
                        *phase = Phase::Unsealed {
                            config: new.clone(),
                            master,
                            keys: Arc::new(keys),
                        };
                        (old, new, who)
                    }
                },
            }
        };
        let (old, new, who) = opened;
        if old.keks != new.keks {
            self.storage
                .put_vault_config(Some(&old.to_json()), &new.to_json())
                .await?;
        }
        self.audit(operator, "vault_unseal", format!("shares entered by {who}"))
            .await?;
        Ok(UnsealProgress::Unsealed)
    }

    /// Forgets the master key (an operator's emergency stop); a restart does the same.
    pub async fn seal(&self, operator: &str) -> Result<(), S::Error> {
        let _op = self.ops.lock().await;
        let config = match &*self.read() {
            Phase::Unsealed { config, .. } => config.clone(),
            Phase::Sealed { .. } => return Ok(()),
            Phase::Unprotected => return Err(VaultError::NotInitialised.into()),
        };
        *self.write() = Phase::Sealed {
            unsealer: Box::new(Unsealer::new(config.root()?)),
            config,
            entered_by: Vec::new(),
        };
        self.audit(operator, "vault_seal", String::new()).await
    }

    /// A new master key: the KEKs are re-wrapped (no row changes) and the new key is split
    /// for the holders. Old shares stop working.
    pub async fn rotate(
        &self,
        shares: u32,
        threshold: u32,
        operator: &str,
    ) -> Result<Vec<ShareToken>, S::Error> {
        self.resplit(shares, threshold, operator, true).await
    }

    /// The same master key split anew for a new set of holders; old shares stop working.
    pub async fn reshare(
        &self,
        shares: u32,
        threshold: u32,
        operator: &str,
    ) -> Result<Vec<ShareToken>, S::Error> {
        self.resplit(shares, threshold, operator, false).await
    }

    async fn resplit(
        &self,
        shares: u32,
        threshold: u32,
        operator: &str,
        new_master: bool,
    ) -> Result<Vec<ShareToken>, S::Error> {
        let _op = self.ops.lock().await;
        let (s, t) = split(shares, threshold)?;
        let (old, master, keys) = match &*self.read() {
            Phase::Unsealed {
                config,
                master,
                keys,
            } => (config.clone(), master.clone(), keys.clone()),
            Phase::Sealed { .. } => return Err(VaultError::Sealed.into()),
            Phase::Unprotected => return Err(VaultError::NotInitialised.into()),
        };
        let master = if new_master {
            MasterKey::generate()
        } else {
            master
        };
        let (root, tokens) = crate::reshare(&master, s, t)?;
        let config = VaultConfig::new(&root, &keys.wrap_all(&master));
        if !self
            .storage
            .put_vault_config(Some(&old.to_json()), &config.to_json())
            .await?
        {
            return Err(VaultError::ConcurrentChange.into());
        }
        *self.write() = Phase::Unsealed {
            config,
            master,
            keys,
        };
        let action = if new_master {
            "vault_rotate"
        } else {
            "vault_reshare"
        };
        self.audit(operator, action, format!("{s} shares, threshold {t}"))
            .await?;
        Ok(tokens)
    }

    /// The sealed key material, for a second server.
    pub fn export(&self) -> Result<Vec<u8>> {
        match &*self.read() {
            Phase::Unprotected => Err(VaultError::NotInitialised),
            Phase::Sealed { config, .. } | Phase::Unsealed { config, .. } => Ok(config.to_json()),
        }
    }

    /// Takes the sealed key material of another server (this one must have none). The
    /// server is sealed afterwards.
    pub async fn import(&self, bytes: &[u8], operator: &str) -> Result<(), S::Error> {
        let _op = self.ops.lock().await;
        let config = VaultConfig::from_json(bytes)?;
        if !matches!(*self.read(), Phase::Unprotected) {
            return Err(VaultError::AlreadyInitialised.into());
        }
        if !self
            .storage
            .put_vault_config(None, &config.to_json())
            .await?
        {
            return Err(VaultError::AlreadyInitialised.into());
        }
        *self.write() = Phase::Sealed {
            unsealer: Box::new(Unsealer::new(config.root()?)),
            config,
            entered_by: Vec::new(),
        };
        self.audit(operator, "vault_import", String::new()).await
    }
}
