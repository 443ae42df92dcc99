//! Go's profile export format: a gzip'd tar holding `<profileID>/db`, `<profileID>/SALT` and
//! `<profileID>/VERSION` (forward slashes). protocol.md §8.2, CONFIRMED from a
//! re-implementation of Go's `Export`.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};
use std::rc::Rc;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::model::ProfileId;
use crate::password::SALT_LEN;
use crate::sqlcipher::files;
use crate::{fsutil, ArchiveError, Error};

/// Limits on what an import may unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportLimits {
    /// Largest `db` accepted. Default 4 GiB.
    pub max_db_bytes: u64,
    /// Most tar members (of any kind) accepted. Default 16.
    pub max_members: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_db_bytes: 4 << 30,
            max_members: 16,
        }
    }
}

impl ImportLimits {
    /// Limits with this largest `db`.
    pub fn with_max_db_bytes(mut self, max: u64) -> Self {
        self.max_db_bytes = max;
        self
    }
}

/// The three files of a profile, in the order they are archived.
const MEMBERS: [&str; 3] = [files::DB, files::SALT, files::VERSION];

/// Largest `VERSION` file accepted.
const MAX_VERSION_BYTES: u64 = 16;
/// Bytes allowed on top of the members' sizes (tar headers and padding).
const ARCHIVE_OVERHEAD: u64 = 1 << 20;

/// Write the archive of the profile in `dir` to `out`.
pub(crate) fn write_profile_archive(
    out: impl Write,
    id: &ProfileId,
    dir: &Path,
) -> Result<(), Error> {
    let archive_err = |e: io::Error| Error::io("write archive", dir)(e);
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    for name in MEMBERS {
        let path = dir.join(name);
        let file = File::open(&path).map_err(Error::io("read", &path))?;
        let md = file.metadata().map_err(Error::io("inspect", &path))?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(md.len());
        header.set_mode(0o600);
        header.set_mtime(
            md.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        );
        tar.append_data(&mut header, format!("{id}/{name}"), file.take(md.len()))
            .map_err(archive_err)?;
    }
    let gz = tar.into_inner().map_err(archive_err)?;
    let mut out = gz.finish().map_err(archive_err)?;
    out.flush().map_err(archive_err)
}

/// Counts decompressed bytes and fails once `limit` is passed.
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Allow reading exactly to the limit; fail only if there is more.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.set(true);
                    Err(io::Error::other("archive too large"))
                }
            };
        }
        let max = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpack the profile archive from `input` into `staging` (an empty private directory),
/// returning the profile id it names. Writes only `staging/{db,SALT,VERSION}`.
pub(crate) fn extract_profile_archive(
    input: impl Read,
    staging: &Path,
    limits: &ImportLimits,
) -> Result<ProfileId, Error> {
    let total_limit = limits
        .max_db_bytes
        .saturating_add(SALT_LEN as u64 + MAX_VERSION_BYTES + ARCHIVE_OVERHEAD);
    let exceeded = Rc::new(Cell::new(false));
    let reader = Limited {
        inner: GzDecoder::new(input),
        left: total_limit,
        exceeded: Rc::clone(&exceeded),
    };
    let classify = |e: io::Error| -> Error {
        if exceeded.get() {
            ArchiveError::TooLarge(total_limit).into()
        } else {
            ArchiveError::Format(e).into()
        }
    };
    let mut archive = tar::Archive::new(reader);
    let mut id: Option<ProfileId> = None;
    let mut seen = [false; 3];
    let mut count = 0usize;
    for entry in archive.entries().map_err(classify)? {
        let mut entry = entry.map_err(classify)?;
        count += 1;
        if count > limits.max_members {
            return Err(ArchiveError::TooManyMembers(limits.max_members).into());
        }
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue; // pax global metadata: no file
        }
        let path = entry.path().map_err(classify)?.into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_str().ok_or(ArchiveError::BadPath)?),
                _ => return Err(ArchiveError::BadPath.into()),
            }
        }
        let (dir_name, file_name) = match parts.as_slice() {
            [d] => (*d, None),
            [d, f] => (*d, Some(*f)),
            _ => return Err(ArchiveError::BadPath.into()),
        };
        let this_id = ProfileId::parse(dir_name).map_err(|_| ArchiveError::BadPath)?;
        match &id {
            Some(known) if *known != this_id => return Err(ArchiveError::MixedProfiles.into()),
            Some(_) => {}
            None => id = Some(this_id),
        }
        match (kind, file_name) {
            (tar::EntryType::Directory, None) => continue,
            (tar::EntryType::Regular, Some(_)) => {}
            (tar::EntryType::Directory, Some(_)) => return Err(ArchiveError::BadPath.into()),
            (_, _) => return Err(ArchiveError::NotRegularFile.into()),
        }
        let Some(index) = file_name.and_then(|f| MEMBERS.iter().position(|m| *m == f)) else {
            tracing::warn!("skipping an unexpected file in a profile archive");
            continue;
        };
        let name = MEMBERS[index];
        if seen[index] {
            return Err(ArchiveError::Duplicate(name).into());
        }
        seen[index] = true;
        let limit = match name {
            files::DB => limits.max_db_bytes,
            files::SALT => SALT_LEN as u64,
            _ => MAX_VERSION_BYTES,
        };
        let size = entry.header().size().map_err(classify)?;
        if size > limit {
            return Err(ArchiveError::MemberTooLarge { name, size, limit }.into());
        }
        let target = staging.join(name);
        let mut out = fsutil::new_file_options()
            .open(&target)
            .map_err(Error::io("create", &target))?;
        let copied = io::copy(&mut (&mut entry).take(limit + 1), &mut out).map_err(|e| {
            if exceeded.get() {
                Error::from(ArchiveError::TooLarge(total_limit))
            } else {
                Error::from(ArchiveError::Format(e))
            }
        })?;
        if copied > limit {
            return Err(ArchiveError::MemberTooLarge {
                name,
                size: copied,
                limit,
            }
            .into());
        }
        out.sync_all().map_err(Error::io("sync", &target))?;
    }
    for (i, name) in MEMBERS.iter().enumerate() {
        if !seen[i] {
            return Err(ArchiveError::Missing(name).into());
        }
    }
    fsutil::sync_dir(staging)?;
    id.ok_or_else(|| ArchiveError::Missing(files::DB).into())
}
