//! Ack bytes as the server receives them on /messages/receive.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cachet_proto::decode::ack(data);
});
