//! The loopback network: onion services are plain TCP listeners on `127.0.0.1`, found through
//! service records in a shared directory. NO anonymity: for tests and development only.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use torv3::{Identity, Onion};

use crate::acn::{
    Acn, AcnStatus, BoxStream, IsolationKey, OnionListener, BOOTSTRAPPED, CWTCH_PORT,
};
use crate::error::{Error, Operation, RecordProblem};

/// The environment variable [`LoopbackAcn::from_env`] reads the directory from.
pub const LOOPBACK_DIR_ENV: &str = "CWTCH_LOOPBACK_DIR";

/// No valid record is longer than this (`127.0.0.1:65535\n` is 16 bytes).
pub const MAX_RECORD_LEN: usize = 32;
/// Dialing 127.0.0.1 is instant; this only bounds a wedged kernel or a full backlog.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound streams accepted but not yet taken by [`OnionListener::accept`]. Beyond this the
/// kernel's backlog holds them, so backpressure reaches the dialers.
const ACCEPT_QUEUE: usize = 4;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The loopback network: a [`Acn`] whose onion services are TCP listeners on `127.0.0.1`.
///
/// **It offers no anonymity** ([`Acn::is_anonymous`] is false): for tests and local
/// development only. See the crate documentation for the service-record protocol.
///
/// Cloning gives another handle onto the same network; [`Acn::close`] on any handle closes it.
#[derive(Clone)]
pub struct LoopbackAcn {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Cancelled by `close`; every listener's token is a child of it.
    shutdown: CancellationToken,
    /// `None` once closed, so that status receivers see the channel close.
    status: Mutex<Option<watch::Sender<AcnStatus>>>,
    /// Records written by live listeners, so `close` can remove them.
    hosted: Mutex<HashMap<u64, Hosted>>,
    next_id: AtomicU64,
}

struct Hosted {
    record: PathBuf,
    addr: SocketAddrV4,
}

/// Lock a mutex whose data stays consistent even if a holder panicked (we only insert,
/// remove and replace whole values under it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LoopbackAcn {
    /// A loopback network whose service records live in `dir`.
    ///
    /// Creates `dir` (and missing parents) with mode 0700 if it does not exist, and refuses
    /// a directory that group or others can write to ([`Error::InsecureDirectory`]): whoever
    /// can write there can redirect our dials (to other local ports only).
    pub fn new(dir: impl Into<PathBuf>) -> Result<LoopbackAcn, Error> {
        let dir = dir.into();
        prepare_dir(&dir)?;
        tracing::warn!(
            dir = %dir.display(),
            "loopback network: NO anonymity, for tests and development only"
        );
        let (status, _) = watch::channel(AcnStatus::new(
            BOOTSTRAPPED,
            "loopback network ready (no anonymity)",
        ));
        Ok(LoopbackAcn {
            inner: Arc::new(Inner {
                dir,
                shutdown: CancellationToken::new(),
                status: Mutex::new(Some(status)),
                hosted: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        })
    }

    /// A loopback network in the directory named by the `CWTCH_LOOPBACK_DIR` environment
    /// variable ([`Error::NotConfigured`] if it is unset or empty).
    pub fn from_env() -> Result<LoopbackAcn, Error> {
        match std::env::var_os(LOOPBACK_DIR_ENV) {
            Some(dir) if !dir.is_empty() => LoopbackAcn::new(PathBuf::from(dir)),
            _ => Err(Error::NotConfigured {
                var: LOOPBACK_DIR_ENV,
            }),
        }
    }

    /// The directory holding the service records.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where the service record for `onion` on virtual `port` lives: `<dir>/<onion>` for
    /// [`CWTCH_PORT`], `<dir>/<onion>.<port>` for any other port.
    pub fn record_path(&self, onion: &Onion, port: u16) -> PathBuf {
        record_path(&self.inner.dir, onion, port)
    }

    /// How many services this network hosts, counting a `listen` that is still writing its
    /// record, or whose future was dropped mid-write and is still cleaning up.
    pub fn hosted_count(&self) -> usize {
        lock(&self.inner.hosted).len()
    }

    /// [`Acn::listen`], returning the concrete listener type.
    pub async fn listen_loopback(
        &self,
        identity: &Identity,
        port: u16,
    ) -> Result<LoopbackListener, Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        let onion = identity.onion();
        let record = record_path(&inner.dir, &onion, port);
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::io(Operation::Listen, e))?;
        let addr = match tcp.local_addr() {
            Ok(SocketAddr::V4(addr)) => addr,
            Ok(SocketAddr::V6(_)) => {
                return Err(Error::io(
                    Operation::Listen,
                    io::Error::other("bound 127.0.0.1 but got an IPv6 address"),
                ))
            }
            Err(e) => return Err(Error::io(Operation::Listen, e)),
        };

        // Register before writing and check for `close` after writing: either `close` sees
        // the registration and removes the record, or we see `close` and remove it ourselves.
        // The registration travels through the blocking write, so that if this future is
        // dropped mid-write, it is dropped (removing the record) after the write, not before.
        let registration = Registration::new(inner, record, addr);
        let registration = {
            let dir = inner.dir.clone();
            blocking(Operation::ServiceRecord, move || {
                write_record(&dir, &registration.record, registration.addr)?;
                Ok(registration)
            })
            .await?
        };
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }

        let stop = inner.shutdown.child_token();
        let (tx, incoming) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(accept_loop(tcp, tx, stop.clone(), onion.clone()));
        tracing::info!(
            onion = %onion.redacted(),
            port,
            local = %addr,
            "loopback: hosting onion service"
        );
        Ok(LoopbackListener {
            onion,
            port,
            incoming,
            stop,
            registration,
        })
    }
}

