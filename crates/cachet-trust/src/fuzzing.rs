//! The bodies of this crate's fuzz targets (`fuzz/fuzz_targets/`), written once: the
//! fuzz targets call them on what the fuzzer makes, and `tests/fuzz_corpus.rs` on every
//! committed seed and corpus input. Not part of the API.

use cachet_crypto::SignKeyPair;

use crate::{Block, SignedTreeHead};

/// The seed of the log key the `signed_tree_head` seeds are signed with.
pub const TREE_HEAD_KEY_SEED: [u8; 32] = [5; 32];

/// The `trust_block` target: a block as the server receives it on /trust/blocks and as
/// clients read it back from the log, the canonical `body ‖ signature` encoding.
pub fn check_trust_block(data: &[u8]) {
    if let Ok(block) = Block::from_bytes(data) {
        // Only the canonical encoding parses, so what parsed encodes back to the input.
        assert_eq!(block.to_bytes(), data);
        let _ = block.verify_signature();
        let _ = block.hash();
    }
}

/// The `signed_tree_head` target: a head as clients receive it from the log and compare
/// it with others.
pub fn check_signed_tree_head(data: &[u8]) {
    if let Ok(head) = SignedTreeHead::from_bytes(data) {
        assert_eq!(head.to_bytes(), data);
        let key = SignKeyPair::from_seed(TREE_HEAD_KEY_SEED).public();
        let _ = head.verify(&key);
        let _ = crate::sth::check_heads(&head, &head, &[], &key);
    }
}
