//! Replays the fuzz corpus and seeds of the `local_file` target (`fuzz/corpus/local_file/`,
//! `fuzz/seeds/local_file/`) through the same code the fuzz target runs, so every input a
//! fuzzer once found interesting stays a test. Set `CACHET_WRITE_FUZZ_SEEDS=1` to
//! (re)write the seeds with the real encoder.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_crypto::local_file::{open_file, seal_file, seal_record, MAGIC};
use cachet_crypto::SymmetricKey;

/// Record size of the fuzz target (2 MiB on disk).
const RECORD: usize = 64;
/// The key the seeds are sealed under and the fuzz target opens with.
const KEY: [u8; 32] = [0x11; 32];

fn folder(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("local_file")
}

fn inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus"] {
        let Ok(entries) = fs::read_dir(folder(kind)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.push(fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// What the `local_file` fuzz target runs (see its comment for the two modes).
fn local_file(data: &[u8]) {
    let key = SymmetricKey::from_bytes(KEY);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode.is_multiple_of(2) {
        let _ = open_file(rest, &key, RECORD);
        return;
    }
    let mut file = MAGIC.to_vec();
    let mut expected = Vec::new();
    let mut in_order = true;
    let mut finished = false;
    let mut input = rest;
    let mut position = 0u64;
    while let [index, flag, len, tail @ ..] = input {
        let take = usize::from(*len).min(RECORD).min(tail.len());
        let (chunk, next) = tail.split_at(take);
        let is_final = *flag == 1;
        file.extend_from_slice(&seal_record(u64::from(*index), is_final, chunk, &key));
        if finished || u64::from(*index) != position || (!is_final && chunk.len() != RECORD) {
            in_order = false;
        }
        expected.extend_from_slice(chunk);
        finished |= is_final;
        position += 1;
        input = next;
    }
    let opened = open_file(&file, &key, RECORD);
    if in_order && finished && position > 0 {
        assert_eq!(opened.as_deref().map(|v| v.as_slice()), Ok(&expected[..]));
    } else {
        assert!(opened.is_err());
    }
    let sealed = seal_file(rest, &key, RECORD);
    assert_eq!(
        open_file(&sealed, &key, RECORD)
            .as_deref()
            .map(|v| v.as_slice()),
        Ok(rest)
    );
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
    fs::create_dir_all(folder("seeds")).unwrap();
    for (name, plain) in seed_plaintexts() {
        // Mode 0: the file as the client writes it.
        let mut seed = vec![0u8];
        seed.extend_from_slice(&seal_file(&plain, &key, RECORD));
        fs::write(folder("seeds").join(format!("seed-{name}")), seed).unwrap();
    }
    // Mode 1: two records in order, the second final.
    let mut records = vec![1u8, 0, 0, RECORD as u8];
    records.extend_from_slice(&[0xaa; RECORD]);
    records.extend_from_slice(&[1, 1, 5, 1, 2, 3, 4, 5]);
    fs::write(folder("seeds").join("seed-records"), records).unwrap();
}

#[test]
fn corpus_replays_without_panic() {
    if std::env::var_os("CACHET_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds();
    }
    let all = inputs();
    assert!(all.len() > seed_plaintexts().len());
    for data in &all {
        local_file(data);
    }
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
