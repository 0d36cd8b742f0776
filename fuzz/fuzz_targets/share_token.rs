//! Vault share tokens as operators type or paste them into an unseal, one per line,
//! against the sealed root of the committed test vector (whose tokens are the seeds), so
//! that valid shares reach the recombination too.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cachet_vault::fuzzing::check_share_token(data);
});
