//! Recovery messages (JSON, hex fields) as the data server and the key server receive
//! them, and the answers a recovering client reads back; each body is tried as every
//! message type, and what parses goes through the same field checks and OPRF steps.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachet_recovery::fuzzing::check_recovery_wire(data));
