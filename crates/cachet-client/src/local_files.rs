//! Local files sealed under the Local File Key (whitepaper 3.4): `crypto_secretbox` with
//! a random nonce prepended, cut into records of at most 2 MiB of plaintext so that files
//! of any size stream through constant memory. The format (magic, records, index and
//! final flag) lives in [`cachet_crypto::local_file`]; this module reads and writes it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cachet_crypto::local_file::{seal_record, RecordOpener, MAGIC, RECORD_DATA};
use cachet_crypto::{Nonce, SymmetricKey};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// The first four bytes of every local file.
pub const LOCAL_FILE_MAGIC: &[u8; 4] = MAGIC;

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
    cachet_crypto::local_file::seal_record_with_nonce(index, is_final, data, key, nonce)
}

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
        let mut out = File::create(&tmp).map_err(|e| ClientError::io(&tmp, e))?;
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
            out.write_all(&seal_record(index, is_final, &current[..len], &self.key))
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
        let n = read_full(&mut file, &mut magic).map_err(|e| ClientError::io(&path, e))?;
        RecordOpener::check_magic(&magic[..n]).map_err(|_| corrupt())?;
        let mut opener = RecordOpener::new(&self.key);
        let mut record = vec![0u8; opener.next_record_len()];
        let mut total = 0u64;
        loop {
            let n = read_full(&mut file, &mut record).map_err(|e| ClientError::io(&path, e))?;
            let (data, is_final) = opener.open(&record[..n]).map_err(|_| corrupt())?;
            writer
                .write_all(&data)
                .map_err(|e| ClientError::io(&path, e))?;
            total += data.len() as u64;
            if is_final {
                let mut extra = [0u8; 1];
                if read_full(&mut file, &mut extra).map_err(|e| ClientError::io(&path, e))? != 0 {
                    return Err(corrupt());
                }
                return Ok(total);
            }
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
        fs::write(
            files.path_of("f").unwrap(),
            &raw[..4 + cachet_crypto::local_file::sealed_record_len(RECORD_DATA)],
        )
        .unwrap();
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
