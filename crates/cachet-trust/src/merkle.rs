//! The append-only Merkle log of RFC 9162 (Certificate Transparency v2), section 2.1.
//!
//! Leaves are hashed as `SHA-256(0x00 ‖ leaf)` and interior nodes as
//! `SHA-256(0x01 ‖ left ‖ right)`; a tree of `n` leaves splits at the largest power of two
//! below `n`. The empty tree's root is `SHA-256("")`. Proof generation and verification
//! follow the RFC's algorithms (2.1.3 and 2.1.4) step by step.
//!
//! [`MerkleLog`] keeps every complete, aligned subtree hash (about two hashes per leaf), so
//! appending costs one leaf hash plus amortised one node hash, and the root and every
//! proof cost O(log n) hashes.

use sha2::{Digest, Sha256};

use crate::TrustError;

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ leaf)`: the hash of a leaf (RFC 9162 2.1.1).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (`n` ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree over leaf hashes.
#[derive(Debug, Clone, Default)]
pub struct MerkleLog {
    /// `levels[h][i]` is the hash of the complete subtree over leaves
    /// `[i·2^h, (i+1)·2^h)`; `levels[0]` holds the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a log from leaf hashes, oldest first.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut log = Self::new();
        for leaf in leaves {
            log.push_leaf_hash(leaf);
        }
        log
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf (hashing it) and returns its index.
    pub fn append(&mut self, leaf: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(leaf))
    }

    /// Appends an already hashed leaf and returns its index.
    pub fn push_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.size();
        let mut level = 0;
        let mut carry = hash;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(carry);
            let len = self.levels[level].len();
            // An even count completes a subtree one level up.
            if !len.is_multiple_of(2) {
                break;
            }
            carry = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
        index
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The root of the whole log.
    pub fn root(&self) -> Hash {
        self.root_at(self.size()).unwrap_or_else(|_| empty_root())
    }

    /// The root of the first `size` leaves (an earlier version of the log).
    pub fn root_at(&self, size: u64) -> Result<Hash, TrustError> {
        if size > self.size() {
            return Err(TrustError::TreeTooSmall {
                requested: size,
                size: self.size(),
            });
        }
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.subtree(0, size))
    }

    /// MTH of leaves `[lo, hi)`, where `lo` is aligned to the largest power of two
    /// below `hi - lo` (always true for the ranges RFC 9162 splits into).
    fn subtree(&self, lo: u64, hi: u64) -> Hash {
        let len = hi - lo;
        if len.is_power_of_two() && lo.is_multiple_of(len) {
            let h = len.trailing_zeros() as usize;
            return self.levels[h][(lo >> h) as usize];
        }
        let k = split_point(len);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// The audit path of leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 2.1.3.1).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TrustError> {
        if size > self.size() {
            return Err(TrustError::TreeTooSmall {
                requested: size,
                size: self.size(),
            });
        }
        if index >= size {
            return Err(TrustError::IndexOutOfRange { index, size });
        }
        let mut path = Vec::new();
        self.path(index, 0, size, &mut path);
        Ok(path)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let len = hi - lo;
        if len == 1 {
            return;
        }
        let k = split_point(len);
        if m < lo + k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and `new` leaves
    /// (RFC 9162 2.1.4.1). Empty when `old` is 0 or equals `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TrustError> {
        if new > self.size() {
            return Err(TrustError::TreeTooSmall {
                requested: new,
                size: self.size(),
            });
        }
        if old > new {
            return Err(TrustError::IndexOutOfRange {
                index: old,
                size: new,
            });
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<Hash>) {
        let len = hi - lo;
        if m == len {
            if !complete {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split_point(len);
        if m <= k {
            self.subproof(m, lo, lo + k, complete, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }
}

/// Checks that `leaf` (a leaf hash) sits at `index` in the tree of `size` leaves whose root
/// is `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TrustError> {
    let fail = || TrustError::InclusionProofInvalid { index, size };
    if index >= size {
        return Err(fail());
    }
    let mut r = *leaf;
    let walked = climb(index, size - 1, proof, |p, on_left| {
        r = if on_left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    });
    if walked && r == *root {
        Ok(())
    } else {
        Err(fail())
    }
}

/// The walk up the tree that both proof checks of RFC 9162 (2.1.3.2, 2.1.4.2) share:
/// calls `combine` with each proof hash and whether it sits on the left, as `fnode` and
/// `snode` climb; false if the proof is longer than the path to the root or ends short of it.
fn climb(
    mut fnode: u64,
    mut snode: u64,
    proof: &[Hash],
    mut combine: impl FnMut(&Hash, bool),
) -> bool {
    for p in proof {
        if snode == 0 {
            return false;
        }
        let on_left = fnode & 1 == 1 || fnode == snode;
        combine(p, on_left);
        if on_left && fnode & 1 == 0 {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old`
/// leaves with root `old_root` (RFC 9162 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), TrustError> {
    let fail = || TrustError::ConsistencyProofInvalid { old, new };
    if old > new {
        return Err(fail());
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(fail())
        };
    }
    if old == 0 {
        // Every tree extends the empty one; the RFC defines no proof for it.
        return if proof.is_empty() && *old_root == empty_root() {
            Ok(())
        } else {
            Err(fail())
        };
    }
    if proof.is_empty() {
        return Err(fail());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    let walked = climb(fnode, snode, &path[1..], |c, on_left| {
        if on_left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    });
    if walked && fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(fail())
    }
}
