//! Cost of the trust log at 10^6 blocks, next to the two primitives it is built from
//! (one SHA-256 of a node, one Ed25519 verification) in the same run.
//!
//! The 10^6-block tree is built once in setup. Sample counts are small so that the run
//! takes about a minute on a two-core machine.

use std::hint::black_box;
use std::time::Duration;

use cachet_crypto::{sign, SignKeyPair};
use cachet_trust::merkle::{leaf_hash, node_hash, verify_consistency, verify_inclusion};
use cachet_trust::{Author, BlockBody, Event, LoggedBlock, MerkleLog, SignedTreeHead, Verifier};
use criterion::{criterion_group, criterion_main, Criterion};

const N: u64 = 1_000_000;

fn settings(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("trust_log_1e6");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn bench(c: &mut Criterion) {
    // A realistic block (a new installation, ~220 bytes) to append and to check.
    let user = SignKeyPair::generate();
    let block = BlockBody {
        user_id: "u_0123456789abcdef0123456789abcdef".into(),
        seq: 1,
        prev: [7; 32],
        timestamp_ms: 1_700_000_000_000,
        event: Event::KeysAdded {
            key_version: 2,
            box_key: [1; 32],
            sign_key: [2; 32],
        },
        author: Author::Key(user.public()),
    }
    .sign(&user);
    let bytes = block.to_bytes();

    let mut log = MerkleLog::from_leaf_hashes((0..N).map(|i| leaf_hash(&i.to_be_bytes())));
    let log_key = SignKeyPair::generate();
    let root = log.root();
    let index = N / 3 + 17;
    let leaf = log.leaf(index).expect("leaf");
    let old = N / 2 + 1;
    let old_root = log.root_at(old).expect("root");

    let mut group = settings(c);
    // References.
    let a = [3u8; 32];
    group.bench_function("reference_sha256_node", |b| {
        b.iter(|| node_hash(black_box(&a), black_box(&a)))
    });
    let msg = block.body.signing_input();
    group.bench_function("reference_ed25519_verify", |b| {
        b.iter(|| sign::verify_detached(black_box(&msg), &block.signature, &user.public()))
    });

    group.bench_function("root", |b| b.iter(|| black_box(&log).root()));
    group.bench_function("inclusion_prove", |b| {
        b.iter(|| log.inclusion_proof(black_box(index), N).expect("proof"))
    });
    let path = log.inclusion_proof(index, N).expect("proof");
    group.bench_function("inclusion_verify", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), index, N, &path, &root))
    });
    group.bench_function("consistency_prove", |b| {
        b.iter(|| log.consistency_proof(black_box(old), N).expect("proof"))
    });
    let proof = log.consistency_proof(old, N).expect("proof");
    group.bench_function("consistency_verify", |b| {
        b.iter(|| verify_consistency(black_box(old), N, &proof, &old_root, &root))
    });
    group.bench_function("sign_tree_head", |b| {
        b.iter(|| SignedTreeHead::sign(N, root, 1, &log_key))
    });

    // What a client does for a contact with a two-block chain: check the head's
    // signature, two inclusion proofs and two block signatures, and replay the rules.
    let creation = BlockBody {
        user_id: block.body.user_id.clone(),
        seq: 0,
        prev: [0; 32],
        timestamp_ms: 1,
        event: Event::UserCreated {
            box_key: [1; 32],
            sign_key: *user.public().as_bytes(),
        },
        author: Author::Key(user.public()),
    }
    .sign(&user);
    let next = SignKeyPair::generate();
    let installation = BlockBody {
        user_id: block.body.user_id.clone(),
        seq: 1,
        prev: creation.hash(),
        timestamp_ms: 2,
        event: Event::KeysAdded {
            key_version: 2,
            box_key: [4; 32],
            sign_key: *next.public().as_bytes(),
        },
        author: Author::Key(user.public()),
    }
    .sign(&user);
    let mut chain_log = log.clone();
    let i0 = chain_log.append(&creation.to_bytes());
    let i1 = chain_log.append(&installation.to_bytes());
    let size = chain_log.size();
    let head = SignedTreeHead::sign(size, chain_log.root(), 1, &log_key);
    let entries = vec![
        LoggedBlock {
            index: i0,
            block: creation,
            proof: chain_log.inclusion_proof(i0, size).expect("proof"),
        },
        LoggedBlock {
            index: i1,
            block: installation,
            proof: chain_log.inclusion_proof(i1, size).expect("proof"),
        },
    ];
    drop(chain_log);
    group.bench_function("client_check_contact_2_blocks", |b| {
        b.iter(|| {
            let mut v = Verifier::new(log_key.public(), Default::default());
            v.update_head(&head, &[]).expect("head");
            v.verify_chain("u_0123456789abcdef0123456789abcdef", black_box(&entries))
                .expect("chain")
                .len()
        })
    });

    // Last, since it grows the log: what the server does per accepted block (check the
    // author's signature, append), and the append alone.
    group.bench_function("append_block_verify_and_append", |b| {
        b.iter(|| {
            block.verify_signature().expect("signature");
            log.append(black_box(&bytes))
        })
    });
    group.bench_function("append_leaf", |b| b.iter(|| log.append(black_box(&bytes))));
    group.finish();
}

/// `criterion_group!` defines a public function; kept in a private module so that it
/// needs no documentation of its own.
mod harness {
    use super::*;

    criterion_group!(benches, bench);
}
criterion_main!(harness::benches);
