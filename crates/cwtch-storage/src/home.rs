//! A Cwtch home directory (`--data-dir`): `profiles/<id>/{VERSION, SALT, db}`.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use torv3::Identity;

use crate::archive::{self, ImportLimits};
use crate::model::ProfileId;
use crate::password::{ProfileKey, SALT_LEN};
use crate::sqlcipher::{self, files, Profile, STORAGE_VERSION};
use crate::store::ProfileHome;
use crate::{fsutil, rekey, Error, Password};

/// Prefix of the staging directory a new profile is built in before it appears.
const CREATING_PREFIX: &str = ".creating-";
/// Prefix of the staging directory an import is unpacked and checked in.
const IMPORTING_PREFIX: &str = ".importing-";
/// Prefix of the scratch copy a crashed profile is checked on before SQLite rolls it back.
const CHECKING_PREFIX: &str = ".checking-";
/// Prefix a profile directory is renamed to before it is erased.
const DELETING_PREFIX: &str = ".deleting-";

/// A Cwtch home directory holding Go-compatible profiles.
///
/// Cheap to clone (clones share the record of which profiles are open). At most one process
/// may use a home at a time, as with Go Cwtch; within the process, a profile can be open only
/// once at a time ([`Error::ProfileInUse`]).
#[derive(Clone, Debug)]
pub struct CwtchHome {
    inner: Arc<HomeInner>,
}

#[derive(Debug)]
struct HomeInner {
    root: PathBuf,
    profiles: PathBuf,
    open: Mutex<HashSet<ProfileId>>,
}

impl HomeInner {
    fn open_set(&self) -> MutexGuard<'_, HashSet<ProfileId>> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks a profile open in this process; released on drop.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    home: Arc<HomeInner>,
    id: ProfileId,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.home.open_set().remove(&self.id);
    }
}

impl CwtchHome {
    /// Open (creating if needed) a Cwtch home at `path`.
    ///
    /// A new directory and its `profiles/` are created 0700. An existing one must be a
    /// directory owned by us with no group or other permissions
    /// ([`Error::InsecurePermissions`], [`Error::NotOwned`]): it is refused rather than
    /// "fixed", since someone else may already have read it. Leftover staging directories
    /// of interrupted creations, imports and deletions are removed (deletions are finished).
    pub fn open(path: impl AsRef<Path>) -> Result<CwtchHome, Error> {
        let root = path.as_ref().to_path_buf();
        if !fsutil::exists(&root) {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
            }
            fsutil::create_private_dir(&root)?;
        }
        fsutil::check_private_dir(&root)?;
        let profiles = root.join("profiles");
        if !fsutil::exists(&profiles) {
            fsutil::create_private_dir(&profiles)?;
        }
        fsutil::check_private_dir(&profiles)?;
        let home = CwtchHome {
            inner: Arc::new(HomeInner {
                root,
                profiles,
                open: Mutex::new(HashSet::new()),
            }),
        };
        home.clean_staging()?;
        Ok(home)
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The directory of a profile (which may not exist).
    pub fn profile_dir(&self, id: &ProfileId) -> PathBuf {
        self.inner.profiles.join(id.as_str())
    }

    /// Export a profile that is not open, as Go's archive (`<id>/db`, `<id>/SALT`,
    /// `<id>/VERSION`, gzip'd tar). For an open profile use [`Profile::export`].
    pub fn export_profile(&self, id: &ProfileId, out: impl Write) -> Result<(), Error> {
        let _guard = self.acquire(id)?;
        let dir = self.existing_dir(id)?;
        if rekey::pending(&dir) || sqlcipher::has_journal(&dir) {
            return Err(Error::RecoveryPending(dir));
        }
        archive::write_profile_archive(out, id, &dir)
    }

    /// Import a profile archive (Go's export format) and open it. See
    /// [`CwtchHome::import_profile_with_limits`].
    pub fn import_profile(
        &self,
        archive: impl Read,
        password: &Password,
    ) -> Result<Profile, Error> {
        self.import_profile_with_limits(archive, password, &ImportLimits::default())
    }

