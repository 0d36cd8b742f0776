//! An attachment pointer as a client finds it in a decrypted payload: the pointer alone,
//! and the same bytes as a whole payload whose body may be a pointer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_proto::fuzzing::check_attachment_pointer(data));
