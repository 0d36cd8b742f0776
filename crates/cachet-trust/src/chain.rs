//! A user's chain, replayed rule by rule.
//!
//! Rules (each block's signature is checked first, under the key its author names):
//!
//! * seq 0 is [`Event::UserCreated`], self-signed by its own Sign Key; no other block is.
//! * Every later block has `seq` = previous + 1 and `prev` = the previous block's hash.
//! * [`Event::KeysAdded`] has key version = last version + 1 and is signed by the current,
//!   unrevoked Sign Key ([`Authorisation::PreviousKey`]), by the recovery key
//!   ([`Authorisation::RecoveryKey`]), or by its own new Sign Key
//!   ([`Authorisation::SelfSigned`]: a lost device; valid, but authorised by nobody the
//!   contacts know).
//! * [`Event::RecoveryKeySet`] and [`Event::MembershipChanged`] are signed by the current,
//!   unrevoked Sign Key.
//! * [`Event::KeysRevoked`] names the current version and is signed by the current Sign
//!   Key, the recovery key, or a pinned operator.
//! * [`Event::ProfileVerified`] is signed by a pinned operator.
//!
//! Operators sign with their own key, and an operator block is accepted only when the
//! operator id is pinned with exactly that key, so an operator action is attributable and
//! a server cannot forge one.

use std::collections::BTreeMap;

use cachet_crypto::SignPublicKey;

use crate::block::{Author, Block, Event};
use crate::merkle::Hash;
use crate::TrustError;

/// How a key generation was authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorisation {
    /// The first keys, self-signed at registration.
    Creation,
    /// Signed by the Sign Key of the generation before.
    PreviousKey,
    /// Signed by the user's recovery key.
    RecoveryKey,
    /// Signed only by the new key itself (a device lost with its keys, or a key the server
    /// made up): nobody who knew the old keys vouches for it.
    SelfSigned,
}

/// Who revoked a key generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokedBy {
    /// The user, with their Sign Key or recovery key.
    User,
    /// The named operator.
    Operator(String),
}

/// One generation of a user's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGeneration {
    /// Key version, from 1.
    pub version: u32,
    /// X25519 Box Key.
    pub box_key: [u8; 32],
    /// Ed25519 Sign Key.
    pub sign_key: SignPublicKey,
    /// How it came to be.
    pub authorised_by: Authorisation,
    /// The Sign Key that signed it.
    pub signer: SignPublicKey,
    /// Set once revoked.
    pub revoked: Option<RevokedBy>,
    /// Position of the block that added it in the user's chain.
    pub seq: u64,
}

/// The state of one user's chain after replaying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChain {
    /// The user.
    pub user_id: String,
    /// Hashes of the blocks replayed, in chain order.
    pub block_hashes: Vec<Hash>,
    /// Every key generation, oldest first.
    pub generations: Vec<KeyGeneration>,
    /// The current recovery key and the key version that set it.
    pub recovery_key: Option<(SignPublicKey, u32)>,
    /// Operators who verified the profile.
    pub verified_by: Vec<String>,
}

impl UserChain {
    /// The current keys, if any and not revoked.
    pub fn current(&self) -> Option<&KeyGeneration> {
        self.generations.last().filter(|g| g.revoked.is_none())
    }

    /// Number of blocks replayed.
    pub fn len(&self) -> u64 {
        self.block_hashes.len() as u64
    }

    /// True before the creation block.
    pub fn is_empty(&self) -> bool {
        self.block_hashes.is_empty()
    }

