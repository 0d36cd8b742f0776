//! Case keys as a client receives them: a case key share in a decrypted payload, and a
//! case record from the server whose sealed keys are opened with the client's key.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cachet_proto::fuzzing::check_case_key(data);
});
