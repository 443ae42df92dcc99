//! Directories: we remove only what we created.

use std::collections::hash_map::RandomState;
use std::fs::DirBuilder;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// Creates `path` (not its parents) with mode 0700; fails if it exists.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), Error> {
    DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("creating directory", path, e))
}

/// A directory this process created, removed (recursively) on [`OwnedDir::remove`] or drop.
#[derive(Debug)]
pub(crate) struct OwnedDir {
    path: PathBuf,
    removed: bool,
}

impl OwnedDir {
    /// Creates a new, uniquely named 0700 subdirectory of `base`, which must exist.
    pub(crate) fn create_in(base: &Path) -> Result<Self, Error> {
        let meta =
            std::fs::metadata(base).map_err(|e| Error::io("using base directory", base, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                "using base directory",
                base,
                io::Error::new(ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let pid = std::process::id();
        for _ in 0..16 {
            let mut h = RandomState::new().build_hasher();
            h.write_u32(pid);
            let name = format!("cwtch-testnet-{pid}-{:08x}", h.finish() as u32);
            let path = base.join(name);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    return Ok(OwnedDir {
                        path,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("creating directory", path, e)),
            }
        }
        Err(Error::io(
            "creating a directory in",
            base,
            io::Error::new(ErrorKind::AlreadyExists, "no unused name found"),
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it (symlinks are removed, not followed).
    pub(crate) fn remove(&mut self) -> Result<(), Error> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        // A helper process killed a moment ago may still be writing into the directory
        // ("Directory not empty"): try a few times.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match std::fs::remove_dir_all(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(_) if attempts < 5 => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(Error::io("removing directory", self.path.clone(), e)),
            }
        }
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_unique_dirs_and_removes_only_them() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("keep"), b"x").unwrap();
        let a = OwnedDir::create_in(base.path()).unwrap();
        let mut b = OwnedDir::create_in(base.path()).unwrap();
        assert_ne!(a.path(), b.path());
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(a.path().join("f"), b"y").unwrap();
        let a_path = a.path().to_owned();
        drop(a);
        assert!(!a_path.exists());
        b.remove().unwrap();
        assert!(!b.path().exists());
        assert!(base.path().join("keep").exists());
    }

    #[test]
    fn missing_base_is_an_error() {
        let base = tempfile::tempdir().unwrap();
        assert!(OwnedDir::create_in(&base.path().join("nope")).is_err());
    }
}
