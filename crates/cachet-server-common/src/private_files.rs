//! Files and directories only the server's own account may read: a server's data
//! directory and everything it writes there (database and its `-wal`/`-shm` files,
//! attachment chunks, development codes, key shares) hold metadata and secrets of every
//! user.
//!
//! Directories are created `0700`, files `0600`, whatever the process umask; existing
//! ones that are more open are tightened (and the change logged). On other platforms
//! these are plain creations.

use std::path::Path;

/// Mode of directories the server creates.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of files the server creates.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with mode `0700`; an existing `dir` that group or
/// others may use is tightened to `0700`.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    tighten(dir, true)
}

/// Creates `file` empty with mode `0600` if it is missing (never truncates); an existing
/// one that group or others may read is tightened to `0600`.
pub fn create_file(file: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(file)?;
    tighten(file, false)
}

/// A new file opened for writing with mode `0600`; fails if it exists.
pub fn create_new(file: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(file)
}

/// Tightens an existing file to `0600`; a missing one is left missing.
pub fn tighten_if_present(file: &Path) -> std::io::Result<()> {
    match tighten(file, false) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
fn tighten(path: &Path, is_dir: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    let wanted = if is_dir { DIR_MODE } else { FILE_MODE };
    if mode & 0o077 != 0 {
        tracing::info!(
            path = %path.display(),
            was = %format!("{mode:o}"),
            now = %format!("{wanted:o}"),
            "restricting access to the server's own account"
        );
        std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode((mode & 0o700) | wanted),
        )?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(path: &Path, _is_dir: bool) -> std::io::Result<()> {
    std::fs::metadata(path).map(|_| ())
}
