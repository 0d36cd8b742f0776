//! Envelope bytes as the server receives them on /messages/send.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cachet_proto::decode::envelope(data);
});
