//! The per-profile process lock: two processes never run the same profile at once.
//!
//! An advisory lock (`flock` on Unix, via `std::fs::File::try_lock`) on the file
//! [`LOCK_FILE`] in the profile's directory, held as long as the profile is loaded and
//! released by the operating system when the process dies, so a crash never leaves a stale
//! lock. The file itself stays (it is empty); Go Cwtch ignores it, and export/import only
//! carry `db`, `SALT` and `VERSION`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use cwtch_storage::ProfileId;

use crate::error::{Error, Result};

/// Name of the lock file inside `profiles/<id>/`.
pub const LOCK_FILE: &str = "cwtch.lock";

/// A held profile lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct ProfileLock {
    _file: File,
}

impl ProfileLock {
    /// Take the lock of the profile in `dir`, or fail with [`Error::ProfileLocked`] if another
    /// process (or another load in this process) holds it.
    pub(crate) fn acquire(dir: &Path, profile: &ProfileId) -> Result<ProfileLock> {
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|source| Error::Io {
            op: "open lock file",
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(ProfileLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::ProfileLocked {
                profile: profile.clone(),
                lock: path,
            }),
            Err(TryLockError::Error(source)) => Err(Error::Io {
                op: "lock",
                path,
                source,
            }),
        }
    }

    /// Whether another holder has the lock of the profile in `dir` right now.
    pub(crate) fn is_held(dir: &Path, profile: &ProfileId) -> bool {
        matches!(
            ProfileLock::acquire(dir, profile),
            Err(Error::ProfileLocked { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let id = ProfileId::parse("c39e0660a885b6000173ffea9d214b5c").unwrap();
        let l = ProfileLock::acquire(dir.path(), &id).unwrap();
        assert!(matches!(
            ProfileLock::acquire(dir.path(), &id),
            Err(Error::ProfileLocked { .. })
        ));
        assert!(ProfileLock::is_held(dir.path(), &id));
        drop(l);
        assert!(!ProfileLock::is_held(dir.path(), &id));
        let _l = ProfileLock::acquire(dir.path(), &id).unwrap();
        assert!(dir.path().join(LOCK_FILE).exists());
    }
}
