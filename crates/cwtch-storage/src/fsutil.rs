//! File-system helpers: private directories and files, durable writes, best-effort erasure.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::Error;

/// Create a directory readable only by us (0700).
pub(crate) fn create_private_dir(path: &Path) -> Result<(), Error> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(Error::io("create directory", path))
}

/// Check that `path` is a directory owned by us that no one else can access.
pub(crate) fn check_private_dir(path: &Path) -> Result<(), Error> {
    let md = fs::metadata(path).map_err(Error::io("inspect", path))?;
    if !md.is_dir() {
        return Err(Error::NotADirectory(path.to_owned()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ours = rustix::process::geteuid().as_raw();
        if md.uid() != ours {
            return Err(Error::NotOwned {
                path: path.to_owned(),
                owner: md.uid(),
                ours,
            });
        }
        let mode = md.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

/// Options for creating a new private (0600) file; fails if it exists.
pub(crate) fn new_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Create a new private file with `bytes`, flushed to disk.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = new_file_options()
        .open(path)
        .map_err(Error::io("create", path))?;
    f.write_all(bytes).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("sync", path))
}

/// Flush a file to disk.
pub(crate) fn sync_file(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io("sync", path))
}

/// Flush a directory's entries (renames, creations, deletions) to disk.
pub(crate) fn sync_dir(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("sync directory", path))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Rename, mapping errors.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(Error::io("rename", from))
}

/// Remove a file if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path)(e)),
    }
}

/// Whether a path exists (without following a final symlink).
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Overwrite a regular file's contents with zeros, flush, and remove it.
///
/// Best effort only: journaling and copy-on-write file systems, SSD wear levelling,
/// snapshots and backups can keep old blocks. The data is SQLCipher-encrypted anyway; this
/// only removes the ciphertext from the easy places.
pub(crate) fn erase_file(path: &Path) -> Result<(), Error> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("inspect", path)(e)),
    };
    if md.is_file() {
        overwrite_with_zeros(path, md.len())?;
    }
    remove_if_exists(path).map(|_| ())
}

/// Overwrite the first `len` bytes of a file with zeros and flush.
pub(crate) fn overwrite_with_zeros(path: &Path, len: u64) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("open for erasing", path))?;
    let zeros = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        f.write_all(&zeros[..n]).map_err(Error::io("erase", path))?;
        left -= n as u64;
    }
    f.sync_all().map_err(Error::io("sync", path))
}