impl fmt::Debug for LoopbackAcn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackAcn")
            .field("dir", &self.inner.dir)
            .field("closed", &self.inner.shutdown.is_cancelled())
            .finish()
    }
}

#[async_trait]
impl Acn for LoopbackAcn {
    async fn listen(
        &self,
        identity: &Identity,
        port: u16,
    ) -> Result<Box<dyn OnionListener>, Error> {
        Ok(Box::new(self.listen_loopback(identity, port).await?))
    }

    /// Dial `onion` on virtual `port` by reading its service record. The isolation key is
    /// ignored: there are no circuits to isolate.
    async fn connect(
        &self,
        onion: &Onion,
        port: u16,
        isolation: &IsolationKey,
    ) -> Result<BoxStream, Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        tracing::debug!(onion = %onion.redacted(), port, ?isolation, "loopback: dialing");
        let lookup = {
            let (dir, onion) = (inner.dir.clone(), onion.clone());
            blocking(Operation::ServiceRecord, move || lookup(&dir, &onion, port)).await?
        };
        let addr = match lookup {
            Lookup::Found(addr) => addr,
            Lookup::Missing { other_ports: true } => {
                return Err(Error::ConnectionRefused {
                    onion: onion.clone(),
                    port,
                })
            }
            Lookup::Missing { other_ports: false } => {
                return Err(Error::OnionNotFound {
                    onion: onion.clone(),
                })
            }
            Lookup::Invalid(problem) => {
                tracing::warn!(
                    onion = %onion.redacted(),
                    port,
                    %problem,
                    "loopback: refusing to dial a corrupt or planted service record"
                );
                return Err(Error::InvalidServiceRecord {
                    onion: onion.clone(),
                    problem,
                });
            }
        };
        let dialed = tokio::select! {
            () = inner.shutdown.cancelled() => return Err(Error::Closed),
            r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)) => r,
        };
        match dialed {
            Err(_) => Err(Error::Timeout {
                operation: Operation::Connect,
            }),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::debug!(
                    onion = %onion.redacted(),
                    port,
                    "loopback: service record is stale (its process is gone)"
                );
                Err(Error::ConnectionRefused {
                    onion: onion.clone(),
                    port,
                })
            }
            Ok(Err(e)) => Err(Error::io(Operation::Connect, e)),
            Ok(Ok(stream)) => {
                // Best effort: small tapir packets should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                tracing::debug!(onion = %onion.redacted(), port, "loopback: connected");
                Ok(Box::new(stream))
            }
        }
    }

    fn status(&self) -> watch::Receiver<AcnStatus> {
        match &*lock(&self.inner.status) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(AcnStatus::new(0, "closed")).1,
        }
    }

    async fn restart(&self) -> Result<(), Error> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        tracing::debug!("loopback: restart (nothing to do)");
        Ok(())
    }

    async fn close(&self) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        lock(&inner.status).take();
        let hosted: Vec<Hosted> = lock(&inner.hosted).drain().map(|(_, h)| h).collect();
        if !hosted.is_empty() {
            let removed = blocking(Operation::ServiceRecord, move || {
                for h in hosted {
                    remove_record_if_ours(&h.record, h.addr);
                }
                Ok(())
            })
            .await;
            if let Err(e) = removed {
                tracing::warn!(error = %e, "loopback: could not remove service records on close");
            }
        }
        tracing::info!("loopback network closed");
    }

    fn is_anonymous(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "loopback"
    }
}

/// An onion service hosted on the loopback network. Dropping it stops accepting and removes
/// its service record (unless another listener has taken the record over).
pub struct LoopbackListener {
    onion: Onion,
    port: u16,
    incoming: mpsc::Receiver<TcpStream>,
    stop: CancellationToken,
    /// Dropped after `drop` has stopped the accept task: removes the record.
    registration: Registration,
}

