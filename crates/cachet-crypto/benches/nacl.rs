//! cachet-crypto next to libsodium, operation by operation, in one run.
//!
//! Every benchmark group holds two functions, `cachet` (cachet-crypto: pure Rust by
//! default, its libsodium backend with `--features libsodium`, as the client ships it)
//! and `libsodium` (the C library through cachet-sodium-ref), doing the same work on the
//! same inputs. `scripts/bench-report.py` turns the results
//! into a table. Sample counts and measurement times are kept small so that the whole run
//! takes a few minutes on a two-core machine.

use std::hint::black_box;
use std::time::Duration;

use cachet_crypto::attachment::{
    chunk_nonce, seal_chunks, ChunkSealer, FormatVersion, Parallelism, CHUNK_SIZE,
};
use cachet_crypto::boxes::{self, PrecomputedBox};
use cachet_crypto::secretbox::SecretBox;
use cachet_crypto::sign::{self, BatchItem};
use cachet_crypto::{
    random_bytes, BoxKeyPair, Nonce, SignKeyPair, SignPublicKey, SymmetricKey, MAC_LEN,
};
use cachet_sodium_ref as sodium;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

/// Size of a typical chat message or request header.
const SMALL: usize = 200;
/// Plaintext of the attachment benchmark: 256 MiB, 128 chunks of 2 MiB.
const ATTACHMENT_SIZE: usize = 256 * 1024 * 1024;
/// Plaintext of the parallel attachment benchmark: 1 GiB, 512 chunks of 2 MiB.
const LARGE_ATTACHMENT_SIZE: u64 = 1024 * 1024 * 1024;
/// Workers of the parallel attachment benchmark: the two cores of the reference machine.
const ATTACHMENT_WORKERS: usize = 2;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 251) as u8).collect()
}

/// Settings for groups whose single iteration takes milliseconds or more.
fn slow<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn secretbox(c: &mut Criterion) {
    let key_bytes: [u8; 32] = random_bytes();
    let key = SymmetricKey::from_bytes(key_bytes);
    let cipher = SecretBox::new(&key);
    for (label, len) in [("200B", SMALL), ("64KiB", 64 * 1024), ("2MiB", CHUNK_SIZE)] {
        let mut group = c.benchmark_group(format!("secretbox_seal_open_{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 64 * 1024 {
            slow(&mut group);
        }
        let message = data(len);
        let nonce = Nonce(random_bytes());
        group.bench_function("cachet", |b| {
            b.iter(|| {
                let sealed = cipher.seal_with_nonce(black_box(&message), &nonce);
                cipher.open(&sealed, &nonce).expect("opens")
            })
        });
        group.bench_function("libsodium", |b| {
            b.iter(|| {
                let sealed = sodium::secretbox_easy(black_box(&message), &nonce.0, &key_bytes);
                sodium::secretbox_open_easy(&sealed, &nonce.0, &key_bytes).expect("opens")
            })
        });
        group.finish();
    }
}

fn crypto_box(c: &mut Criterion) {
    let alice = BoxKeyPair::generate();
    let bob = BoxKeyPair::generate();
    let message = data(SMALL);

    // One X25519 per message: what `boxes::seal` does, and crypto_box_easy.
    let mut group = c.benchmark_group("box_seal_200B_fresh_x25519");
    group.throughput(Throughput::Bytes(SMALL as u64));
    group.bench_function("cachet", |b| {
        b.iter(|| boxes::seal(black_box(&message), &bob.public, &alice.secret))
    });
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            // A fresh random nonce on both sides, from the same generator.
            let nonce: [u8; 24] = random_bytes();
            sodium::box_easy(
                black_box(&message),
                &nonce,
                bob.public.as_bytes(),
                alice.secret.expose_secret(),
            )
            .expect("valid keys")
        })
    });
    group.finish();

    // Shared key cached per contact: PrecomputedBox, crypto_box_easy_afternm.
    let mut group = c.benchmark_group("box_seal_200B_precomputed");
    group.throughput(Throughput::Bytes(SMALL as u64));
    let ours = PrecomputedBox::new(&bob.public, &alice.secret).expect("honest key");
    let theirs = sodium::box_beforenm(bob.public.as_bytes(), alice.secret.expose_secret())
        .expect("valid keys");
    group.bench_function("cachet", |b| b.iter(|| ours.seal(black_box(&message))));
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            let nonce: [u8; 24] = random_bytes();
            sodium::box_easy_afternm(black_box(&message), &nonce, &theirs)
        })
    });
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    let pair = SignKeyPair::generate();
    let sodium_sk = pair.expose_libsodium_secret();
    let public = pair.public();
    let message = data(SMALL);
    let signature = sign::sign_detached(&message, &pair);

    let mut group = c.benchmark_group("ed25519_sign_200B");
    group.bench_function("cachet", |b| {
        b.iter(|| sign::sign_detached(black_box(&message), &pair))
    });
    group.bench_function("libsodium", |b| {
        b.iter(|| sodium::sign_detached(black_box(&message), &sodium_sk))
    });
    group.finish();

    let mut group = c.benchmark_group("ed25519_verify_200B");
    group.bench_function("cachet", |b| {
        b.iter(|| sign::verify_detached(black_box(&message), &signature, &public).expect("valid"))
    });
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            assert!(sodium::sign_verify_detached(
                &signature,
                black_box(&message),
                public.as_bytes()
            ))
        })
    });
    group.finish();

    // 64 signatures by 64 different keys. libsodium has no batch verification, so its
    // side is 64 single verifications.
    const BATCH: usize = 64;
    let signers: Vec<SignKeyPair> = (0..BATCH).map(|_| SignKeyPair::generate()).collect();
    let keys: Vec<SignPublicKey> = signers.iter().map(SignKeyPair::public).collect();
    let messages: Vec<Vec<u8>> = (0..BATCH).map(|i| data(SMALL + i)).collect();
    let signatures: Vec<[u8; 64]> = signers
        .iter()
        .zip(&messages)
        .map(|(k, m)| sign::sign_detached(m, k))
        .collect();
    let items: Vec<BatchItem<'_>> = (0..BATCH)
        .map(|i| BatchItem {
            message: &messages[i],
            signature: &signatures[i],
            key: &keys[i],
        })
        .collect();
    let mut group = c.benchmark_group("ed25519_verify_batch_64");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("cachet", |b| {
        b.iter(|| {
            let results = sign::verify_batch(black_box(&items));
            assert!(results.iter().all(Result::is_ok));
        })
    });
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            for item in black_box(&items) {
                assert!(sodium::sign_verify_detached(
                    item.signature,
                    item.message,
                    item.key.as_bytes()
                ));
            }
        })
    });
    group.finish();
}

