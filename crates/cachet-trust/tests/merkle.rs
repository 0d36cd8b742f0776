//! RFC 9162 hashing against the Certificate Transparency test vectors and a naive
//! reference, and proofs against random trees.
#![allow(clippy::unwrap_used)]

use cachet_trust::merkle::{
    empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, MerkleLog,
};
use proptest::prelude::*;

/// The eight leaves of the Certificate Transparency reference tests.
fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

/// The Certificate Transparency reference tree's roots, for 1 to 8 leaves.
const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// RFC 9162 2.1.1, written as the definition reads.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        hex::encode(MerkleLog::new().root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn roots_match_the_certificate_transparency_vectors() {
    let mut log = MerkleLog::new();
    for (i, leaf) in ct_leaves().iter().enumerate() {
        log.append(leaf);
        assert_eq!(
            hex::encode(log.root()),
            CT_ROOTS[i],
            "root of {} leaves",
            i + 1
        );
    }
    for (i, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(log.root_at(i as u64 + 1).unwrap()), *want);
    }
}

#[test]
fn known_inclusion_and_consistency_proofs() {
    // Known answers from the Certificate Transparency reference tests.
    let mut log = MerkleLog::new();
    for leaf in ct_leaves() {
        log.append(&leaf);
    }
    let path = log.inclusion_proof(0, 8).unwrap();
    assert_eq!(in_hex(&path), CT_PATH_0_IN_8);
    // From size 1, the consistency proof is leaf 0's inclusion path.
    let proof = log.consistency_proof(1, 8).unwrap();
    assert_eq!(in_hex(&proof), CT_PATH_0_IN_8);
    let proof = log.consistency_proof(6, 8).unwrap();
    assert_eq!(in_hex(&proof), CT_CONSISTENCY_6_TO_8);
}

/// The inclusion path of leaf 0 in the tree of the 8 reference leaves.
const CT_PATH_0_IN_8: [&str; 3] = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
];

/// The consistency proof from 6 to 8 reference leaves.
const CT_CONSISTENCY_6_TO_8: [&str; 3] = [
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
];

/// Proof hashes in hex, to compare with the reference answers.
fn in_hex(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(hex::encode).collect()
}

#[test]
fn edge_cases_are_refused_not_panics() {
    let mut log = MerkleLog::new();
    assert!(log.inclusion_proof(0, 0).is_err());
    log.append(b"a");
    assert!(log.inclusion_proof(1, 1).is_err());
    assert!(log.inclusion_proof(0, 2).is_err());
    assert!(log.consistency_proof(2, 1).is_err());
    let root = log.root();
    verify_inclusion(&leaf_hash(b"a"), 0, 1, &[], &root).unwrap();
    assert!(verify_inclusion(&leaf_hash(b"a"), 1, 1, &[], &root).is_err());
    assert!(verify_inclusion(&leaf_hash(b"a"), 0, 0, &[], &root).is_err());
    verify_consistency(0, 1, &[], &empty_root(), &root).unwrap();
    verify_consistency(1, 1, &[], &root, &root).unwrap();
    assert!(verify_consistency(1, 1, &[root], &root, &root).is_err());
    assert!(verify_consistency(1, 2, &[], &root, &root).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn root_matches_the_definition(n in 0usize..200) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect();
        let log = MerkleLog::from_leaf_hashes(leaves.iter().copied());
        prop_assert_eq!(log.root(), naive_root(&leaves));
        for m in 0..=n {
            prop_assert_eq!(log.root_at(m as u64).unwrap(), naive_root(&leaves[..m]));
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails(n in 1u64..300, seed in any::<u64>(), flip in any::<u8>()) {
        let log = MerkleLog::from_leaf_hashes((0..n).map(|i| leaf_hash(&i.to_be_bytes())));
        let size = 1 + seed % n;
        let index = (seed / 7) % size;
        let root = log.root_at(size).unwrap();
        let leaf = log.leaf(index).unwrap();
        let proof = log.inclusion_proof(index, size).unwrap();
        prop_assert!(proof.len() <= 64 - (size.leading_zeros() as usize) + 1);
        verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        // Another index, a flipped bit, a missing or extra hash: refused.
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
        }
        // (The same path can verify for a neighbouring size with the same root; the size
        // is bound to the root by the signed tree head, not by the path.)
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = flip as usize % bad.len();
            bad[i][flip as usize % 32] ^= 1 << (flip % 8);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &proof[1..], &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails(n in 1u64..300, a in any::<u64>(), b in any::<u64>(), flip in any::<u8>()) {
        let log = MerkleLog::from_leaf_hashes((0..n).map(|i| leaf_hash(&i.to_be_bytes())));
        let new = 1 + b % n;
        let old = a % (new + 1);
        let (old_root, new_root) = (log.root_at(old).unwrap(), log.root_at(new).unwrap());
        let proof = log.consistency_proof(old, new).unwrap();
        verify_consistency(old, new, &proof, &old_root, &new_root).unwrap();
        if old > 0 && old < new {
            let mut bad = proof.clone();
            let i = flip as usize % bad.len();
            bad[i][flip as usize % 32] ^= 1 << (flip % 8);
            prop_assert!(verify_consistency(old, new, &bad, &old_root, &new_root).is_err());
            // A tree that rewrote one of the old leaves is not consistent.
            let mut forked: Vec<Hash> = (0..new).map(|i| log.leaf(i).unwrap()).collect();
            forked[(a % old) as usize] = leaf_hash(b"rewritten");
            let forked = MerkleLog::from_leaf_hashes(forked);
            let fproof = forked.consistency_proof(old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &fproof, &old_root, &forked.root()).is_err());
            prop_assert!(verify_consistency(old, new, &proof, &old_root, &forked.root()).is_err());
        }
    }
}
