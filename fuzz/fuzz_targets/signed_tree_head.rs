//! A signed tree head as clients receive it from the log and compare it with others.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_trust::fuzzing::check_signed_tree_head(data));
