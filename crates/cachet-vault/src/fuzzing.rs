//! The body of this crate's fuzz target (`fuzz/fuzz_targets/share_token.rs`), written
//! once: the fuzz target calls it on what the fuzzer makes, and `tests/fuzz_corpus.rs` on
//! every committed seed and corpus input. Not part of the API.

use crate::{SealedRoot, ShareToken, Unsealer};

/// The committed test vector whose tokens are the `share_token` seeds.
pub const VECTOR: &str = include_str!("../tests/vectors/shares-v1.json");

/// The sealed root of [`VECTOR`].
pub fn vector_root() -> SealedRoot {
    let vector: serde_json::Value = serde_json::from_str(VECTOR).expect("committed vector");
    let hex32 = |v: &serde_json::Value| -> [u8; 32] {
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

/// The `share_token` target: share tokens as operators type or paste them into an
/// unseal, one per line, against the sealed root of the committed vector (whose tokens
/// are the seeds), so that valid shares reach the recombination too. Returns whether the
/// lines unsealed the vault.
pub fn check_share_token(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut unsealer = Unsealer::new(vector_root());
    for line in text.lines() {
        let token = ShareToken::from_text(line);
        let _ = token.index();
        let _ = unsealer.submit(&token);
    }
    unsealer.master_key().is_some()
}
