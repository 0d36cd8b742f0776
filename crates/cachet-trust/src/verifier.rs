//! The client side: what a client checks before it trusts a key.
//!
//! A [`Verifier`] holds, per server, the server's log key, the pinned operator keys, the
//! last signed tree head it accepted and the user chains it has checked. It
//!
//! 1. accepts a new head only with a valid signature and a consistency proof from the head
//!    it holds (so the log only grows, and a server cannot rewrite what this client saw);
//! 2. accepts a user's chain only when every block is included under that head and the
//!    chain replays by the rules of [`crate::chain`], and only if it extends the chain it
//!    saw before (so a dropped revocation or a rolled-back key is noticed);
//! 3. answers whether a key is the user's current key ([`Verifier::check_key`]) and
//!    whether a change from a verified key was authorised by it
//!    ([`Verifier::judge_change`]).

use std::collections::BTreeMap;

use cachet_crypto::SignPublicKey;

use crate::block::Block;
use crate::chain::{Authorisation, KeyGeneration, RevokedBy, UserChain};
use crate::merkle::{verify_consistency, verify_inclusion, Hash, MerkleLog};
use crate::sth::{check_heads, SignedTreeHead};
use crate::TrustError;

/// A block as the server serves it: its log index and its inclusion proof under the head
/// the client holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedBlock {
    /// Position in the log.
    pub index: u64,
    /// The block.
    pub block: Block,
    /// RFC 9162 audit path for `index` in the tree of the client's head.
    pub proof: Vec<Hash>,
}

/// The verdict on a key change of a contact whose keys the user verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeVerdict {
    /// The verified keys are still the current ones.
    Unchanged,
    /// Every step from the verified keys to the current ones was signed by the key before
    /// it (or by a recovery key that an authorised key set); the contact stays verified.
    KeepVerified {
        /// Why, for people.
        note: String,
    },
    /// The change was not authorised by the verified key; the contact must be verified
    /// again.
    Unverify {
        /// Why, for the warning shown to the user.
        note: String,
    },
}

/// Client-side state for one server's log.
#[derive(Debug, Clone)]
pub struct Verifier {
    log_key: SignPublicKey,
    operators: BTreeMap<String, SignPublicKey>,
    head: Option<SignedTreeHead>,
    chains: BTreeMap<String, UserChain>,
}

impl Verifier {
    /// A verifier for the server whose tree heads `log_key` signs, trusting operator
    /// blocks only from `operators` (id → key, pinned by configuration).
    pub fn new(log_key: SignPublicKey, operators: BTreeMap<String, SignPublicKey>) -> Self {
        Self {
            log_key,
            operators,
            head: None,
            chains: BTreeMap::new(),
        }
    }

    /// Restores the last head accepted from this server (e.g. from the client's store).
    pub fn restore_head(&mut self, head: SignedTreeHead) -> Result<(), TrustError> {
        head.verify(&self.log_key)?;
        self.head = Some(head);
        Ok(())
    }

    /// The last head accepted.
    pub fn head(&self) -> Option<&SignedTreeHead> {
        self.head.as_ref()
    }

    /// The server's log key.
    pub fn log_key(&self) -> &SignPublicKey {
        &self.log_key
    }

    /// Accepts `new` if it is signed by the log key and `proof` shows it extends the head
    /// held (the first head is taken on first use).
    pub fn update_head(&mut self, new: &SignedTreeHead, proof: &[Hash]) -> Result<(), TrustError> {
        new.verify(&self.log_key)?;
        if let Some(old) = &self.head {
            if new.size < old.size {
                return Err(TrustError::HeadRollback {
                    seen: old.size,
                    offered: new.size,
                });
            }
            if new.size == old.size && new.root != old.root {
                return Err(TrustError::ForkDetected {
                    old_size: old.size,
                    new_size: new.size,
                });
            }
            verify_consistency(old.size, new.size, proof, &old.root, &new.root)?;
        }
        self.head = Some(*new);
        Ok(())
    }

