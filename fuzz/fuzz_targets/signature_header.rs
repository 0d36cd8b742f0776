//! The x-siilo-sig header value: base64, then a signature and a SignatureHeader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cachet_proto::auth::ParsedSignature::parse(Some("u_fuzz"), Some(text));
    }
});
