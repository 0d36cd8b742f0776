//! Replays the fuzz corpus and seeds of the `local_file` target (`fuzz/corpus/local_file/`,
//! `fuzz/seeds/local_file/`) through the same code the fuzz target runs, so every input a
//! fuzzer once found interesting stays a test. Set `CACHET_WRITE_FUZZ_SEEDS=1` to
//! (re)write the seeds with the real encoder.
#![allow(clippy::unwrap_used)]

use std::fs;

use cachet_crypto::fuzzing::{
    check_local_file, LOCAL_FILE_KEY as KEY, LOCAL_FILE_RECORD as RECORD,
};
use cachet_crypto::local_file::{open_file, seal_file};
use cachet_crypto::SymmetricKey;

include!("../../../fuzz/replay.rs");

fn folder(kind: &str) -> std::path::PathBuf {
    fuzz_folder(kind, "local_file")
}

fn seed_plaintexts() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("one-record", b"a short note".to_vec()),
        ("whole-records", (0..128u8).collect()),
        ("three-records", (0..150u8).collect()),
    ]
}

fn write_seeds() {
    let key = SymmetricKey::from_bytes(KEY);
    for (name, plain) in seed_plaintexts() {
        // Mode 0: the file as the client writes it.
        let mut seed = vec![0u8];
        seed.extend_from_slice(&seal_file(&plain, &key, RECORD));
        write_seed("local_file", &format!("seed-{name}"), seed);
    }
    // Mode 1: two records in order, the second final.
    let mut records = vec![1u8, 0, 0, RECORD as u8];
    records.extend_from_slice(&[0xaa; RECORD]);
    records.extend_from_slice(&[1, 1, 5, 1, 2, 3, 4, 5]);
    write_seed("local_file", "seed-records", records);
}

#[test]
fn corpus_replays_without_panic() {
    if writing_seeds() {
        write_seeds();
    }
    assert!(replay("local_file", check_local_file) > seed_plaintexts().len());
}

#[test]
fn seeds_open_to_their_plaintext() {
    let key = SymmetricKey::from_bytes(KEY);
    for (name, plain) in seed_plaintexts() {
        let seed = fs::read(folder("seeds").join(format!("seed-{name}"))).expect("committed");
        assert_eq!(seed[0], 0);
        assert_eq!(
            *open_file(&seed[1..], &key, RECORD).unwrap(),
            plain,
            "{name}"
        );
    }
}
