//! An attachment pointer as a client finds it in a decrypted payload: the pointer alone,
//! and the same bytes as a whole payload whose body may be a pointer.
#![no_main]
use cachet_proto::decode;
use cachet_proto::v1::{payload::Body, Payload};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(pointer) = decode::attachment_pointer(data) {
        let name = decode::safe_file_name(&pointer.file_name);
        assert!(!name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'));
    }
    if let Ok(Payload {
        body: Some(Body::Attachment(pointer)),
        ..
    }) = decode::message::<Payload>(data)
    {
        if decode::validate_attachment_pointer(&pointer).is_ok() {
            let _ = decode::safe_file_name(&pointer.file_name);
        }
    }
});
