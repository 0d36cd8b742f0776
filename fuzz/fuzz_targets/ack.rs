//! Ack bytes as the server receives them on /messages/receive.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_proto::fuzzing::check_ack(data));