    /// Compares the held head with one another client saw of the same server (gossip, a
    /// saved head file), given a consistency proof between them.
    pub fn compare_head(&self, other: &SignedTreeHead, proof: &[Hash]) -> Result<(), TrustError> {
        let mine = self.head.as_ref().ok_or(TrustError::NoTreeHead)?;
        check_heads(mine, other, proof, &self.log_key)
    }

    /// Checks a user's whole chain as served (every block with its inclusion proof under
    /// the held head) and records it.
    pub fn verify_chain(
        &mut self,
        user_id: &str,
        entries: &[LoggedBlock],
    ) -> Result<&UserChain, TrustError> {
        let head = self.head.ok_or(TrustError::NoTreeHead)?;
        // Log order first: the log, not the answer, decides the order of events.
        if let Some(pair) = entries.windows(2).find(|w| w[1].index <= w[0].index) {
            return Err(TrustError::LogOrder {
                user_id: user_id.to_owned(),
                index: pair[1].index,
            });
        }
        let mut chain = UserChain::new(user_id);
        for entry in entries {
            verify_inclusion(
                &entry.block.hash(),
                entry.index,
                head.size,
                &entry.proof,
                &head.root,
            )?;
            chain.apply(&entry.block, &self.operators)?;
        }
        if chain.is_empty() {
            return Err(TrustError::UnknownChain {
                user_id: user_id.to_owned(),
            });
        }
        if let Some(seen) = self.chains.get(user_id) {
            check_extends(seen, &chain)?;
        }
        self.chains.insert(user_id.to_owned(), chain);
        Ok(&self.chains[user_id])
    }

    /// Restores a chain this client checked before (from its store), replaying its blocks
    /// by the rules of [`crate::chain`] without inclusion proofs (they were checked when it
    /// was first accepted). A chain served later must extend it.
    pub fn restore_chain(
        &mut self,
        user_id: &str,
        blocks: &[Block],
    ) -> Result<&UserChain, TrustError> {
        let mut chain = UserChain::new(user_id);
        for block in blocks {
            chain.apply(block, &self.operators)?;
        }
        self.chains.insert(user_id.to_owned(), chain);
        Ok(&self.chains[user_id])
    }

    /// A chain checked before.
    pub fn chain(&self, user_id: &str) -> Option<&UserChain> {
        self.chains.get(user_id)
    }

    /// The user's checked chain, or [`TrustError::UnknownChain`]: what every key check
    /// starts from.
    fn known_chain(&self, user_id: &str) -> Result<&UserChain, TrustError> {
        self.chains
            .get(user_id)
            .ok_or_else(|| TrustError::UnknownChain {
                user_id: user_id.to_owned(),
            })
    }

    /// Before encrypting to (or trusting a signature by) these keys: are they the user's
    /// current, unrevoked keys in the checked chain?
    pub fn check_key(
        &self,
        user_id: &str,
        sign_key: &SignPublicKey,
        box_key: &[u8; 32],
    ) -> Result<&KeyGeneration, TrustError> {
        let chain = self.known_chain(user_id)?;
        let matches = |g: &&KeyGeneration| g.sign_key == *sign_key && g.box_key == *box_key;
        match chain.generations.last() {
            Some(last) if matches(&last) => match &last.revoked {
                None => Ok(last),
                Some(_) => Err(TrustError::KeyRevoked {
                    user_id: user_id.to_owned(),
                    version: last.version,
                }),
            },
            _ => match chain.generations.iter().find(matches) {
                Some(old) => Err(TrustError::StaleKey {
                    user_id: user_id.to_owned(),
                    version: old.version,
                }),
                None => Err(TrustError::KeyNotInLog {
                    user_id: user_id.to_owned(),
                }),
            },
        }
    }

    /// Was the change from the Sign Key the user verified to the current keys authorised
    /// by that key?
    pub fn judge_change(
        &self,
        user_id: &str,
        verified_sign_key: &SignPublicKey,
    ) -> Result<ChangeVerdict, TrustError> {
        let chain = self.known_chain(user_id)?;
        Ok(judge(chain, verified_sign_key))
    }
}

