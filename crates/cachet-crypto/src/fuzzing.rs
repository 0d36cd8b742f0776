//! The bodies of this crate's fuzz targets (`fuzz/fuzz_targets/`), written once: the
//! fuzz target calls them on what the fuzzer makes, and `tests/fuzz_corpus.rs` on every
//! committed seed and corpus input. Not part of the API.

use crate::local_file::{open_file, seal_file, seal_record, MAGIC};
use crate::SymmetricKey;

/// Record size of the `local_file` target: 64 bytes here (2 MiB on disk), the same code
/// in reach of a fuzzer.
pub const LOCAL_FILE_RECORD: usize = 64;
/// The key the `local_file` seeds are sealed under and the target opens with.
pub const LOCAL_FILE_KEY: [u8; 32] = [0x11; 32];

/// The `local_file` target: the local file format (files sealed under the Local File
/// Key). The first byte picks how the rest is read:
/// * even: the bytes of a file, opened under [`LOCAL_FILE_KEY`];
/// * odd: a list of records `index (1) ‖ flag (1) ‖ length (1) ‖ data`, each sealed under
///   that key and concatenated behind the magic, so that records which authenticate but
///   are out of order, short, duplicated or unfinished reach the reader's checks.
pub fn check_local_file(data: &[u8]) {
    let key = SymmetricKey::from_bytes(LOCAL_FILE_KEY);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode.is_multiple_of(2) {
        let _ = open_file(rest, &key, LOCAL_FILE_RECORD);
        return;
    }
    let mut file = MAGIC.to_vec();
    let mut expected = Vec::new();
    let mut in_order = true;
    let mut finished = false;
    let mut input = rest;
    let mut position = 0u64;
    while let [index, flag, len, tail @ ..] = input {
        let take = usize::from(*len).min(LOCAL_FILE_RECORD).min(tail.len());
        let (chunk, next) = tail.split_at(take);
        let is_final = *flag == 1;
        file.extend_from_slice(&seal_record(u64::from(*index), is_final, chunk, &key));
        if finished
            || u64::from(*index) != position
            || (!is_final && chunk.len() != LOCAL_FILE_RECORD)
        {
            in_order = false;
        }
        expected.extend_from_slice(chunk);
        finished |= is_final;
        position += 1;
        input = next;
    }
    let opened = open_file(&file, &key, LOCAL_FILE_RECORD);
    if in_order && finished && position > 0 {
        assert_eq!(opened.as_deref().map(|v| v.as_slice()), Ok(&expected[..]));
    } else {
        assert!(opened.is_err());
    }
    let sealed = seal_file(rest, &key, LOCAL_FILE_RECORD);
    assert_eq!(
        open_file(&sealed, &key, LOCAL_FILE_RECORD)
            .as_deref()
            .map(|v| v.as_slice()),
        Ok(rest)
    );
}