fn attachment(c: &mut Criterion) {
    let key_bytes: [u8; 32] = random_bytes();
    let key = SymmetricKey::from_bytes(key_bytes);
    let source = data(CHUNK_SIZE);
    let chunks = ATTACHMENT_SIZE / CHUNK_SIZE;

    let mut group = c.benchmark_group("attachment_v2_seal_256MiB");
    group.throughput(Throughput::Bytes(ATTACHMENT_SIZE as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));

    // Both sides: one buffer reused for every chunk, the next 2 MiB of plaintext copied
    // in (as a reader filling it from a file would), sealed in place.
    let mut buffer = vec![0u8; MAC_LEN + CHUNK_SIZE];
    group.bench_function("cachet", |b| {
        b.iter(|| {
            let mut sealer = ChunkSealer::new(&key, FormatVersion::V2);
            for i in 0..chunks {
                buffer[MAC_LEN..].copy_from_slice(&source);
                sealer
                    .seal_chunk_in_place(&mut buffer, i + 1 == chunks)
                    .expect("full chunks");
                black_box(&buffer);
            }
        })
    });
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            for i in 0..chunks {
                buffer[MAC_LEN..].copy_from_slice(&source);
                let nonce = chunk_nonce(FormatVersion::V2, i as u64 + 1, i + 1 == chunks);
                sodium::secretbox_seal_in_place(&mut buffer, &nonce.0, &key_bytes);
                black_box(&buffer);
            }
        })
    });
    group.finish();
}

/// 1 GiB sealed by `seal_chunks` on two worker threads against libsodium on one core.
/// Both sides copy each chunk's plaintext in from the same 2 MiB source (as a reader
/// filling it from a file would) and leave the sealed chunk where it is.
fn attachment_parallel(c: &mut Criterion) {
    let key_bytes: [u8; 32] = random_bytes();
    let key = SymmetricKey::from_bytes(key_bytes);
    let source = data(CHUNK_SIZE);
    let chunks = LARGE_ATTACHMENT_SIZE / CHUNK_SIZE as u64;

    let mut group = c.benchmark_group("attachment_v2_seal_1GiB_2_workers");
    group.throughput(Throughput::Bytes(LARGE_ATTACHMENT_SIZE));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20));
    let parallelism = Parallelism::workers(ATTACHMENT_WORKERS);
    group.bench_function("cachet", |b| {
        b.iter(|| {
            seal_chunks::<cachet_crypto::CryptoError, _, _>(
                &key,
                FormatVersion::V2,
                LARGE_ATTACHMENT_SIZE,
                parallelism,
                |plaintext| {
                    plaintext.copy_from_slice(&source);
                    Ok(())
                },
                |sealed| {
                    black_box(sealed);
                    Ok(())
                },
            )
            .expect("full chunks")
        })
    });
    let mut buffer = vec![0u8; MAC_LEN + CHUNK_SIZE];
    group.bench_function("libsodium", |b| {
        b.iter(|| {
            for i in 0..chunks {
                buffer[MAC_LEN..].copy_from_slice(&source);
                let nonce = chunk_nonce(FormatVersion::V2, i + 1, i + 1 == chunks);
                sodium::secretbox_seal_in_place(&mut buffer, &nonce.0, &key_bytes);
                black_box(&buffer);
            }
        })
    });
    group.finish();
}

/// `criterion_group!` defines a public function; kept in a private module so that it
/// needs no documentation of its own.
mod harness {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        targets = secretbox, crypto_box, ed25519, attachment, attachment_parallel
    }
}
criterion_main!(harness::benches);
