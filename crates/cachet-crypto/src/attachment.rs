//! The attachment format: a file cut into 2 MiB chunks, each sealed with
//! `crypto_secretbox` under a fresh per-attachment key and a nonce derived from the
//! chunk's index (whitepaper sections 2.3.2 and 3.5).
//!
//! This module is sans-IO: it seals and opens one chunk at a time, so memory stays at one
//! chunk whatever the file size; the caller moves the bytes.
//!
//! # Version 1 (the whitepaper's format)
//! Chunk `i` (counting from 1) is `crypto_secretbox(plaintext_i, nonce_i, key)` with
//! `nonce_i` the 24-byte little-endian encoding of `i` (what libsodium's
//! `sodium_increment` yields from a nonce of 1). Every chunk but the last holds exactly
//! 2 MiB of plaintext. An empty file has no chunks. The stored object is the
//! concatenation of the sealed chunks (`tag || ciphertext`, 2 MiB + 16 bytes each).
//!
//! Weakness: nothing marks the last chunk, so whoever stores the file can drop whole
//! trailing chunks and the rest still opens. Kept readable, never written by default.
//!
//! # Version 2 (default)
//! As version 1, but the nonce is `le64(i) || 0^14 || 0x02 || f`, where `f` is `0x01`
//! for the final chunk and `0x00` otherwise. A file whose length is a multiple of 2 MiB
//! marks its last full chunk final; an empty file is one empty final chunk. Dropping,
//! appending, reordering or swapping chunks between attachments makes some chunk fail to
//! open, so a reader that reaches the end without error has the whole file. The total
//! length is authenticated too: it follows from the chunk sizes and the final flag.
//!
//! # On several cores
//! Since a chunk's nonce depends only on its position, [`seal_chunks`] and
//! [`open_chunks`] process several chunks at once on worker threads, with a bounded number
//! of chunk buffers, and hand the results on in order: the same bytes and the same checks
//! as [`ChunkSealer`] and [`ChunkOpener`].

pub mod parallel;

pub use parallel::{open_chunks, seal_chunks, Parallelism};

use crate::secretbox::SecretBox;
use crate::{CryptoError, Nonce, SymmetricKey, MAC_LEN, NONCE_LEN};

/// Plaintext bytes per chunk: 2 MiB.
pub const CHUNK_SIZE: usize = 2 * 1024 * 1024;
/// Stored bytes per full chunk: the plaintext plus the Poly1305 tag.
pub const SEALED_CHUNK_SIZE: usize = CHUNK_SIZE + MAC_LEN;

/// Attachment format versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FormatVersion {
    /// The whitepaper's format; truncation at a chunk boundary is not detected.
    V1,
    /// Authenticates the final chunk and so the total length. Default for new attachments.
    #[default]
    V2,
}

impl FormatVersion {
    /// The version number carried in attachment pointers.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
    /// Parses a version number.
    pub fn from_number(n: u32) -> Result<Self, CryptoError> {
        match n {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            other => Err(CryptoError::UnsupportedVersion(other)),
        }
    }
}

/// The nonce of chunk `index` (1-based).
pub fn chunk_nonce(version: FormatVersion, index: u64, is_final: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    if version == FormatVersion::V2 {
        nonce[22] = 0x02;
        nonce[23] = u8::from(is_final);
    }
    Nonce(nonce)
}

/// Number of chunks a plaintext of `len` bytes is cut into.
pub fn chunk_count(version: FormatVersion, len: u64) -> u64 {
    let full = len.div_ceil(CHUNK_SIZE as u64);
    match version {
        FormatVersion::V1 => full,
        FormatVersion::V2 => full.max(1),
    }
}

/// Stored size of a plaintext of `len` bytes.
pub fn sealed_len(version: FormatVersion, len: u64) -> u64 {
    len + chunk_count(version, len) * MAC_LEN as u64
}

/// Seals or opens one chunk in place: [`seal_indexed`] or [`open_indexed`].
type ChunkStep = fn(&SecretBox, FormatVersion, u64, &mut [u8], bool) -> Result<(), CryptoError>;

/// Where a sealer or opener stands in the chunk sequence: both walk the same indices
/// under the same cipher, and both refuse to go past the final chunk.
struct ChunkCursor {
    cipher: SecretBox,
    version: FormatVersion,
    next_index: u64,
    finished: bool,
}

impl ChunkCursor {
    fn new(key: &SymmetricKey, version: FormatVersion) -> Self {
        Self {
            cipher: SecretBox::new(key),
            version,
            next_index: 1,
            finished: false,
        }
    }

    /// Runs `step` (seal or open) on the next chunk, then moves on; `after_final` is the
    /// error for a chunk that comes after the final one.
    fn advance(
        &mut self,
        buffer: &mut [u8],
        is_final: bool,
        after_final: &'static str,
        step: ChunkStep,
    ) -> Result<(), CryptoError> {
        if self.finished {
            return Err(CryptoError::Stream(after_final));
        }
        step(
            &self.cipher,
            self.version,
            self.next_index,
            buffer,
            is_final,
        )?;
        self.next_index += 1;
        self.finished = is_final;
        Ok(())
    }
}

