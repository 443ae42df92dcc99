//! Directories this crate keeps state in, checked before use.

use std::io;
use std::path::Path;

use crate::Error;

/// Permission bits that must be clear: group and others may not write.
pub(crate) const NO_WRITE_BY_OTHERS: u32 = 0o022;
/// Permission bits that must be clear: group and others may not read, write or enter.
pub(crate) const NO_ACCESS_BY_OTHERS: u32 = 0o077;

/// Create `dir` (and missing parents) with mode 0700; refuse it if it is not a directory or if
/// any of the `forbidden` permission bits is set (an existing directory is not "fixed": someone
/// may already have used the access it grants).
pub(crate) fn prepare_dir(dir: &Path, forbidden: u32) -> Result<(), Error> {
    let err = |source| Error::Directory {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(err)?;
    let meta = std::fs::metadata(dir).map_err(err)?;
    if !meta.is_dir() {
        return Err(err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & forbidden != 0 {
            return Err(Error::InsecureDirectory {
                path: dir.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = forbidden;
    Ok(())
}
