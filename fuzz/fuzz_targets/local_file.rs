//! The local file format (files sealed under the Local File Key): see
//! `cachet_crypto::fuzzing::check_local_file` for how the input is read.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_crypto::fuzzing::check_local_file(data));
