//! The format of local files sealed under the Local File Key (whitepaper 3.4):
//! `crypto_secretbox` with a random nonce prepended, cut into records so that files of
//! any size stream through constant memory.
//!
//! ```text
//! file    = "CLF1" || record*
//! record  = nonce (24) || crypto_secretbox(header || data, nonce, local_file_key)
//! header  = le64(record index, from 0) || final flag (1 byte: 1 on the last record)
//! ```
//!
//! Every record but the last holds exactly [`RECORD_DATA`] bytes of data, so a reader
//! knows where each record ends. The index and final flag inside the sealed bytes make
//! dropped, reordered, appended or truncated records fail to open.
//!
//! This module is the format alone, without I/O: the client reads and writes the files,
//! one record at a time, through [`RecordOpener`] and [`seal_record`]. Every function
//! here takes the record size, so tests and fuzzing can use small records; files on disk
//! always use [`RECORD_DATA`].

use zeroize::Zeroizing;

use crate::{secretbox, CryptoError, Nonce, SymmetricKey, MAC_LEN, NONCE_LEN};

/// The first bytes of every local file.
pub const MAGIC: &[u8; 4] = b"CLF1";
/// Plaintext bytes of every record but the last (2 MiB).
pub const RECORD_DATA: usize = 2 * 1024 * 1024;
/// The index and final flag sealed at the start of each record.
pub const HEADER_LEN: usize = 9;
/// The smallest sealed record: an empty last record.
pub const MIN_SEALED_RECORD: usize = NONCE_LEN + MAC_LEN + HEADER_LEN;

/// Bytes of a full sealed record holding `record_data` bytes of data.
pub fn sealed_record_len(record_data: usize) -> usize {
    MIN_SEALED_RECORD.saturating_add(record_data)
}

/// Seals record `index` holding `data` (at most the record size; exactly the record
/// size unless `is_final`).
pub fn seal_record(index: u64, is_final: bool, data: &[u8], key: &SymmetricKey) -> Vec<u8> {
    seal_record_with_nonce(index, is_final, data, key, &Nonce::random())
}

/// [`seal_record`] with a given nonce: `nonce ‖ crypto_secretbox(le64(index) ‖ final ‖
/// data)`. Files are always written with a fresh random nonce per record; a chosen nonce
/// serves the published test vectors.
pub fn seal_record_with_nonce(
    index: u64,
    is_final: bool,
    data: &[u8],
    key: &SymmetricKey,
    nonce: &Nonce,
) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(HEADER_LEN + data.len()));
    plain.extend_from_slice(&index.to_le_bytes());
    plain.push(u8::from(is_final));
    plain.extend_from_slice(data);
    let mut sealed = nonce.as_bytes().to_vec();
    sealed.extend_from_slice(&secretbox::SecretBox::new(key).seal_with_nonce(&plain, nonce));
    sealed
}

/// Opens the records of one file in order, checking their index, their length and
/// where the file ends.
pub struct RecordOpener<'k> {
    key: &'k SymmetricKey,
    record_data: usize,
    index: u64,
    finished: bool,
}

impl<'k> RecordOpener<'k> {
    /// An opener for records of [`RECORD_DATA`] bytes, as on disk.
    pub fn new(key: &'k SymmetricKey) -> Self {
        Self::with_record_size(key, RECORD_DATA)
    }

    /// An opener for records of `record_data` bytes (at least 1).
    pub fn with_record_size(key: &'k SymmetricKey, record_data: usize) -> Self {
        Self {
            key,
            record_data: record_data.max(1),
            index: 0,
            finished: false,
        }
    }

    /// Checks the magic at the start of a file.
    pub fn check_magic(prefix: &[u8]) -> Result<(), CryptoError> {
        if prefix != MAGIC {
            return Err(CryptoError::Stream("not a sealed local file"));
        }
        Ok(())
    }

    /// How many bytes to read for the next record: a reader passes up to this many to
    /// [`RecordOpener::open`] (fewer only at the end of the file).
    pub fn next_record_len(&self) -> usize {
        sealed_record_len(self.record_data)
    }