impl LoopbackListener {
    /// The local TCP address this service is reachable at (what its record says).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.registration.addr
    }
}

impl fmt::Debug for LoopbackListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackListener")
            .field("onion", &self.onion)
            .field("port", &self.port)
            .field("addr", &self.registration.addr)
            .finish()
    }
}

#[async_trait]
impl OnionListener for LoopbackListener {
    fn onion(&self) -> &Onion {
        &self.onion
    }

    fn virtual_port(&self) -> u16 {
        self.port
    }

    async fn accept(&mut self) -> Result<BoxStream, Error> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Err(Error::Closed),
            stream = self.incoming.recv() => match stream {
                Some(stream) => Ok(Box::new(stream)),
                None => Err(Error::Closed),
            },
        }
    }
}

impl Drop for LoopbackListener {
    fn drop(&mut self) {
        self.stop.cancel();
        tracing::debug!(onion = %self.onion.redacted(), port = self.port, "loopback: stopped hosting");
    }
}

/// A service record this network wrote. Dropping it unregisters it and removes the record if
/// the record still names this address (synchronous file IO in `drop`: two tiny operations
/// on a local directory).
struct Registration {
    inner: Arc<Inner>,
    id: u64,
    record: PathBuf,
    addr: SocketAddrV4,
}

impl Registration {
    fn new(inner: &Arc<Inner>, record: PathBuf, addr: SocketAddrV4) -> Registration {
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&inner.hosted).insert(
            id,
            Hosted {
                record: record.clone(),
                addr,
            },
        );
        Registration {
            inner: Arc::clone(inner),
            id,
            record,
            addr,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Even if `close` drained the registration already: it may have looked before the
        // record was written. A record naming our address is stale once we are gone. The
        // record goes first, so that once `hosted_count` drops, the record is gone.
        remove_record_if_ours(&self.record, self.addr);
        lock(&self.inner.hosted).remove(&self.id);
    }
}

/// Accept TCP connections until `stop`, handing them to the listener through `tx`. Owning the
/// socket here means `close` frees the port at once, whether or not anyone calls `accept`.
async fn accept_loop(
    tcp: TcpListener,
    tx: mpsc::Sender<TcpStream>,
    stop: CancellationToken,
    onion: Onion,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            r = tcp.accept() => r,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::select! {
                    () = stop.cancelled() => break,
                    sent = tx.send(stream) => if sent.is_err() { break },
                }
            }
            Err(e) => {
                tracing::warn!(onion = %onion.redacted(), error = %e, "loopback: accept failed, retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
}

/// Run blocking file IO off the async threads.
async fn blocking<T, F>(operation: Operation, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::io(operation, e)),
        Err(join) => Err(Error::io(operation, io::Error::other(join))),
    }
}

/// The shared record directory: others may read it (records are not secret) but not write
/// it (a planted record could redirect our dials).
fn prepare_dir(dir: &Path) -> Result<(), Error> {
    crate::dirs::prepare_dir(dir, crate::dirs::NO_WRITE_BY_OTHERS)
}

fn record_path(dir: &Path, onion: &Onion, port: u16) -> PathBuf {
    if port == CWTCH_PORT {
        dir.join(onion.as_str())
    } else {
        dir.join(format!("{}.{port}", onion.as_str()))
    }
}

/// The contents of a service record.
pub fn format_record(addr: SocketAddrV4) -> String {
    addr.to_string()
}

/// Parse a service record strictly: exactly `127.0.0.1:PORT` in canonical form (no leading
/// zeros or signs), port not 0, optionally followed by one `\n`. Anything else, and above all
/// any address other than 127.0.0.1, is refused: a planted record must not make us dial
/// elsewhere.
pub fn parse_record(bytes: &[u8]) -> Result<SocketAddrV4, RecordProblem> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(RecordProblem::TooLong);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| RecordProblem::NotUtf8)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let addr: SocketAddr = text.parse().map_err(|_| RecordProblem::Syntax)?;
    let addr = match addr {
        SocketAddr::V4(a) if *a.ip() == Ipv4Addr::LOCALHOST => a,
        other => return Err(RecordProblem::NotLoopback(other)),
    };
    if addr.port() == 0 {
        return Err(RecordProblem::ZeroPort);
    }
    if format_record(addr) != text {
        return Err(RecordProblem::Syntax);
    }
    Ok(addr)
}

enum Lookup {
    Found(SocketAddrV4),
    /// No record for this port; `other_ports` if the onion has records for other ports.
    Missing {
        other_ports: bool,
    },
    Invalid(RecordProblem),
}