    /// Import a profile archive and open it.
    ///
    /// The archive is treated as hostile: only `<id>/db`, `<id>/SALT` and `<id>/VERSION`
    /// are taken (other regular files under `<id>/` are skipped), and they are written under
    /// names we choose in a fresh 0700 staging directory, never at paths taken from the
    /// archive. Absolute or `..` paths, links and special files, mixed ids, duplicates and
    /// members or totals over `limits` refuse the whole archive. The staged profile must open
    /// with `password` (all checks of [`ProfileHome::open_profile`]) before it is moved into
    /// place; an existing id is refused with [`Error::ProfileExists`].
    pub fn import_profile_with_limits(
        &self,
        archive: impl Read,
        password: &Password,
        limits: &ImportLimits,
    ) -> Result<Profile, Error> {
        let staging = self.staging_dir(IMPORTING_PREFIX)?;
        let result = (|| {
            let id = archive::extract_profile_archive(archive, &staging, limits)?;
            // The full open checks, read-only, on the staged copy.
            drop(Profile::checked(
                id.clone(),
                staging.to_path_buf(),
                password,
                sqlcipher::Access::ReadOnly,
            )?);
            let _guard = self.acquire(&id)?;
            let target = self.profile_dir(&id);
            if fsutil::exists(&target) {
                return Err(Error::ProfileExists(id));
            }
            fsutil::rename(&staging, &target)?;
            fsutil::sync_dir(&self.inner.profiles)?;
            Ok(id)
        })();
        match result {
            Ok(id) => {
                tracing::info!(profile = %id, "imported profile");
                self.open_profile(&id, password)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// A crash in the middle of a write left a hot journal, which SQLite rolls back (raw page
    /// copies, no key needed) on the first read of a read-write connection. Do that first on
    /// a scratch copy, with all the open checks, so that a wrong password or a damaged
    /// profile leaves the real files untouched.
    fn check_before_rollback(
        &self,
        id: &ProfileId,
        dir: &Path,
        password: &Password,
    ) -> Result<(), Error> {
        let scratch = self.staging_dir(CHECKING_PREFIX)?;
        let result = (|| {
            for name in [files::VERSION, files::SALT, files::DB, files::DB_JOURNAL] {
                let (from, to) = (dir.join(name), scratch.join(name));
                let mut src = fs::File::open(&from).map_err(Error::io("read", &from))?;
                let mut dst = fsutil::new_file_options()
                    .open(&to)
                    .map_err(Error::io("create", &to))?;
                std::io::copy(&mut src, &mut dst).map_err(Error::io("copy", &from))?;
            }
            drop(Profile::checked(
                id.clone(),
                scratch.to_path_buf(),
                password,
                sqlcipher::Access::ReadWrite,
            )?);
            Ok(())
        })();
        erase_dir(&scratch)?;
        result
    }

    fn acquire(&self, id: &ProfileId) -> Result<OpenGuard, Error> {
        let mut open = self.inner.open_set();
        if !open.insert(id.clone()) {
            return Err(Error::ProfileInUse(id.clone()));
        }
        Ok(OpenGuard {
            home: Arc::clone(&self.inner),
            id: id.clone(),
        })
    }

    fn existing_dir(&self, id: &ProfileId) -> Result<PathBuf, Error> {
        let dir = self.profile_dir(id);
        match fs::symlink_metadata(&dir) {
            Ok(md) if md.is_dir() => Ok(dir),
            Ok(_) => Err(Error::NotADirectory(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::ProfileNotFound(id.clone()))
            }
            Err(e) => Err(Error::io("inspect", dir)(e)),
        }
    }

    /// A fresh private directory `profiles/<prefix><random>`, held by this process until the
    /// returned guard is dropped (see [`Staging`]).
    fn staging_dir(&self, prefix: &str) -> Result<Staging, Error> {
        let tag = ProfileId::random(&mut rand_core::OsRng);
        let dir = self.inner.profiles.join(format!("{prefix}{tag}"));
        let lock_path = self
            .inner
            .profiles
            .join(format!("{prefix}{tag}{STAGING_LOCK_SUFFIX}"));
        // The lock exists and is held before the directory exists, and is removed only after
        // the directory is gone: a staging directory whose lock can be taken is abandoned.
        let lock = fsutil::new_file_options()
            .open(&lock_path)
            .map_err(Error::io("create", &lock_path))?;
        lock.try_lock().map_err(|e| {
            Error::io("lock", &lock_path)(match e {
                fs::TryLockError::Error(e) => e,
                fs::TryLockError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
            })
        })?;
        if let Err(e) = fsutil::create_private_dir(&dir) {
            let _ = fs::remove_file(&lock_path);
            return Err(e);
        }
        Ok(Staging {
            dir,
            lock_path,
            _lock: lock,
        })
    }

    /// Remove staging directories abandoned by a crash (their owner's lock is free); leave
    /// alone those another process or handle is working in; finish interrupted deletions.
    fn clean_staging(&self) -> Result<(), Error> {
        let profiles = &self.inner.profiles;
        let entries = fs::read_dir(profiles).map_err(Error::io("list", profiles))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("list", profiles))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.starts_with(DELETING_PREFIX) {
                tracing::info!("finishing an interrupted profile deletion");
                erase_dir(&path)?;
                continue;
            }
            let staging = name.starts_with(CREATING_PREFIX)
                || name.starts_with(IMPORTING_PREFIX)
                || name.starts_with(CHECKING_PREFIX);
            if !staging {
                continue;
            }
            if let Some(dir_name) = name.strip_suffix(STAGING_LOCK_SUFFIX) {
                // A lock whose directory is gone: its owner crashed between removing the
                // directory and the lock, or is just starting. Only old ones are removed.
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > ORPHAN_LOCK_AGE);
                if old && !fsutil::exists(&profiles.join(dir_name)) && lock_is_free(&path) {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            let lock_path = profiles.join(format!("{name}{STAGING_LOCK_SUFFIX}"));
            if fsutil::exists(&lock_path) && !lock_is_free(&lock_path) {
                continue; // in use by another process or handle
            }
            tracing::info!("removing an interrupted profile creation, import or check");
            erase_dir(&path)?;
            let _ = fs::remove_file(&lock_path);
        }
        Ok(())
    }
}

/// Suffix of the lock file next to a staging directory.
const STAGING_LOCK_SUFFIX: &str = ".lock";
/// A staging lock without its directory is removed only when older than this.
const ORPHAN_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether nobody holds the lock on `path` (opening and locking it briefly to find out).
fn lock_is_free(path: &Path) -> bool {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f.try_lock().is_ok(),
        Err(_) => false,
    }
}

/// A staging directory in use by this process. A sibling lock file, locked for the guard's
/// lifetime, tells every other process (and every other `CwtchHome` on the same directory)
/// to leave it alone; dropping the guard releases and removes the lock. The directory itself
/// is renamed into place or removed by the code that created it.
struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: fs::File,
}

