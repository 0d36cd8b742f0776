//! Local files sealed under the Local File Key (whitepaper 3.4): `crypto_secretbox` with
//! a random nonce prepended.
//!
//! So that files of any size stream through constant memory, a local file is cut into
//! records of at most 2 MiB of plaintext, each sealed on its own:
//!
//! ```text
//! file    = "CLF1" || record*
//! record  = nonce (24) || crypto_secretbox(header || data, nonce, local_file_key)
//! header  = le64(record index, from 0) || final flag (1 byte: 1 on the last record)
//! ```
//!
//! Every record but the last holds exactly 2 MiB of data, so a reader knows where each
//! record ends. The index and final flag inside the sealed bytes make dropped, reordered,
//! appended or truncated records fail to open.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cachet_crypto::{secretbox, Nonce, SymmetricKey, MAC_LEN, NONCE_LEN};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// The first four bytes of every local file.
pub const LOCAL_FILE_MAGIC: &[u8; 4] = b"CLF1";
const MAGIC: &[u8; 4] = LOCAL_FILE_MAGIC;
const RECORD_DATA: usize = 2 * 1024 * 1024;
const HEADER: usize = 9;
const RECORD_SEALED: usize = NONCE_LEN + MAC_LEN + HEADER + RECORD_DATA;

/// A directory of files sealed under the Local File Key.
#[derive(Clone)]
pub struct LocalFiles {
    dir: PathBuf,
    key: SymmetricKey,
}

impl std::fmt::Debug for LocalFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFiles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        || name.starts_with('.')
    {
        return Err(ClientError::InvalidInput(format!(
            "local file name {name:?} is not allowed"
        )));
    }
    Ok(())
}

/// One record of a local file: `nonce ‖ crypto_secretbox(le64(index) ‖ final ‖ data)`.
/// Files are written with a fresh random nonce per record; a given nonce serves the test
/// vectors.
pub fn seal_local_record(
    key: &SymmetricKey,
    index: u64,
    is_final: bool,
    data: &[u8],
    nonce: &Nonce,
) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(HEADER + data.len()));
    plain.extend_from_slice(&index.to_le_bytes());
    plain.push(u8::from(is_final));
    plain.extend_from_slice(data);
    let mut sealed = nonce.as_bytes().to_vec();
    sealed.extend_from_slice(&secretbox::SecretBox::new(key).seal_with_nonce(&plain, nonce));
    sealed
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl LocalFiles {
    /// The store in `dir` under `key`.
    pub fn new(dir: impl Into<PathBuf>, key: SymmetricKey) -> Self {
        Self {
            dir: dir.into(),
            key,
        }
    }

    /// Where the sealed file `name` lives.
    pub fn path_of(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.sealed")))
    }

    /// Whether `name` is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.path_of(name).map(|p| p.exists()).unwrap_or(false)
    }

    /// Seals everything `reader` yields into the file `name`, replacing it atomically.
    pub fn write_from(&self, name: &str, reader: &mut impl Read) -> Result<u64> {
        let path = self.path_of(name)?;
        crate::vault::create_private_dir(&self.dir)?;
        let tmp = path.with_extension("sealed.tmp");
        let mut out = crate::vault::private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ClientError::io(&tmp, e))?;
        out.write_all(MAGIC).map_err(|e| ClientError::io(&tmp, e))?;
        let mut current = Zeroizing::new(vec![0u8; RECORD_DATA]);
        let mut next = Zeroizing::new(vec![0u8; RECORD_DATA]);
        let mut len = read_full(reader, &mut current).map_err(|e| ClientError::io(&tmp, e))?;
        let mut index = 0u64;
        let mut total = 0u64;
        loop {
            // Read ahead one record to know whether this one is the last.
            let next_len = if len == RECORD_DATA {
                read_full(reader, &mut next).map_err(|e| ClientError::io(&tmp, e))?
            } else {
                0
            };
            let is_final = next_len == 0;
            let record = seal_local_record(
                &self.key,
                index,
                is_final,
                &current[..len],
                &Nonce::random(),
            );
            out.write_all(&record)
                .map_err(|e| ClientError::io(&tmp, e))?;
            total += len as u64;
            if is_final {
                break;
            }
            std::mem::swap(&mut current, &mut next);
            len = next_len;
            index += 1;
        }
        out.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
        drop(out);
        fs::rename(&tmp, &path).map_err(|e| ClientError::io(&path, e))?;
        Ok(total)
    }

    /// Seals `bytes` into the file `name`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_from(name, &mut &bytes[..]).map(|_| ())
    }

    /// Opens the file `name` and writes its plaintext to `writer`, record by record.
    /// Fails without writing anything more once a record does not authenticate.
    pub fn read_into(&self, name: &str, writer: &mut impl Write) -> Result<u64> {
        let path = self.path_of(name)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotFound {
                    kind: "local file",
                    id: name.to_owned(),
                })
            }
            Err(e) => return Err(ClientError::io(&path, e)),
        };
        let corrupt = || ClientError::Integrity(format!("local file {name} is damaged"));
        let mut magic = [0u8; 4];
        if read_full(&mut file, &mut magic).map_err(|e| ClientError::io(&path, e))? != 4
            || &magic != MAGIC
        {
            return Err(corrupt());
        }
        let mut record = vec![0u8; RECORD_SEALED];
        let mut index = 0u64;
        let mut total = 0u64;
        loop {
            let n = read_full(&mut file, &mut record).map_err(|e| ClientError::io(&path, e))?;
            if n < NONCE_LEN + MAC_LEN + HEADER {
                return Err(corrupt());
            }
            let plain = Zeroizing::new(
                secretbox::open_prefixed(&record[..n], &self.key).map_err(|_| corrupt())?,
            );
            let (header, data) = plain.split_at(HEADER);
            let is_final = header[8] == 1;
            if header[..8] != index.to_le_bytes() || (!is_final && data.len() != RECORD_DATA) {
                return Err(corrupt());
            }
            writer
                .write_all(data)
                .map_err(|e| ClientError::io(&path, e))?;
            total += data.len() as u64;
            if is_final {
                let mut extra = [0u8; 1];
                if read_full(&mut file, &mut extra).map_err(|e| ClientError::io(&path, e))? != 0 {
                    return Err(corrupt());
                }
                return Ok(total);
            }
            if n < RECORD_SEALED {
                return Err(corrupt());
            }
            index += 1;
        }
    }

    /// Opens the file `name` into memory.
    pub fn read(&self, name: &str) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        self.read_into(name, &mut *out)?;
        Ok(out)
    }

    /// Deletes the file `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::io(path, e)),
        }
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_record_edges_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(dir.path(), SymmetricKey::generate());
        for len in [0, 1, RECORD_DATA - 1, RECORD_DATA, RECORD_DATA + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            files.write("f", &data).unwrap();
            assert_eq!(*files.read("f").unwrap(), data, "len {len}");
        }
        let raw = fs::read(files.path_of("f").unwrap()).unwrap();
        // Dropping the final record is noticed.
        fs::write(files.path_of("f").unwrap(), &raw[..4 + RECORD_SEALED]).unwrap();
        assert!(files.read("f").is_err());
        let mut flipped = raw.clone();
        flipped[100] ^= 1;
        fs::write(files.path_of("f").unwrap(), &flipped).unwrap();
        assert!(files.read("f").is_err());
        let other = LocalFiles::new(dir.path(), SymmetricKey::generate());
        fs::write(files.path_of("f").unwrap(), &raw).unwrap();
        assert!(other.read("f").is_err());
        assert!(files.path_of("../x").is_err());
    }
}