    /// Whether the last record has been opened; any byte after it is an error.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Opens the next record (`sealed` is what the file holds at its place, at most
    /// [`RecordOpener::next_record_len`] bytes) and returns its data and whether it was
    /// the last record.
    pub fn open(&mut self, sealed: &[u8]) -> Result<(Zeroizing<Vec<u8>>, bool), CryptoError> {
        if self.finished {
            return Err(CryptoError::Stream("data after the last record"));
        }
        if sealed.len() < MIN_SEALED_RECORD {
            return Err(CryptoError::Stream("record truncated"));
        }
        if sealed.len() > self.next_record_len() {
            return Err(CryptoError::Stream("record too long"));
        }
        let mut plain = Zeroizing::new(secretbox::open_prefixed(sealed, self.key)?);
        let (header, data) = plain.split_at(HEADER_LEN);
        let is_final = header[8] == 1;
        if header[..8] != self.index.to_le_bytes() {
            return Err(CryptoError::Stream("record out of order"));
        }
        if !is_final && data.len() != self.record_data {
            return Err(CryptoError::Stream("short record before the last"));
        }
        plain.drain(..HEADER_LEN);
        self.index = self.index.wrapping_add(1);
        self.finished = is_final;
        Ok((plain, is_final))
    }
}

/// Seals a whole file held in memory into records of `record_data` bytes.
pub fn seal_file(data: &[u8], key: &SymmetricKey, record_data: usize) -> Vec<u8> {
    let record_data = record_data.max(1);
    let mut out = MAGIC.to_vec();
    let mut chunks = data.chunks(record_data).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&seal_record(0, true, &[], key));
        return out;
    }
    let mut index = 0u64;
    while let Some(chunk) = chunks.next() {
        // A file of whole records ends with a full record flagged final.
        let is_final = chunks.peek().is_none();
        out.extend_from_slice(&seal_record(index, is_final, chunk, key));
        index += 1;
    }
    out
}

/// Opens a whole file held in memory, as the client's streaming reader does record by
/// record: the magic, then records until the one flagged final, then nothing.
pub fn open_file(
    file: &[u8],
    key: &SymmetricKey,
    record_data: usize,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (magic, mut rest) = file.split_at(file.len().min(MAGIC.len()));
    RecordOpener::check_magic(magic)?;
    let mut opener = RecordOpener::with_record_size(key, record_data);
    let mut out = Zeroizing::new(Vec::new());
    while !opener.is_finished() {
        let (record, tail) = rest.split_at(rest.len().min(opener.next_record_len()));
        let (data, _) = opener.open(record)?;
        out.extend_from_slice(&data);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(CryptoError::Stream("data after the last record"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_record_edges() {
        let key = SymmetricKey::generate();
        for len in [0usize, 1, 15, 16, 17, 32, 33, 100] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let file = seal_file(&data, &key, 16);
            assert_eq!(*open_file(&file, &key, 16).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn dropped_reordered_and_appended_records_fail() {
        let key = SymmetricKey::generate();
        let data = [7u8; 40];
        let file = seal_file(&data, &key, 16);
        let rec = sealed_record_len(16);
        // Dropping the last record.
        assert!(open_file(&file[..4 + 2 * rec], &key, 16).is_err());
        // Swapping the first two records.
        let mut swapped = MAGIC.to_vec();
        swapped.extend_from_slice(&file[4 + rec..4 + 2 * rec]);
        swapped.extend_from_slice(&file[4..4 + rec]);
        swapped.extend_from_slice(&file[4 + 2 * rec..]);
        assert!(open_file(&swapped, &key, 16).is_err());
        // Appending a byte, or a whole record.
        let mut longer = file.clone();
        longer.push(0);
        assert!(open_file(&longer, &key, 16).is_err());
        let mut again = file.clone();
        again.extend_from_slice(&file[4..4 + rec]);
        assert!(open_file(&again, &key, 16).is_err());
        // Another key, another magic, nothing at all.
        assert!(open_file(&file, &SymmetricKey::generate(), 16).is_err());
        assert!(open_file(b"CLF2", &key, 16).is_err());
        assert!(open_file(b"", &key, 16).is_err());
        // A short record flagged non-final is refused even though it authenticates.
        let mut short = MAGIC.to_vec();
        short.extend_from_slice(&seal_record(0, false, &[1, 2, 3], &key));
        short.extend_from_slice(&seal_record(1, true, &[], &key));
        assert!(open_file(&short, &key, 16).is_err());
    }
}
