//! The server side of the trust chain (`docs/trust-chain.md`): blocks live in the store,
//! the Merkle tree over them in memory (rebuilt from the store at start, and brought up
//! to date before every answer, so several nodes sharing one database agree), and tree
//! heads are signed with the log key, whose seed is kept in the database (sealed under
//! the key hierarchy once a vault protects the server, so it is read on first use, after
//! the unseal).
//!
//! The server only orders blocks: each is signed by its author. Before appending, it
//! replays the user's chain with the new block by the same rules the clients apply, so a
//! block that every client would refuse never enters the log.

use std::collections::BTreeMap;

use cachet_crypto::{SignKeyPair, SignPublicKey};
use cachet_trust::{Author, Block, Event, MerkleLog, SignedTreeHead, UserChain};
use tokio::sync::{Mutex, MutexGuard};

use crate::auth::OPERATOR_PREFIX;
use crate::error::{Error, Result};
use crate::store::{NewTrustBlock, Store};
use cachet_server_common::now_ms;

/// Blocks read from the store per query while catching up.
const SYNC_PAGE: u32 = 10_000;

/// The log key and the in-memory tree.
pub(crate) struct TrustLog {
    key: tokio::sync::OnceCell<SignKeyPair>,
    tree: Mutex<MerkleLog>,
}

impl std::fmt::Debug for TrustLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustLog")
            .field(
                "log_key",
                &self.key.get().map(|k| hex::encode(k.public().as_bytes())),
            )
            .finish_non_exhaustive()
    }
}

impl TrustLog {
    /// Loads the tree from the store (the key waits for its first use).
    pub(crate) async fn open(store: &dyn Store) -> Result<Self> {
        let log = Self {
            key: tokio::sync::OnceCell::new(),
            tree: Mutex::new(MerkleLog::new()),
        };
        drop(log.synced(store).await?);
        Ok(log)
    }

    /// The log key, loaded (or made, the first time) through `store`, which must be
    /// the encrypting store: under a vault the seed is sealed.
    async fn key(&self, store: &dyn Store) -> Result<&SignKeyPair> {
        self.key
            .get_or_try_init(|| async {
                let candidate = zeroize::Zeroizing::new(SignKeyPair::generate().expose_seed());
                let seed = zeroize::Zeroizing::new(store.trust_log_seed(candidate.as_ref()).await?);
                SignKeyPair::from_seed_slice(&seed)
                    .map_err(|_| Error::Internal("stored log key seed is not 32 bytes".into()))
            })
            .await
    }

    /// The public log key.
    pub(crate) async fn public_key(&self, store: &dyn Store) -> Result<SignPublicKey> {
        Ok(self.key(store).await?.public())
    }

    /// The tree, with every block the store holds.
    pub(crate) async fn synced(&self, store: &dyn Store) -> Result<MutexGuard<'_, MerkleLog>> {
        let mut tree = self.tree.lock().await;
        loop {
            let page = store.trust_blocks(tree.size(), SYNC_PAGE).await?;
            let full = page.len() == SYNC_PAGE as usize;
            for (index, block) in page {
                if index != tree.size() {
                    return Err(Error::Internal(format!(
                        "trust log has a gap: block {index} after {}",
                        tree.size()
                    )));
                }
                tree.append(&block);
            }
            if !full {
                return Ok(tree);
            }
        }
    }

    /// Signs the head of `tree`.
    pub(crate) async fn sign_head(
        &self,
        store: &dyn Store,
        tree: &MerkleLog,
    ) -> Result<SignedTreeHead> {
        Ok(SignedTreeHead::sign(
            tree.size(),
            tree.root(),
            now_ms(),
            self.key(store).await?,
        ))
    }

    /// Checks `block` against its user's chain and appends it. Returns its index.
    pub(crate) async fn append(&self, store: &dyn Store, block: &Block) -> Result<u64> {
        let user_id = &block.body.user_id;
        let mut chain = UserChain::new(user_id);
        let stored = store.trust_blocks_of(user_id).await?;
        let mut blocks = Vec::with_capacity(stored.len() + 1);
        for (_, bytes) in &stored {
            blocks.push(
                Block::from_bytes(bytes)
                    .map_err(|e| Error::Internal(format!("stored block unreadable: {e}")))?,
            );
        }
        let operators = operator_keys(store, blocks.iter().chain([block])).await?;
        for b in &blocks {
            chain
                .apply(b, &operators)
                .map_err(|e| Error::Internal(format!("stored chain breaks a rule: {e}")))?;
        }
        chain
            .apply(block, &operators)
            .map_err(|e| Error::TrustBlockRejected(e.to_string()))?;
        check_against_directory(store, block).await?;
        let index = store
            .append_trust_block(NewTrustBlock {
                user_id,
                seq: block.body.seq,
                block: &block.to_bytes(),
                created_at: now_ms(),
            })
            .await?;
        Ok(index)
    }
}

/// The keys of the operators `blocks` name, as the server knows them.
async fn operator_keys(
    store: &dyn Store,
    blocks: impl Iterator<Item = &Block>,
) -> Result<BTreeMap<String, SignPublicKey>> {
    let mut out = BTreeMap::new();
    for block in blocks {
        if let Author::Operator { id, .. } = &block.body.author {
            if out.contains_key(id) {
                continue;
            }
            let Some(name) = id.strip_prefix(OPERATOR_PREFIX) else {
                continue;
            };
            if let Some(key) = store.operator_key(name).await? {
                if let Ok(key) = SignPublicKey::from_slice(&key) {
                    out.insert(id.clone(), key);
                }
            }
        }
    }
    Ok(out)
}

/// Key blocks must name the keys the directory holds for that version, so that the log
/// and the directory never disagree for clients that check.
async fn check_against_directory(store: &dyn Store, block: &Block) -> Result<()> {
    let (version, box_key, sign_key) = match &block.body.event {
        Event::UserCreated { box_key, sign_key } => (1, box_key, sign_key),
        Event::KeysAdded {
            key_version,
            box_key,
            sign_key,
        } => (*key_version, box_key, sign_key),
        _ => return Ok(()),
    };
    let history = store.key_history(&block.body.user_id).await?;
    let matches = history
        .iter()
        .any(|k| k.key_version == version && k.box_key == box_key && k.sign_key == sign_key);
    if matches {
        Ok(())
    } else {
        Err(Error::TrustBlockRejected(format!(
            "keys version {version} differ from the directory's"
        )))
    }
}