fn lookup(dir: &Path, onion: &Onion, port: u16) -> io::Result<Lookup> {
    match read_record(&record_path(dir, onion, port))? {
        Lookup::Missing { .. } => Ok(Lookup::Missing {
            other_ports: hosts_any_port(dir, onion)?,
        }),
        found => Ok(found),
    }
}

/// Read one record without following symlinks or reading more than a record's worth.
fn read_record(path: &Path) -> io::Result<Lookup> {
    let missing = Lookup::Missing { other_ports: false };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(missing),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Ok(Lookup::Invalid(RecordProblem::NotRegularFile));
    }
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        // Removed since we looked: its owner just stopped hosting.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(missing),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::with_capacity(MAX_RECORD_LEN + 1);
    file.take(MAX_RECORD_LEN as u64 + 1).read_to_end(&mut buf)?;
    Ok(match parse_record(&buf) {
        Ok(addr) => Lookup::Found(addr),
        Err(problem) => Lookup::Invalid(problem),
    })
}

/// Whether `dir` holds a record for `onion` on any virtual port.
fn hosts_any_port(dir: &Path, onion: &Onion) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(onion.as_str()) else {
            continue;
        };
        if rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|p| p.parse::<u16>().is_ok())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Write a record atomically: a temporary file in the same directory, renamed over the
/// record, so a reader sees the old record, the new one, or none, never a partial one.
fn write_record(dir: &Path, record: &Path, addr: SocketAddrV4) -> io::Result<()> {
    let name = record
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    // Our pid and our bound port: no live process can be using this name, so a leftover of
    // a crashed process may be removed.
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        addr.port()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(format_record(addr).as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, record));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove `record` if it still points at `addr`; another listener (perhaps in another
/// process) may have replaced it. Returns whether it was removed.
fn remove_record_if_ours(record: &Path, addr: SocketAddrV4) -> bool {
    match read_record(record) {
        Ok(Lookup::Found(found)) if found == addr => match std::fs::remove_file(record) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(error = %e, "loopback: could not remove service record");
                false
            }
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_records_parse() {
        let want = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40123);
        assert_eq!(parse_record(b"127.0.0.1:40123"), Ok(want));
        assert_eq!(parse_record(b"127.0.0.1:40123\n"), Ok(want));
        assert_eq!(parse_record(format_record(want).as_bytes()), Ok(want));
    }

    #[test]
    fn invalid_records_are_refused() {
        use RecordProblem::*;
        let cases: &[(&[u8], RecordProblem)] = &[
            (b"", Syntax),
            (b"garbage", Syntax),
            (b"127.0.0.1", Syntax),
            (b"127.0.0.1:", Syntax),
            (b"127.0.0.1:65536", Syntax),
            (b"127.0.0.1:080", Syntax),
            (b"127.0.0.1:+80", Syntax),
            (b" 127.0.0.1:80", Syntax),
            (b"127.0.0.1:80 ", Syntax),
            (b"127.0.0.1:80\n\n", Syntax),
            (b"127.0.0.1:80\r\n", Syntax),
            (b"localhost:80", Syntax),
            (b"127.0.0.1:0", ZeroPort),
            (b"\xff\xfe", NotUtf8),
            (&[b'1'; MAX_RECORD_LEN + 1], TooLong),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_record(bytes), Err(*want), "{bytes:?}");
        }
        for addr in [
            "127.0.0.2:80",
            "0.0.0.0:80",
            "10.0.0.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(
                parse_record(addr.as_bytes()),
                Err(NotLoopback(addr.parse().unwrap())),
                "{addr}"
            );
        }
    }

    #[test]
    fn record_names() {
        let onion = Identity::from_seed(&[1; 32]).onion();
        let dir = Path::new("/x");
        assert_eq!(
            record_path(dir, &onion, CWTCH_PORT),
            dir.join(onion.as_str())
        );
        assert_eq!(
            record_path(dir, &onion, 80),
            dir.join(format!("{}.80", onion.as_str()))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(addr) = parse_record(&bytes) {
                prop_assert_eq!(*addr.ip(), Ipv4Addr::LOCALHOST);
                prop_assert_ne!(addr.port(), 0);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "[0-9.:\\[\\]a-f\n ]{0,40}") {
            if let Ok(addr) = parse_record(s.as_bytes()) {
                prop_assert_eq!(*addr.ip(), Ipv4Addr::LOCALHOST);
                prop_assert_eq!(s.trim_end_matches('\n'), addr.to_string());
            }
        }

        #[test]
        fn every_port_round_trips(port in 1u16..) {
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            prop_assert_eq!(parse_record(format_record(addr).as_bytes()), Ok(addr));
        }
    }
}
