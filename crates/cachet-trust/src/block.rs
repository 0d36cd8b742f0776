//! Identity blocks and their canonical byte encoding.
//!
//! A block is one identity event of one user's chain, signed by its author. Its bytes are
//! `body ‖ signature`, where `signature` is Ed25519 over
//! `"cachet-trust-block-v1" ‖ 0x00 ‖ body` and `body` is, in order (integers big-endian,
//! strings as a 2-byte length then UTF-8, keys as 32 raw bytes):
//!
//! ```text
//! version      u8     = 1
//! user_id      str    the chain the block belongs to
//! seq          u64    position in the user's chain, 0 = creation
//! prev         [32]   hash of the user's previous block, zeros for seq 0
//! timestamp_ms i64    the author's clock (informative; the log gives the order)
//! event        u8 tag, then its fields (see Event)
//! author       u8 tag, then its fields (see Author)
//! ```
//!
//! A block's hash is its Merkle leaf hash, `SHA-256(0x00 ‖ bytes)`: the same value links
//! blocks of one chain and places them in the log.

use cachet_crypto::{sign, SignKeyPair, SignPublicKey};

use crate::merkle::{leaf_hash, Hash};
use crate::TrustError;

/// Domain separation of block signatures from every other Ed25519 use in cachet.
const SIGN_CONTEXT: &[u8] = b"cachet-trust-block-v1\0";
/// Encoding version.
const VERSION: u8 = 1;
/// Longest user, operator, group or case id accepted.
pub const MAX_ID_LEN: usize = 256;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

/// Which kind of membership a [`Event::MembershipChanged`] block changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A group conversation.
    Group,
    /// A patient case.
    Case,
}

/// An identity event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Tag 1: the user's first keys (key version 1); self-signed by `sign_key`.
    UserCreated {
        /// X25519 Box Key.
        box_key: [u8; 32],
        /// Ed25519 Sign Key.
        sign_key: [u8; 32],
    },
    /// Tag 2: a new installation's keys, replacing the current ones.
    KeysAdded {
        /// The new key version (previous + 1).
        key_version: u32,
        /// X25519 Box Key.
        box_key: [u8; 32],
        /// Ed25519 Sign Key.
        sign_key: [u8; 32],
    },
    /// Tag 3: the user's recovery (virtual-device) public key, set by the current Sign Key.
    RecoveryKeySet {
        /// Ed25519 key that may sign a later [`Event::KeysAdded`] after a recovery.
        recovery_key: [u8; 32],
    },
    /// Tag 4: a key generation revoked, by the user or by an operator.
    KeysRevoked {
        /// The revoked key version (must be the current one).
        key_version: u32,
    },
    /// Tag 5: an operator checked the user's identity.
    ProfileVerified,
    /// Tag 6: the author added or removed a member of a group or case.
    MembershipChanged {
        /// Group or case.
        scope: Scope,
        /// The group or case id.
        id: String,
        /// The member added or removed.
        member_id: String,
        /// Added (true) or removed (false).
        added: bool,
    },
}

/// Who signed a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    /// Tag 1: an Ed25519 key: the user's current Sign Key, their recovery key, or (for
    /// creation and a lost device) the new Sign Key itself. The verifier decides which.
    Key(SignPublicKey),
    /// Tag 2: an operator, with the key the operator signs with.
    Operator {
        /// Operator id, `op:<name>`.
        id: String,
        /// The operator's Ed25519 key; must match the pinned key for `id`.
        key: SignPublicKey,
    },
}

impl Author {
    /// The key the signature verifies under.
    pub fn key(&self) -> &SignPublicKey {
        match self {
            Self::Key(k) | Self::Operator { key: k, .. } => k,
        }
    }
}

/// The unsigned part of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockBody {
    /// The chain this block belongs to.
    pub user_id: String,
    /// Position in the user's chain, 0 = creation.
    pub seq: u64,
    /// Hash of the user's previous block; zeros for seq 0.
    pub prev: Hash,
    /// The author's clock, ms since the epoch.
    pub timestamp_ms: i64,
    /// What happened.
    pub event: Event,
    /// Who signed it.
    pub author: Author,
}

