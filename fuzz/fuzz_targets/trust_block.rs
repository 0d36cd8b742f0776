//! A trust-chain block as the server receives it on /trust/blocks and as clients read it
//! back from the log: the canonical `body ‖ signature` encoding.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(block) = cachet_trust::Block::from_bytes(data) {
        // Only the canonical encoding parses, so what parsed encodes back to the input.
        assert_eq!(block.to_bytes(), data);
        let _ = block.verify_signature();
        let _ = block.hash();
    }
});
