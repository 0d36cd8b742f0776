//! Replays the fuzz corpus and seeds of the `trust_block` and `signed_tree_head` targets
//! (`fuzz/corpus/<target>/`, `fuzz/seeds/<target>/`) through the same parsers and checks
//! the fuzz targets run, so every input a fuzzer once found interesting stays a test.
//! Set `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the seeds with the real encoders.
#![allow(clippy::unwrap_used)]

use std::fs;

use cachet_crypto::SignKeyPair;
use cachet_trust::fuzzing::{check_signed_tree_head, check_trust_block, TREE_HEAD_KEY_SEED};
use cachet_trust::{Author, Block, BlockBody, Event, Scope, SignedTreeHead};

include!("../../../fuzz/replay.rs");

fn seed_blocks() -> Vec<(&'static str, Block)> {
    let user = SignKeyPair::from_seed([1; 32]);
    let next = SignKeyPair::from_seed([2; 32]);
    let operator = SignKeyPair::from_seed([3; 32]);
    let body = |seq: u64, event: Event, author: Author| BlockBody {
        user_id: "u_alice".into(),
        seq,
        prev: if seq == 0 { [0; 32] } else { [seq as u8; 32] },
        timestamp_ms: 1_790_000_000_000 + seq as i64,
        event,
        author,
    };
    vec![
        (
            "user-created",
            body(
                0,
                Event::UserCreated {
                    box_key: [4; 32],
                    sign_key: *user.public().as_bytes(),
                },
                Author::Key(user.public()),
            )
            .sign(&user),
        ),
        (
            "keys-added",
            body(
                1,
                Event::KeysAdded {
                    key_version: 2,
                    box_key: [5; 32],
                    sign_key: *next.public().as_bytes(),
                },
                Author::Key(user.public()),
            )
            .sign(&user),
        ),
        (
            "recovery-key-set",
            body(
                2,
                Event::RecoveryKeySet {
                    recovery_key: [6; 32],
                },
                Author::Key(next.public()),
            )
            .sign(&next),
        ),
        (
            "keys-revoked-by-operator",
            body(
                3,
                Event::KeysRevoked { key_version: 2 },
                Author::Operator {
                    id: "op:alice".into(),
                    key: operator.public(),
                },
            )
            .sign(&operator),
        ),
        (
            "profile-verified",
            body(
                4,
                Event::ProfileVerified,
                Author::Operator {
                    id: "op:alice".into(),
                    key: operator.public(),
                },
            )
            .sign(&operator),
        ),
        (
            "membership-changed",
            body(
                5,
                Event::MembershipChanged {
                    scope: Scope::Case,
                    id: "case-1".into(),
                    member_id: "u_bob".into(),
                    added: true,
                },
                Author::Key(next.public()),
            )
            .sign(&next),
        ),
    ]
}

fn seed_head() -> SignedTreeHead {
    SignedTreeHead::sign(
        6,
        [7; 32],
        1_790_000_000_000,
        &SignKeyPair::from_seed(TREE_HEAD_KEY_SEED),
    )
}

fn write_seeds() {
    for (name, block) in seed_blocks() {
        write_seed("trust_block", &format!("seed-{name}"), block.to_bytes());
    }
    write_seed("signed_tree_head", "seed-head", seed_head().to_bytes());
}

#[test]
fn corpus_replays_without_panic() {
    if writing_seeds() {
        write_seeds();
    }
    assert!(replay("trust_block", check_trust_block) >= seed_blocks().len());
    assert!(replay("signed_tree_head", check_signed_tree_head) > 0);
}

#[test]
fn seeds_are_the_encoders_output_and_verify() {
    for (name, block) in seed_blocks() {
        let seed = fs::read(fuzz_folder("seeds", "trust_block").join(format!("seed-{name}")))
            .expect("seed committed");
        assert_eq!(seed, block.to_bytes(), "{name}");
        let parsed = Block::from_bytes(&seed).unwrap();
        assert_eq!(parsed, block);
        parsed.verify_signature().unwrap();
    }
    let seed = fs::read(fuzz_folder("seeds", "signed_tree_head").join("seed-head")).unwrap();
    let head = SignedTreeHead::from_bytes(&seed).unwrap();
    assert_eq!(head, seed_head());
    head.verify(&SignKeyPair::from_seed(TREE_HEAD_KEY_SEED).public())
        .unwrap();
}
