//! Signed tree heads: the server's signed statement "the log had `size` blocks with this
//! root at this time".
//!
//! Encoding (74 + 64 bytes): `version u8 = 1 ‖ size u64 ‖ root [32] ‖ timestamp_ms i64 ‖
//! signature [64]`, big-endian; the signature is Ed25519 by the server's log key over
//! `"cachet-trust-sth-v1" ‖ 0x00` followed by the first 49 bytes.

use cachet_crypto::{sign, SignKeyPair, SignPublicKey};

use crate::merkle::{verify_consistency, Hash};
use crate::TrustError;

const SIGN_CONTEXT: &[u8] = b"cachet-trust-sth-v1\0";
const VERSION: u8 = 1;
/// Length of an encoded [`SignedTreeHead`].
pub const STH_LEN: usize = 1 + 8 + 32 + 8 + 64;

/// A tree head signed by a server's log key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// Number of blocks in the log.
    pub size: u64,
    /// RFC 9162 Merkle tree hash of those blocks.
    pub root: Hash,
    /// The server's clock when it signed, ms since the epoch.
    pub timestamp_ms: i64,
    /// Ed25519 by the log key.
    pub signature: [u8; 64],
}

fn signed_part(size: u64, root: &Hash, timestamp_ms: i64) -> Vec<u8> {
    let mut out = SIGN_CONTEXT.to_vec();
    out.push(VERSION);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(root);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out
}

impl SignedTreeHead {
    /// Signs a head with the server's log key.
    pub fn sign(size: u64, root: Hash, timestamp_ms: i64, key: &SignKeyPair) -> Self {
        let signature = sign::sign_detached(&signed_part(size, &root, timestamp_ms), key);
        Self {
            size,
            root,
            timestamp_ms,
            signature,
        }
    }

    /// Checks the signature under the server's log key.
    pub fn verify(&self, log_key: &SignPublicKey) -> Result<(), TrustError> {
        sign::verify_detached(
            &signed_part(self.size, &self.root, self.timestamp_ms),
            &self.signature,
            log_key,
        )
        .map_err(|_| TrustError::TreeHeadSignatureInvalid { size: self.size })
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STH_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the canonical encoding (exactly [`STH_LEN`] bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() != STH_LEN || bytes[0] != VERSION {
            return Err(TrustError::Malformed(
                "tree head must be 113 bytes, version 1",
            ));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[1..9]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[9..41]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[41..49]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[49..]);
        Ok(Self {
            size: u64::from_be_bytes(size),
            root,
            timestamp_ms: i64::from_be_bytes(ts),
            signature,
        })
    }
}

/// Compares two signed heads of one server, e.g. the ones two clients saw, given a
/// consistency proof from the smaller to the larger. Two valid signatures over heads that
/// do not extend one another are the server's signed proof of a fork.
pub fn check_heads(
    a: &SignedTreeHead,
    b: &SignedTreeHead,
    proof: &[Hash],
    log_key: &SignPublicKey,
) -> Result<(), TrustError> {
    a.verify(log_key)?;
    b.verify(log_key)?;
    let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
    if old.size == new.size {
        return if old.root == new.root {
            Ok(())
        } else {
            Err(TrustError::ForkDetected {
                old_size: old.size,
                new_size: new.size,
            })
        };
    }
    verify_consistency(old.size, new.size, proof, &old.root, &new.root).map_err(|_| {
        TrustError::ForkDetected {
            old_size: old.size,
            new_size: new.size,
        }
    })
}