    /// Starts an empty chain for `user_id`.
    pub fn new(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            block_hashes: Vec::new(),
            generations: Vec::new(),
            recovery_key: None,
            verified_by: Vec::new(),
        }
    }

    /// Replays one block, checking every rule. `operators` are the pinned operator keys.
    pub fn apply(
        &mut self,
        block: &Block,
        operators: &BTreeMap<String, SignPublicKey>,
    ) -> Result<(), TrustError> {
        let body = &block.body;
        let user_id = &self.user_id;
        let seq = body.seq;
        if body.user_id != *user_id {
            return Err(TrustError::WrongUser {
                expected: user_id.clone(),
                found: body.user_id.clone(),
            });
        }
        let hash = block.hash();
        if self.block_hashes.contains(&hash) {
            return Err(TrustError::Replay {
                user_id: user_id.clone(),
                seq,
            });
        }
        if seq != self.len() {
            return Err(TrustError::OutOfOrder {
                user_id: user_id.clone(),
                expected: self.len(),
                found: seq,
            });
        }
        let expected_prev = self.block_hashes.last().copied().unwrap_or([0u8; 32]);
        if body.prev != expected_prev {
            return Err(TrustError::BrokenLink {
                user_id: user_id.clone(),
                seq,
            });
        }
        block.verify_signature()?;

        let refuse = |why: &'static str| TrustError::UnauthorisedAuthor {
            user_id: user_id.clone(),
            seq,
            why,
        };
        // An operator block must come from a pinned operator with exactly that key.
        let operator = match &body.author {
            Author::Operator { id, key } => match operators.get(id) {
                Some(pinned) if pinned == key => Some(id.clone()),
                // A profile verification by an operator this client does not pin proves
                // nothing to it and takes nothing away: it stays in the chain, unheeded.
                _ if matches!(body.event, Event::ProfileVerified) && seq != 0 => {
                    self.block_hashes.push(hash);
                    return Ok(());
                }
                _ => {
                    return Err(TrustError::UnknownOperator {
                        operator: id.clone(),
                    })
                }
            },
            Author::Key(_) => None,
        };
        let author_key = *body.author.key();
        let current_sign = self.current().map(|g| g.sign_key);
        let by_current = operator.is_none() && current_sign == Some(author_key);
        let by_recovery =
            operator.is_none() && self.recovery_key.map(|(k, _)| k) == Some(author_key);

        match &body.event {
            Event::UserCreated { box_key, sign_key } => {
                if seq != 0 {
                    return Err(refuse("user creation after the chain started"));
                }
                if operator.is_some() || author_key.as_bytes() != sign_key {
                    return Err(refuse("user creation must be self-signed"));
                }
                self.generations.push(KeyGeneration {
                    version: 1,
                    box_key: *box_key,
                    sign_key: SignPublicKey(*sign_key),
                    authorised_by: Authorisation::Creation,
                    signer: author_key,
                    revoked: None,
                    seq,
                });
            }
            _ if seq == 0 => return Err(refuse("a chain must start with user creation")),
            Event::KeysAdded {
                key_version,
                box_key,
                sign_key,
            } => {
                let last = self.generations.last().map_or(0, |g| g.version);
                if *key_version != last + 1 {
                    return Err(TrustError::OutOfOrder {
                        user_id: user_id.clone(),
                        expected: u64::from(last) + 1,
                        found: u64::from(*key_version),
                    });
                }
                let authorised_by = if by_current {
                    Authorisation::PreviousKey
                } else if by_recovery {
                    Authorisation::RecoveryKey
                } else if operator.is_none() && author_key.as_bytes() == sign_key {
                    Authorisation::SelfSigned
                } else {
                    return Err(refuse(
                        "new keys signed by neither the current key, the recovery key nor themselves",
                    ));
                };
                // The replaced generation stops being current; it is not "revoked".
                self.generations.push(KeyGeneration {
                    version: *key_version,
                    box_key: *box_key,
                    sign_key: SignPublicKey(*sign_key),
                    authorised_by,
                    signer: author_key,
                    revoked: None,
                    seq,
                });
            }
            Event::RecoveryKeySet { recovery_key } => {
                if !by_current {
                    return Err(refuse("recovery key not set by the current sign key"));
                }
                let version = self.current().map_or(0, |g| g.version);
                self.recovery_key = Some((SignPublicKey(*recovery_key), version));
            }
            Event::KeysRevoked { key_version } => {
                let current = self
                    .current()
                    .ok_or_else(|| refuse("no current keys to revoke"))?;
                if current.version != *key_version {
                    return Err(refuse("revocation names another key version"));
                }
                let by = match operator {
                    Some(op) => RevokedBy::Operator(op),
                    None if by_current || by_recovery => RevokedBy::User,
                    None => return Err(refuse("revocation by neither the user nor an operator")),
                };
                if let Some(g) = self.generations.last_mut() {
                    g.revoked = Some(by);
                }
            }
            Event::ProfileVerified => match operator {
                Some(op) => self.verified_by.push(op),
                None => return Err(refuse("profile verification by a non-operator")),
            },
            Event::MembershipChanged { .. } => {
                if !by_current {
                    return Err(refuse("membership change not signed by the current key"));
                }
            }
        }
        self.block_hashes.push(hash);
        Ok(())
    }
}
