//! Replays the fuzz corpus and seeds of the `share_token` target (`fuzz/corpus/share_token/`,
//! `fuzz/seeds/share_token/`) through the same code the fuzz target runs, so every input a
//! fuzzer once found interesting stays a test. The seeds are tokens of the committed test
//! vector (`tests/vectors/shares-v1.json`), one per line as operators enter them; set
//! `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_vault::{SealedRoot, ShareToken, Unsealer};
use serde_json::Value;

fn folder(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("share_token")
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

fn vector() -> Value {
    serde_json::from_str(include_str!("vectors/shares-v1.json")).unwrap()
}

/// The sealed root of the vector, built as the fuzz target builds it.
fn root() -> SealedRoot {
    let vector = vector();
    let hex32 = |v: &Value| -> [u8; 32] {
        let text = v.as_str().expect("hex string");
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    };
    SealedRoot {
        threshold: vector["threshold"].as_u64().expect("threshold") as u8,
        share_digests: vector["share_digests"]
            .as_array()
            .expect("digests")
            .iter()
            .map(hex32)
            .collect(),
        master_check: hex32(&vector["master_check"]),
    }
}

/// What the `share_token` fuzz target runs; returns whether the lines unsealed the vault.
fn share_token(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut unsealer = Unsealer::new(root());
    for line in text.lines() {
        let token = ShareToken::from_text(line);
        let _ = token.index();
        let _ = unsealer.submit(&token);
    }
    unsealer.master_key().is_some()
}

fn tokens() -> Vec<String> {
    vector()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn corpus_replays_without_panic() {
    if std::env::var_os("CACHET_WRITE_FUZZ_SEEDS").is_some() {
        let t = tokens();
        fs::create_dir_all(folder("seeds")).unwrap();
        fs::write(folder("seeds").join("seed-one"), format!("{}\n", t[0])).unwrap();
        fs::write(folder("seeds").join("seed-four"), t[..4].join("\n")).unwrap();
        fs::write(folder("seeds").join("seed-quorum"), t[2..7].join("\n")).unwrap();
    }
    let all = inputs();
    assert!(all.len() >= 3);
    for data in &all {
        share_token(data);
    }
}

#[test]
fn seeds_are_the_vectors_tokens() {
    let read = |name: &str| fs::read(folder("seeds").join(name)).expect("seed committed");
    assert!(!share_token(&read("seed-one")));
    assert!(!share_token(&read("seed-four")));
    assert!(share_token(&read("seed-quorum")));
}