/// A signed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The signed content.
    pub body: BlockBody,
    /// Ed25519 over the signing context and the encoded body, by `body.author`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl BlockBody {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.push(VERSION);
        put_str(&mut out, &self.user_id);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        match &self.event {
            Event::UserCreated { box_key, sign_key } => {
                out.push(1);
                out.extend_from_slice(box_key);
                out.extend_from_slice(sign_key);
            }
            Event::KeysAdded {
                key_version,
                box_key,
                sign_key,
            } => {
                out.push(2);
                out.extend_from_slice(&key_version.to_be_bytes());
                out.extend_from_slice(box_key);
                out.extend_from_slice(sign_key);
            }
            Event::RecoveryKeySet { recovery_key } => {
                out.push(3);
                out.extend_from_slice(recovery_key);
            }
            Event::KeysRevoked { key_version } => {
                out.push(4);
                out.extend_from_slice(&key_version.to_be_bytes());
            }
            Event::ProfileVerified => out.push(5),
            Event::MembershipChanged {
                scope,
                id,
                member_id,
                added,
            } => {
                out.push(6);
                out.push(match scope {
                    Scope::Group => 1,
                    Scope::Case => 2,
                });
                put_str(&mut out, id);
                put_str(&mut out, member_id);
                out.push(u8::from(*added));
            }
        }
        match &self.author {
            Author::Key(k) => {
                out.push(1);
                out.extend_from_slice(k.as_bytes());
            }
            Author::Operator { id, key } => {
                out.push(2);
                put_str(&mut out, id);
                out.extend_from_slice(key.as_bytes());
            }
        }
        out
    }

    /// The bytes the author signs.
    pub fn signing_input(&self) -> Vec<u8> {
        let mut out = SIGN_CONTEXT.to_vec();
        out.extend_from_slice(&self.encode());
        out
    }

    /// Signs the body with `key`, which must be the author's key.
    pub fn sign(self, key: &SignKeyPair) -> Block {
        let signature = sign::sign_detached(&self.signing_input(), key);
        Block {
            body: self,
            signature,
        }
    }
}

impl Block {
    /// `body ‖ signature`: what the log stores.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body.encode();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The block's hash, which is also its Merkle leaf hash.
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }

    /// Checks the author's signature (not whether the author may write this block).
    pub fn verify_signature(&self) -> Result<(), TrustError> {
        sign::verify_detached(
            &self.body.signing_input(),
            &self.signature,
            self.body.author.key(),
        )
        .map_err(|_| TrustError::SignatureInvalid {
            user_id: self.body.user_id.clone(),
            seq: self.body.seq,
        })
    }

    /// Parses the canonical encoding; anything else (trailing bytes, unknown tags,
    /// over-long ids, invalid UTF-8) is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrustError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.u8()? != VERSION {
            return Err(TrustError::Malformed("unknown block version"));
        }
        let user_id = r.str()?;
        let seq = u64::from_be_bytes(r.array()?);
        let prev = r.array()?;
        let timestamp_ms = i64::from_be_bytes(r.array()?);
        let event = match r.u8()? {
            1 => Event::UserCreated {
                box_key: r.array()?,
                sign_key: r.array()?,
            },
            2 => Event::KeysAdded {
                key_version: u32::from_be_bytes(r.array()?),
                box_key: r.array()?,
                sign_key: r.array()?,
            },
            3 => Event::RecoveryKeySet {
                recovery_key: r.array()?,
            },
            4 => Event::KeysRevoked {
                key_version: u32::from_be_bytes(r.array()?),
            },
            5 => Event::ProfileVerified,
            6 => {
                let scope = match r.u8()? {
                    1 => Scope::Group,
                    2 => Scope::Case,
                    _ => return Err(TrustError::Malformed("unknown membership scope")),
                };
                let id = r.str()?;
                let member_id = r.str()?;
                let added = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(TrustError::Malformed("membership flag must be 0 or 1")),
                };
                Event::MembershipChanged {
                    scope,
                    id,
                    member_id,
                    added,
                }
            }
            _ => return Err(TrustError::Malformed("unknown event tag")),
        };
        let author = match r.u8()? {
            1 => Author::Key(SignPublicKey(r.array()?)),
            2 => Author::Operator {
                id: r.str()?,
                key: SignPublicKey(r.array()?),
            },
            _ => return Err(TrustError::Malformed("unknown author tag")),
        };
        let signature = r.array()?;
        if r.pos != bytes.len() {
            return Err(TrustError::Malformed("trailing bytes after the block"));
        }
        Ok(Block {
            body: BlockBody {
                user_id,
                seq,
                prev,
                timestamp_ms,
                event,
                author,
            },
            signature,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Ids are bounded by MAX_ID_LEN when parsed; clamp on write so encoding never panics.
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], TrustError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(TrustError::Malformed("block truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, TrustError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TrustError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn str(&mut self) -> Result<String, TrustError> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        if len == 0 || len > MAX_ID_LEN {
            return Err(TrustError::Malformed("id empty or too long"));
        }
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| TrustError::Malformed("id is not UTF-8"))
    }
}
