//! A trust-chain block as the server receives it on /trust/blocks and as clients read it
//! back from the log: the canonical `body ‖ signature` encoding.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_trust::fuzzing::check_trust_block(data));