/// Seals an attachment chunk by chunk.
pub struct ChunkSealer {
    cursor: ChunkCursor,
}

impl ChunkSealer {
    /// Starts sealing under `key`, which must be fresh for this attachment.
    pub fn new(key: &SymmetricKey, version: FormatVersion) -> Self {
        Self {
            cursor: ChunkCursor::new(key, version),
        }
    }

    /// Seals the next chunk. Every chunk but the last must be exactly [`CHUNK_SIZE`]
    /// bytes; `is_final` marks the last one (which may be shorter, and empty only when it
    /// is the only chunk).
    pub fn seal_chunk(&mut self, plaintext: &[u8], is_final: bool) -> Result<Vec<u8>, CryptoError> {
        let mut buffer = vec![0u8; MAC_LEN + plaintext.len()];
        buffer[MAC_LEN..].copy_from_slice(plaintext);
        self.seal_chunk_in_place(&mut buffer, is_final)?;
        Ok(buffer)
    }

    /// As [`Self::seal_chunk`], over `buffer = [0; 16] || plaintext`, which becomes the
    /// sealed chunk. Saves an allocation per chunk on the bulk path.
    pub fn seal_chunk_in_place(
        &mut self,
        buffer: &mut [u8],
        is_final: bool,
    ) -> Result<(), CryptoError> {
        self.cursor.advance(
            buffer,
            is_final,
            "chunk sealed after the final one",
            seal_indexed,
        )
    }

    /// Whether the final chunk has been sealed.
    pub fn is_finished(&self) -> bool {
        self.cursor.finished
    }
}

/// Opens an attachment chunk by chunk, in order.
pub struct ChunkOpener {
    cursor: ChunkCursor,
}

impl ChunkOpener {
    /// Starts opening under the attachment's key.
    pub fn new(key: &SymmetricKey, version: FormatVersion) -> Self {
        Self {
            cursor: ChunkCursor::new(key, version),
        }
    }

    /// Opens the next sealed chunk. `is_last` says whether the stored object ends after
    /// it; in version 2 the chunk must then carry the final flag, and must not otherwise.
    pub fn open_chunk(&mut self, sealed: &[u8], is_last: bool) -> Result<Vec<u8>, CryptoError> {
        let mut buffer = sealed.to_vec();
        self.open_chunk_in_place(&mut buffer, is_last)?;
        buffer.drain(..MAC_LEN);
        Ok(buffer)
    }

    /// As [`Self::open_chunk`], in place: on success the plaintext is `buffer[16..]`.
    pub fn open_chunk_in_place(
        &mut self,
        buffer: &mut [u8],
        is_last: bool,
    ) -> Result<(), CryptoError> {
        self.cursor
            .advance(buffer, is_last, "data after the final chunk", open_indexed)
    }

    /// Call when the stored object has ended: fails if it ended before any final chunk
    /// (version 2), which is how truncation shows.
    pub fn finish(&self) -> Result<(), CryptoError> {
        match (
            self.cursor.version,
            self.cursor.finished,
            self.cursor.next_index,
        ) {
            (_, true, _) => Ok(()),
            (FormatVersion::V1, false, 1) => Ok(()), // v1 empty file: no chunks at all
            _ => Err(CryptoError::Stream(
                "attachment ended before its final chunk",
            )),
        }
    }
}

/// Seals chunk `index` (1-based) over `buffer = [0; 16] || plaintext`, after checking
/// that its size fits its position.
fn seal_indexed(
    cipher: &SecretBox,
    version: FormatVersion,
    index: u64,
    buffer: &mut [u8],
    is_final: bool,
) -> Result<(), CryptoError> {
    let len = buffer
        .len()
        .checked_sub(MAC_LEN)
        .ok_or(CryptoError::Stream("chunk buffer shorter than the tag"))?;
    if len > CHUNK_SIZE || (!is_final && len != CHUNK_SIZE) {
        return Err(CryptoError::Stream(
            "only the final chunk may be shorter than 2 MiB",
        ));
    }
    if len == 0 && (index != 1 || version == FormatVersion::V1) {
        return Err(CryptoError::Stream("empty chunk"));
    }
    cipher.seal_in_place(buffer, &chunk_nonce(version, index, is_final));
    Ok(())
}

/// Opens the stored chunk `buffer` at position `index` (1-based) in place; `is_last` says
/// whether the stored object ends after it. On success the plaintext is `buffer[16..]`.
fn open_indexed(
    cipher: &SecretBox,
    version: FormatVersion,
    index: u64,
    buffer: &mut [u8],
    is_last: bool,
) -> Result<(), CryptoError> {
    if buffer.len() > SEALED_CHUNK_SIZE || (!is_last && buffer.len() != SEALED_CHUNK_SIZE) {
        return Err(CryptoError::Stream("chunk of the wrong size"));
    }
    cipher
        .open_in_place(buffer, &chunk_nonce(version, index, is_last))
        .map_err(|_| {
            CryptoError::Stream("chunk failed to authenticate: corrupted, reordered or truncated")
        })
}

