//! Replays the fuzz corpus and seeds of the `share_token` target (`fuzz/corpus/share_token/`,
//! `fuzz/seeds/share_token/`) through the same code the fuzz target runs, so every input a
//! fuzzer once found interesting stays a test. The seeds are tokens of the committed test
//! vector (`tests/vectors/shares-v1.json`), one per line as operators enter them; set
//! `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use cachet_vault::fuzzing::{check_share_token as share_token, VECTOR};
use serde_json::Value;

include!("../../../fuzz/replay.rs");

fn folder(kind: &str) -> std::path::PathBuf {
    fuzz_folder(kind, "share_token")
}

fn vector() -> Value {
    serde_json::from_str(VECTOR).unwrap()
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
    if writing_seeds() {
        let t = tokens();
        write_seed("share_token", "seed-one", format!("{}\n", t[0]));
        write_seed("share_token", "seed-four", t[..4].join("\n"));
        write_seed("share_token", "seed-quorum", t[2..7].join("\n"));
    }
    assert!(
        replay("share_token", |data| {
            share_token(data);
        }) >= 3
    );
}

#[test]
fn seeds_are_the_vectors_tokens() {
    let read = |name: &str| fs::read(folder("seeds").join(name)).expect("seed committed");
    assert!(!share_token(&read("seed-one")));
    assert!(!share_token(&read("seed-four")));
    assert!(share_token(&read("seed-quorum")));
}
