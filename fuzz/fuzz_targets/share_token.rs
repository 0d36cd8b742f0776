//! Vault share tokens as operators type or paste them into an unseal, one per line,
//! against the sealed root of the committed test vector (whose tokens are the seeds), so
//! that valid shares reach the recombination too.
#![no_main]
use cachet_vault::{SealedRoot, ShareToken, Unsealer};

fn root() -> SealedRoot {
    let vector: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/cachet-vault/tests/vectors/shares-v1.json"
    ))
    .expect("committed vector");
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

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut unsealer = Unsealer::new(root());
    for line in text.lines() {
        let token = ShareToken::from_text(line);
        let _ = token.index();
        let _ = unsealer.submit(&token);
    }
});