/// Seals a whole in-memory attachment (for small files and tests).
pub fn seal_all(plaintext: &[u8], key: &SymmetricKey, version: FormatVersion) -> Vec<u8> {
    let mut sealer = ChunkSealer::new(key, version);
    let mut out = Vec::with_capacity(sealed_len(version, plaintext.len() as u64) as usize);
    let chunks = chunk_count(version, plaintext.len() as u64) as usize;
    for i in 0..chunks {
        let start = i * CHUNK_SIZE;
        let end = (start + CHUNK_SIZE).min(plaintext.len());
        let sealed = sealer
            .seal_chunk(&plaintext[start..end], i + 1 == chunks)
            .expect("chunk sizes follow chunk_count");
        out.extend_from_slice(&sealed);
    }
    out
}

/// Opens a whole in-memory attachment.
pub fn open_all(
    sealed: &[u8],
    key: &SymmetricKey,
    version: FormatVersion,
) -> Result<Vec<u8>, CryptoError> {
    let mut opener = ChunkOpener::new(key, version);
    let mut out = Vec::with_capacity(sealed.len());
    let mut rest = sealed;
    while !rest.is_empty() {
        let take = rest.len().min(SEALED_CHUNK_SIZE);
        let (chunk, tail) = rest.split_at(take);
        out.extend_from_slice(&opener.open_chunk(chunk, tail.is_empty())?);
        rest = tail;
    }
    opener.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_the_edges() {
        let key = SymmetricKey::generate();
        for version in [FormatVersion::V1, FormatVersion::V2] {
            for len in [
                0,
                1,
                CHUNK_SIZE - 1,
                CHUNK_SIZE,
                CHUNK_SIZE + 1,
                2 * CHUNK_SIZE,
            ] {
                let plain = data(len);
                let sealed = seal_all(&plain, &key, version);
                assert_eq!(
                    sealed.len() as u64,
                    sealed_len(version, len as u64),
                    "{version:?} {len}"
                );
                assert_eq!(
                    open_all(&sealed, &key, version).unwrap(),
                    plain,
                    "{version:?} {len}"
                );
            }
        }
    }

    #[test]
    fn v1_truncation_goes_unnoticed_but_v2_catches_it() {
        let key = SymmetricKey::generate();
        let plain = data(2 * CHUNK_SIZE + 10);
        let v1 = seal_all(&plain, &key, FormatVersion::V1);
        let truncated = &v1[..2 * SEALED_CHUNK_SIZE];
        // The weakness that motivates version 2: a shorter file opens without complaint.
        assert_eq!(
            open_all(truncated, &key, FormatVersion::V1).unwrap(),
            plain[..2 * CHUNK_SIZE]
        );

        let v2 = seal_all(&plain, &key, FormatVersion::V2);
        for cut in [SEALED_CHUNK_SIZE, 2 * SEALED_CHUNK_SIZE, 0] {
            assert!(
                open_all(&v2[..cut], &key, FormatVersion::V2).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn v2_rejects_extension_reordering_and_downgrade() {
        let key = SymmetricKey::generate();
        let plain = data(2 * CHUNK_SIZE);
        let v2 = seal_all(&plain, &key, FormatVersion::V2);
        // Appending a copy of the first chunk after the final one.
        let mut extended = v2.clone();
        extended.extend_from_slice(&v2[..SEALED_CHUNK_SIZE]);
        assert!(open_all(&extended, &key, FormatVersion::V2).is_err());
        // Swapping the two chunks.
        let mut swapped = v2[SEALED_CHUNK_SIZE..].to_vec();
        swapped.extend_from_slice(&v2[..SEALED_CHUNK_SIZE]);
        assert!(open_all(&swapped, &key, FormatVersion::V2).is_err());
        // Reading a v2 object as v1 fails: the nonces are domain-separated.
        assert!(open_all(&v2, &key, FormatVersion::V1).is_err());
    }

    #[test]
    fn sealer_enforces_chunk_sizes() {
        let key = SymmetricKey::generate();
        let mut sealer = ChunkSealer::new(&key, FormatVersion::V2);
        assert!(sealer.seal_chunk(&[0; 10], false).is_err());
        assert!(sealer.seal_chunk(&[0; 10], true).is_ok());
        assert!(sealer.seal_chunk(&[0; 10], true).is_err());
        assert_eq!(
            FormatVersion::from_number(3),
            Err(CryptoError::UnsupportedVersion(3))
        );
    }

    #[test]
    fn v1_nonces_are_the_incrementing_counter() {
        let n = chunk_nonce(FormatVersion::V1, 1, true);
        let mut expected = [0u8; 24];
        expected[0] = 1;
        assert_eq!(n.0, expected);
        let n = chunk_nonce(FormatVersion::V1, 256, false);
        expected[0] = 0;
        expected[1] = 1;
        assert_eq!(n.0, expected);
    }
}
