//! The x-siilo-sig header value: base64, then a signature and a SignatureHeader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_proto::fuzzing::check_signature_header(data));
