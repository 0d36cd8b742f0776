//! The local file format (files sealed under the Local File Key). The first byte picks
//! how the rest is read:
//! * even: the bytes of a file, opened under the fixed key the seeds were sealed with;
//! * odd: a list of records `index (1) ‖ flag (1) ‖ length (1) ‖ data`, each sealed under
//!   that key and concatenated behind the magic, so that records which authenticate but
//!   are out of order, short, duplicated or unfinished reach the reader's checks.
//!
//! Records hold 64 bytes here (2 MiB on disk): the same code, reachable by a fuzzer.
#![no_main]
use cachet_crypto::local_file::{open_file, seal_file, seal_record, MAGIC};
use cachet_crypto::SymmetricKey;

const RECORD: usize = 64;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = SymmetricKey::from_bytes([0x11; 32]);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = open_file(rest, &key, RECORD);
        return;
    }
    let mut file = MAGIC.to_vec();
    let mut expected = Vec::new();
    let mut in_order = true;
    let mut finished = false;
    let mut input = rest;
    let mut position = 0u64;
    while let [index, flag, len, tail @ ..] = input {
        let take = usize::from(*len).min(RECORD).min(tail.len());
        let (chunk, next) = tail.split_at(take);
        let is_final = *flag == 1;
        file.extend_from_slice(&seal_record(u64::from(*index), is_final, chunk, &key));
        if finished || u64::from(*index) != position || (!is_final && chunk.len() != RECORD) {
            in_order = false;
        }
        expected.extend_from_slice(chunk);
        finished |= is_final;
        position += 1;
        input = next;
    }
    let opened = open_file(&file, &key, RECORD);
    if in_order && finished && position > 0 {
        assert_eq!(opened.as_deref().map(|v| v.as_slice()), Ok(&expected[..]));
    } else {
        assert!(opened.is_err());
    }
    let sealed = seal_file(rest, &key, RECORD);
    assert_eq!(
        open_file(&sealed, &key, RECORD)
            .as_deref()
            .map(|v| v.as_slice()),
        Ok(rest)
    );
});
