//! Share tokens are a stored format: operators keep them on paper for years. This test
//! opens a fixed set made by an earlier release (`tests/vectors/shares-v1.json`, split with
//! the `sharks` 0.5 crate before the move to `blahaj`) with the current code, so a change
//! of Shamir implementation can never strand shares already handed out.
//! `CACHET_WRITE_SHARE_VECTOR=1` writes a new vector with the current code (only ever to
//! add one; the committed one must stay as it is).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_vault::{
    init, reshare, MasterKey, SealedRoot, ShareToken, UnsealProgress, Unsealer, VaultError,
};
use serde_json::{json, Value};

fn vector_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/shares-v1.json")
}

fn hex32(value: &Value) -> [u8; 32] {
    hex::decode(value.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

struct Vector {
    key: MasterKey,
    root: SealedRoot,
    tokens: Vec<ShareToken>,
}

fn load() -> Vector {
    let v: Value = serde_json::from_slice(&fs::read(vector_path()).unwrap()).unwrap();
    Vector {
        key: MasterKey::from_slice(&hex::decode(v["master_key"].as_str().unwrap()).unwrap())
            .unwrap(),
        root: SealedRoot {
            threshold: v["threshold"].as_u64().unwrap() as u8,
            share_digests: v["share_digests"]
                .as_array()
                .unwrap()
                .iter()
                .map(hex32)
                .collect(),
            master_check: hex32(&v["master_check"]),
        },
        tokens: v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| ShareToken::from_text(t.as_str().unwrap()))
            .collect(),
    }
}

fn write_vector() {
    let (key, root, tokens) = init(7, 5).unwrap();
    let v = json!({
        "format": "cachet-share-v1",
        "made_with": "sharks 0.5.0",
        "threshold": root.threshold,
        "master_key": hex::encode(key.expose_secret()),
        "master_check": hex::encode(root.master_check),
        "share_digests": root.share_digests.iter().map(hex::encode).collect::<Vec<_>>(),
        "tokens": tokens.iter().map(|t| t.expose_secret()).collect::<Vec<_>>(),
    });
    fs::create_dir_all(vector_path().parent().unwrap()).unwrap();
    fs::write(
        vector_path(),
        serde_json::to_string_pretty(&v).unwrap() + "\n",
    )
    .unwrap();
}

fn unseal(root: &SealedRoot, tokens: &[&ShareToken]) -> Option<MasterKey> {
    let mut u = Unsealer::new(root.clone());
    for t in tokens {
        u.submit(t).unwrap();
    }
    u.master_key().cloned()
}

#[test]
fn shares_made_by_the_earlier_implementation_still_open() {
    if std::env::var_os("CACHET_WRITE_SHARE_VECTOR").is_some() {
        write_vector();
    }
    let v = load();
    assert_eq!(v.tokens.len(), 7);
    // Several different quorums, in different orders.
    for pick in [
        [0, 1, 2, 3, 4],
        [6, 5, 4, 3, 2],
        [0, 2, 4, 6, 1],
        [3, 6, 0, 5, 2],
    ] {
        let chosen: Vec<&ShareToken> = pick.iter().map(|&i| &v.tokens[i]).collect();
        assert_eq!(unseal(&v.root, &chosen), Some(v.key.clone()), "{pick:?}");
    }
    // Four are not enough.
    let four: Vec<&ShareToken> = v.tokens[..4].iter().collect();
    assert_eq!(unseal(&v.root, &four), None);
    for (i, t) in v.tokens.iter().enumerate() {
        assert_eq!(t.index(), Ok(i as u8 + 1));
    }
}

#[test]
fn old_shares_reshare_to_new_ones_that_open() {
    // The documented path: unseal with the old shares, split anew, hand out the new ones.
    let v = load();
    let (root, tokens) = reshare(&v.key, 7, 5).unwrap();
    let mut u = Unsealer::new(root.clone());
    assert_eq!(
        u.submit(&v.tokens[0]),
        Err(VaultError::CorruptShare { index: 1 })
    );
    for t in &tokens[1..6] {
        u.submit(t).unwrap();
    }
    assert_eq!(u.master_key(), Some(&v.key));
    // And the old root keeps opening with the old shares until it is replaced.
    let mut old = Unsealer::new(v.root.clone());
    let mut last = UnsealProgress::Need {
        have: 0,
        threshold: 5,
    };
    for t in &v.tokens[2..7] {
        last = old.submit(t).unwrap();
    }
    assert_eq!(last, UnsealProgress::Unsealed);
}