impl std::ops::Deref for Staging {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.dir
    }
}

impl AsRef<Path> for Staging {
    fn as_ref(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Erase every regular file in `dir` (best effort, see [`fsutil::erase_file`]) and remove it.
fn erase_dir(dir: &Path) -> Result<(), Error> {
    let entries = fs::read_dir(dir).map_err(Error::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(Error::io("inspect", &path))?;
        if ft.is_file() {
            fsutil::erase_file(&path)?;
        }
    }
    fs::remove_dir_all(dir).map_err(Error::io("remove", dir))
}

impl ProfileHome for CwtchHome {
    type Profile = Profile;

    fn list_profiles(&self) -> Result<Vec<ProfileId>, Error> {
        let profiles = &self.inner.profiles;
        let mut ids = Vec::new();
        for entry in fs::read_dir(profiles).map_err(Error::io("list", profiles))? {
            let entry = entry.map_err(Error::io("list", profiles))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(Ok(id))) = (is_dir, entry.file_name().to_str().map(ProfileId::parse))
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn create_profile_with_identity(
        &self,
        name: &str,
        password: &Password,
        identity: &Identity,
    ) -> Result<Profile, Error> {
        password.check_new()?;
        let id = ProfileId::random(&mut rand_core::OsRng);
        let staging = self.staging_dir(CREATING_PREFIX)?;
        let result = (|| {
            fsutil::write_new_file(&staging.join(files::VERSION), STORAGE_VERSION)?;
            let mut salt = zeroize::Zeroizing::new([0u8; SALT_LEN]);
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, salt.as_mut());
            fsutil::write_new_file(&staging.join(files::SALT), salt.as_ref())?;
            let key = ProfileKey::derive(password, salt.as_ref());
            let db = staging.join(files::DB);
            // Create the file ourselves so it is 0600; SQLite treats an empty file as new.
            fsutil::write_new_file(&db, b"")?;
            let rows = sqlcipher::creation_rows(name, password, identity);
            sqlcipher::initialise_db(&db, &key, &rows)?;
            fsutil::sync_file(&db)?;
            fsutil::sync_dir(&staging)?;
            let _guard = self.acquire(&id)?;
            fsutil::rename(&staging, &self.profile_dir(&id))?;
            fsutil::sync_dir(&self.inner.profiles)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        tracing::info!(profile = %id, "created profile");
        self.open_profile(&id, password)
    }

    fn open_profile(&self, id: &ProfileId, password: &Password) -> Result<Profile, Error> {
        let guard = self.acquire(id)?;
        let dir = self.existing_dir(id)?;
        rekey::recover(&dir)?;
        if sqlcipher::has_journal(&dir) {
            self.check_before_rollback(id, &dir, password)?;
        }
        Profile::open_read_write(id.clone(), dir, password, guard)
    }

    fn delete_profile(&self, id: &ProfileId, password: &Password) -> Result<(), Error> {
        // Opening proves the password (and takes the in-use guard until we are done).
        let profile = self.open_profile(id, password)?;
        let _guard = profile.into_guard();
        let dir = self.profile_dir(id);
        let doomed = self.inner.profiles.join(format!("{DELETING_PREFIX}{id}"));
        // Rename first, so that a crash part-way leaves no half-erased "profile" behind;
        // `CwtchHome::open` finishes the job.
        fsutil::rename(&dir, &doomed)?;
        fsutil::sync_dir(&self.inner.profiles)?;
        erase_dir(&doomed)?;
        fsutil::sync_dir(&self.inner.profiles)?;
        tracing::info!(profile = %id, "deleted profile");
        Ok(())
    }
}

#[cfg(test)]
mod staging_tests {
    use super::*;

    #[test]
    fn held_staging_survives_another_open_and_abandoned_staging_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("home");
        let home = CwtchHome::open(&root).unwrap();
        let held = home.staging_dir(CREATING_PREFIX).unwrap();
        std::fs::write(held.join("VERSION"), b"2").unwrap();
        // An abandoned staging directory: no lock file (its owner finished or crashed).
        let abandoned = home
            .inner
            .profiles
            .join(format!("{IMPORTING_PREFIX}deadbeef"));
        std::fs::create_dir(&abandoned).unwrap();
        // Another handle on the same home (as another process would) cleans up.
        let _other = CwtchHome::open(&root).unwrap();
        assert!(
            held.join("VERSION").exists(),
            "a directory in use was removed"
        );
        assert!(!abandoned.exists(), "an abandoned directory was kept");
        // Once released, its lock file goes, and the next open removes what is left.
        let dir = held.to_path_buf();
        drop(held);
        assert!(!home
            .inner
            .profiles
            .join(format!(
                "{}{STAGING_LOCK_SUFFIX}",
                dir.file_name().unwrap().to_str().unwrap()
            ))
            .exists());
        let _third = CwtchHome::open(&root).unwrap();
        assert!(!dir.exists());
    }
}