/// The rule of [`Verifier::judge_change`] on one replayed chain.
pub fn judge(chain: &UserChain, verified_sign_key: &SignPublicKey) -> ChangeVerdict {
    let gens = &chain.generations;
    let Some(start) = gens.iter().position(|g| g.sign_key == *verified_sign_key) else {
        return ChangeVerdict::Unverify {
            note: "the key you verified is not in this user's chain".into(),
        };
    };
    let revoked_note = |g: &KeyGeneration| match &g.revoked {
        Some(RevokedBy::Operator(op)) => Some(format!(
            "keys version {} were revoked by operator {op}",
            g.version
        )),
        Some(RevokedBy::User) => Some(format!("keys version {} were revoked", g.version)),
        None => None,
    };
    if start + 1 == gens.len() {
        return match revoked_note(&gens[start]) {
            Some(note) => ChangeVerdict::Unverify { note },
            None => ChangeVerdict::Unchanged,
        };
    }
    for i in start + 1..gens.len() {
        let (before, g) = (&gens[i - 1], &gens[i]);
        // An operator's revocation breaks the line; the user's own revocation (a lost
        // device) may be followed by keys their recovery key signs.
        if matches!(before.revoked, Some(RevokedBy::Operator(_))) {
            if let Some(note) = revoked_note(before) {
                return ChangeVerdict::Unverify { note };
            }
        }
        let ok = match g.authorised_by {
            Authorisation::PreviousKey => g.signer == before.sign_key,
            // A recovery key vouches only if a key in the verified line set it.
            Authorisation::RecoveryKey => chain
                .recovery_key
                .is_some_and(|(k, set_by)| k == g.signer && set_by >= gens[start].version),
            Authorisation::Creation | Authorisation::SelfSigned => false,
        };
        if !ok {
            return ChangeVerdict::Unverify {
                note: format!(
                    "keys version {} are not signed by the key you verified (a new device without the old one, or keys substituted by the server)",
                    g.version
                ),
            };
        }
    }
    let last = &gens[gens.len() - 1];
    if let Some(note) = revoked_note(last) {
        return ChangeVerdict::Unverify { note };
    }
    ChangeVerdict::KeepVerified {
        note: format!(
            "the change to keys version {} is signed by the key you verified",
            last.version
        ),
    }
}

/// A newly served chain must extend the one seen before: same blocks, possibly more.
fn check_extends(seen: &UserChain, now: &UserChain) -> Result<(), TrustError> {
    let user_id = seen.user_id.clone();
    if now.len() < seen.len() {
        let seen_revoked = seen.generations.last().is_some_and(|g| g.revoked.is_some());
        let now_revoked = now.generations.last().is_some_and(|g| g.revoked.is_some());
        return Err(if seen_revoked && !now_revoked {
            TrustError::RevocationMissing { user_id }
        } else {
            TrustError::ChainRollback {
                user_id,
                seen: seen.len(),
                offered: now.len(),
            }
        });
    }
    if let Some(seq) = seen
        .block_hashes
        .iter()
        .zip(&now.block_hashes)
        .position(|(a, b)| a != b)
    {
        return Err(TrustError::ChainRewritten {
            user_id,
            seq: seq as u64,
        });
    }
    Ok(())
}

/// Audits a whole log as downloaded: recomputes the root of `blocks` against `head` and
/// replays every user's chain. Returns the chains, so that a chain a server serves can be
/// compared with what the log really holds.
pub fn audit_log(
    blocks: &[Block],
    head: &SignedTreeHead,
    log_key: &SignPublicKey,
    operators: &BTreeMap<String, SignPublicKey>,
) -> Result<BTreeMap<String, UserChain>, TrustError> {
    head.verify(log_key)?;
    let log = MerkleLog::from_leaf_hashes(blocks.iter().map(Block::hash));
    if log.size() != head.size || log.root() != head.root {
        return Err(TrustError::RootMismatch { size: head.size });
    }
    let mut chains: BTreeMap<String, UserChain> = BTreeMap::new();
    for block in blocks {
        chains
            .entry(block.body.user_id.clone())
            .or_insert_with(|| UserChain::new(&block.body.user_id))
            .apply(block, operators)?;
    }
    Ok(chains)
}
