//! The network: bring-up, clients, teardown.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use crate::config::AUTHORITIES;
use crate::control::{bootstrap_progress, first_listener_port, parse_port_file, Control};
use crate::dirport::{
    count_microdescs, fetch, microdescs_path, parse_consensus, MICRODESC_CONSENSUS,
};
use crate::dirs::{create_private_dir, OwnedDir};
use crate::process::{
    run_command, send_signal, terminate_all, terminate_all_blocking, ProcessInfo, Role, TorProcess,
};
use crate::torrc::{self, AuthorityInfo, Common};
use crate::{Error, TestNetConfig};

/// How often we look at the authorities' consensus and the clients' bootstrap progress.
const POLL: Duration = Duration::from_millis(100);
/// How many times `start` tries with fresh ports when a tor could not bind one.
const PORT_ATTEMPTS: u32 = 3;
/// How often lagging relays get a SIGHUP (see `wait_until_usable`).
const HUP_EVERY: Duration = Duration::from_secs(2);
/// Bound on `tor --version` (the deadline of `start` may be shorter).
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A bootstrapped client of a [`TestNet`]: a tor with a SOCKS port (with `ExtendedErrors`) and
/// a control port (cookie authentication), both on 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestClient {
    /// Its name in the network (`client0`, `client1`...).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// SOCKS5 port on 127.0.0.1.
    pub socks_port: u16,
    /// Control port on 127.0.0.1.
    pub control_port: u16,
    /// The control-port authentication cookie (32 bytes; `AUTHENTICATE <hex>` or SAFECOOKIE).
    pub cookie_path: PathBuf,
    /// Its data directory (holds its `torrc` and its log, `tor.log`).
    pub data_dir: PathBuf,
    /// From starting the process to bootstrap 100%.
    pub bootstrap_time: Duration,
}

impl TestClient {
    /// `127.0.0.1:<socks_port>`.
    pub fn socks_addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.socks_port).into()
    }

    /// `127.0.0.1:<control_port>`.
    pub fn control_addr(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, self.control_port).into()
    }
}

/// How long bring-up took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Keys, fingerprints and torrcs, before any tor daemon starts (in the last attempt).
    pub prepare: Duration,
    /// From calling `start` to an authority serving a consensus that lists every relay
    /// `Running` (includes `prepare` and any retries).
    pub network: Duration,
    /// From starting the clients to all of them reporting bootstrap 100%.
    pub clients: Duration,
    /// All of `start`.
    pub total: Duration,
    /// How many attempts `start` needed (more than 1 if a port was taken under our feet).
    pub attempts: u32,
}

/// A private Tor network on 127.0.0.1: 3 directory authorities, relays and clients, each a
/// real `tor` process, in a directory of its own.
///
/// [`stop`](Self::stop) tears it down (SIGTERM, then SIGKILL) and removes its directory;
/// dropping it does the same, blocking briefly. Every tor also exits by itself about 15 s
/// after this process dies (`__OwningControllerProcess`).
#[derive(Debug)]
pub struct TestNet {
    config: TestNetConfig,
    tor_version: String,
    authorities: Vec<AuthorityInfo>,
    /// An empty file: the defaults torrc and the GeoIP databases.
    empty_file: PathBuf,
    processes: Vec<TorProcess>,
    clients: Vec<TestClient>,
    next_client: usize,
    timings: Timings,
    /// Declared last: dropped (removed) after `Drop for TestNet` has killed the processes.
    dir: OwnedDir,
}

/// What preparing one relay (authority or not) yields.
struct Prepared {
    index: usize,
    name: String,
    dir: PathBuf,
    or_port: u16,
    /// Every relay has a DirPort, so that we can check what it serves as a directory cache.
    dir_port: u16,
    /// Authorities only: the v3 identity.
    v3ident: Option<String>,
    fingerprint: String,
}

impl TestNet {
    /// Brings a network up: authorities and relays first, then (once an authority serves a
    /// consensus listing every relay) the clients, and returns when every client reports
    /// bootstrap 100% on its control port. Bounded by
    /// [`startup_timeout`](TestNetConfig::startup_timeout); on any error everything started
    /// so far is killed and the directory removed.
    pub async fn start(config: TestNetConfig) -> Result<TestNet, Error> {
        config.validate()?;
        let started = Instant::now();
        let deadline = started + config.startup_timeout;
        let tor_version = tor_version(&config.tor_binary, deadline).await?;
        tracing::debug!(version = tor_version, "using tor");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(&config, &tor_version, started, deadline).await {
                Ok(mut net) => {
                    net.timings.attempts = attempt;
                    net.timings.total = started.elapsed();
                    tracing::info!(
                        network_s = net.timings.network.as_secs_f64(),
                        clients_s = net.timings.clients.as_secs_f64(),
                        dir = %net.dir().display(),
                        "test network up"
                    );
                    return Ok(net);
                }
                Err(Error::PortInUse { node, .. }) if attempt < PORT_ATTEMPTS => {
                    tracing::warn!(node, "a port was taken before tor could bind it; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_start(
        config: &TestNetConfig,
        tor_version: &str,
        started: Instant,
        deadline: Instant,
    ) -> Result<TestNet, Error> {
        let base = config.base_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = OwnedDir::create_in(&base)?;
        let empty_file = dir.path().join("empty");
        std::fs::write(&empty_file, b"").map_err(|e| Error::io("writing", &empty_file, e))?;
        // From here on, dropping `net` (on any error) kills what was started and removes `dir`.
        let mut net = TestNet {
            config: config.clone(),
            tor_version: tor_version.to_owned(),
            authorities: Vec::new(),
            empty_file,
            processes: Vec::new(),
            clients: Vec::new(),
            next_client: 0,
            timings: Timings::default(),
            dir,
        };
        let prepare_started = Instant::now();
        let nodes = net.prepare_relays(deadline).await?;
        net.timings.prepare = prepare_started.elapsed();

        net.authorities = nodes
            .iter()
            .filter_map(|n| {
                Some(AuthorityInfo {
                    name: n.name.clone(),
                    or_port: n.or_port,
                    dir_port: n.dir_port,
                    v3ident: n.v3ident.clone()?,
                    fingerprint: n.fingerprint.clone(),
                })
            })
            .collect();
        let bandwidths = net.dir.path().join("bandwidths");
        let fingerprints: Vec<&str> = nodes.iter().map(|n| n.fingerprint.as_str()).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        std::fs::write(
            &bandwidths,
            torrc::bandwidth_file(now as u64, &fingerprints),
        )
        .map_err(|e| Error::io("writing", &bandwidths, e))?;
        let voting = torrc::Voting {
            interval: config.voting_interval,
            offset_secs: torrc::voting_offset(now),
            bandwidths: &bandwidths,
        };
        for node in &nodes {
            let common = net.common();
            let (text, role) = match &node.v3ident {
                Some(_) => {
                    let me = &net.authorities[node.index];
                    let text = torrc::authority_torrc(common, &node.dir, me, voting);
                    (text, Role::Authority)
                }
                None => {
                    let text = torrc::relay_torrc(
                        common,
                        &node.dir,
                        &node.name,
                        node.or_port,
                        node.dir_port,
                    );
                    (text, Role::Relay)
                }
            };
            net.spawn(&node.name, role, &node.dir, &text)?;
        }
        let expected: HashSet<String> = nodes.iter().map(|n| n.fingerprint.clone()).collect();
        let caches: Vec<(String, u16)> =
            nodes.iter().map(|n| (n.name.clone(), n.dir_port)).collect();
        net.wait_until_usable(&caches, &expected, deadline).await?;
        net.timings.network = started.elapsed();

        let clients_started = Instant::now();
        net.start_clients(config.clients, deadline).await?;
        net.timings.clients = clients_started.elapsed();
        Ok(net)
    }

    /// The clients started so far, in order (`client0` first).
    pub fn clients(&self) -> &[TestClient] {
        &self.clients
    }

    /// The torrc lines another tor (for example one that our Tor backend launches itself)
    /// needs to join this network as a client: `TestingTorNetwork 1`, the `DirAuthority`
    /// lines, `UseDefaultFallbackDirs 0`, `PathsNeededToBuildCircuits 0.25`,
    /// `KISTSchedRunInterval 1 msec` and `GeoIPFile`/`GeoIPv6File` pointing at an empty file
    /// inside this network's directory. No ports, no `DataDirectory`: the caller adds those.
    pub fn client_torrc_lines(&self) -> Vec<String> {
        torrc::client_network_lines(&self.authorities, &self.empty_file)
    }

    /// Starts one more client and returns it once it is bootstrapped (bounded by
    /// [`startup_timeout`](TestNetConfig::startup_timeout)). On error the new client is
    /// killed; the rest of the network is untouched.
    pub async fn add_client(&mut self) -> Result<&TestClient, Error> {
        let deadline = Instant::now() + self.config.startup_timeout;
        self.start_clients(1, deadline).await?;
        // `start_clients(1)` succeeded, so `clients` is not empty.
        Ok(&self.clients[self.clients.len() - 1])
    }

    /// Every tor process (authorities, relays, clients) with its role, pid and data directory.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.processes.iter().map(|p| p.info().clone()).collect()
    }

    /// How long bring-up took.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The directory this network created (and will remove).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What `tor --version` said, e.g. `Tor version 0.4.9.11.`
    pub fn tor_version(&self) -> &str {
        &self.tor_version
    }

    /// An error naming the first tor process that has exited, with its last log lines.
    pub fn check_running(&mut self) -> Result<(), Error> {
        self.processes
            .iter_mut()
            .try_for_each(TorProcess::check_running)
    }

    /// Tears the network down: SIGTERM to every tor, SIGKILL to those still alive after
    /// [`shutdown_grace`](TestNetConfig::shutdown_grace), reap them all, then remove the
    /// directory this network created.
    pub async fn stop(mut self) -> Result<(), Error> {
        let survivors = terminate_all(&mut self.processes, self.config.shutdown_grace).await;
        self.processes.clear();
        let removed = self.dir.remove();
        tracing::debug!("test network stopped");
        if !survivors.is_empty() {
            return Err(Error::Survivors { pids: survivors });
        }
        removed
    }

    fn common(&self) -> Common<'_> {
        Common {
            authorities: &self.authorities,
            geoip: &self.empty_file,
            owner_pid: std::process::id(),
        }
    }

    fn spawn(&mut self, name: &str, role: Role, dir: &Path, torrc: &str) -> Result<(), Error> {
        let torrc_path = dir.join("torrc");
        std::fs::write(&torrc_path, torrc).map_err(|e| Error::io("writing", &torrc_path, e))?;
        let process = TorProcess::spawn(
            &self.config.tor_binary,
            name,
            role,
            dir,
            &torrc_path,
            &self.empty_file,
        )?;
        self.processes.push(process);
        Ok(())
    }

    /// Picks ports, creates the authorities' keys and every relay's identity, concurrently.
    async fn prepare_relays(&self, deadline: Instant) -> Result<Vec<Prepared>, Error> {
        let relays = self.config.relays;
        let ports = pick_ports(2 * (AUTHORITIES + relays))?;
        let mut tasks = JoinSet::new();
        for index in 0..AUTHORITIES + relays {
            let name = if index < AUTHORITIES {
                format!("auth{index}")
            } else {
                format!("relay{}", index - AUTHORITIES)
            };
            let (or_port, dir_port) = (ports[2 * index], ports[2 * index + 1]);
            let dir = self.dir.path().join(&name);
            create_private_dir(&dir)?;
            tasks.spawn(prepare_relay(
                self.config.tor_binary.clone(),
                self.config.tor_gencert_binary.clone(),
                self.empty_file.clone(),
                index,
                name,
                dir,
                or_port,
                dir_port,
                index < AUTHORITIES,
                deadline,
            ));
        }
        let mut nodes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => nodes.push(result?),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        nodes.sort_by_key(|n| n.index);
        Ok(nodes)
    }

    /// Waits until every directory (authorities, and relays as caches) serves a
    /// (microdescriptor) consensus listing every relay with all of
    /// [`REQUIRED_FLAGS`](crate::dirport::REQUIRED_FLAGS), and serves every microdescriptor it
    /// names. Then a client bootstraps from whichever directory it asks, without retries.
    /// (Clients fetch microdescriptors from their guards: a relay that has the consensus but
    /// not yet every microdescriptor costs a client a 10 s retry.)
    async fn wait_until_usable(
        &mut self,
        caches: &[(String, u16)],
        expected: &HashSet<String>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut last_status = String::new();
        let mut last_hup: Option<Instant> = None;
        loop {
            self.check_running()?;
            let mut status = Vec::new();
            for (name, dir_port) in caches {
                let addr = (Ipv4Addr::LOCALHOST, *dir_port).into();
                let (ready, summary) = match cache_readiness(addr, expected).await {
                    Ok(r) => r,
                    Err(e) => (false, format!("{e}")),
                };
                status.push((ready, format!("{name}: {summary}")));
            }
            let summary = status
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            if summary != last_status {
                tracing::debug!(after_s = started.elapsed().as_secs_f64(), "{summary}");
                last_status = summary;
            }
            if status.iter().all(|(ready, _)| *ready) {
                return Ok(());
            }
            // Relays asked for a consensus before there was one, got 404s and back off, so
            // they may fetch the first one seconds after the authorities have it. Once the
            // authorities are ready, SIGHUP the relays that are not: tor then resets its
            // download back-off and fetches at once.
            let authorities_ready = status[..AUTHORITIES].iter().all(|(ready, _)| *ready);
            if authorities_ready && last_hup.is_none_or(|t| t.elapsed() >= HUP_EVERY) {
                let lagging: HashSet<&str> = caches
                    .iter()
                    .zip(&status)
                    .filter(|(_, (ready, _))| !ready)
                    .map(|((name, _), _)| name.as_str())
                    .collect();
                let mut relays: Vec<&mut TorProcess> = self
                    .processes
                    .iter_mut()
                    .filter(|p| lagging.contains(p.name()))
                    .collect();
                tracing::debug!(?lagging, "SIGHUP");
                if let Err(e) = send_signal(&mut relays, "HUP") {
                    tracing::warn!("{e}");
                }
                last_hup = Some(Instant::now());
            }
            if Instant::now() >= deadline {
                let log_tail = self
                    .processes
                    .first()
                    .map(TorProcess::log_tail)
                    .unwrap_or_default();
                return Err(Error::Timeout {
                    waiting_for: "every directory to serve a consensus listing every relay",
                    node: format!("{last_status}; log of auth0"),
                    after: started.elapsed(),
                    log_tail,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts `n` clients and waits until each reports bootstrap 100%. On error the new
    /// clients are killed.
    async fn start_clients(&mut self, n: usize, deadline: Instant) -> Result<(), Error> {
        let before = self.processes.len();
        let result = self.start_clients_inner(n, deadline).await;
        if result.is_err() {
            let mut new = self.processes.split_off(before);
            terminate_all(&mut new, self.config.shutdown_grace).await;
        }
        result
    }

    async fn start_clients_inner(&mut self, n: usize, deadline: Instant) -> Result<(), Error> {
        let mut pending = Vec::new();
        for _ in 0..n {
            let name = format!("client{}", self.next_client);
            self.next_client += 1;
            let dir = self.dir.path().join(&name);
            create_private_dir(&dir)?;
            let text = torrc::client_torrc(self.common(), &dir);
            self.spawn(&name, Role::Client, &dir, &text)?;
            pending.push(PendingClient {
                process: self.processes.len() - 1,
                name,
                dir,
                started: Instant::now(),
                control: None,
                progress: 0,
                done: None,
            });
        }
        loop {
            for client in pending.iter_mut().filter(|c| c.done.is_none()) {
                self.processes[client.process].check_running()?;
                let pid = self.processes[client.process].pid();
                client.poll(pid).await?;
            }
            if pending.iter().all(|c| c.done.is_some()) {
                break;
            }
            if Instant::now() >= deadline {
                let Some(late) = pending.iter().find(|c| c.done.is_none()) else {
                    break;
                };
                return Err(Error::Timeout {
                    waiting_for: "bootstrap 100%",
                    node: format!("{} at {}%", late.name, late.progress),
                    after: late.started.elapsed(),
                    log_tail: self.processes[late.process].log_tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        self.clients
            .extend(pending.into_iter().filter_map(|c| c.done));
        Ok(())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if self.processes.is_empty() {
            return;
        }
        let survivors = terminate_all_blocking(&mut self.processes, self.config.shutdown_grace);
        if !survivors.is_empty() {
            tracing::warn!(?survivors, "tor processes did not exit");
        }
        self.processes.clear();
        // `self.dir` is dropped next, which removes the directory.
    }
}

/// A client we started and are waiting for.
struct PendingClient {
    /// Index into `TestNet::processes`.
    process: usize,
    name: String,
    dir: PathBuf,
    started: Instant,
    control: Option<Control>,
    progress: u8,
    done: Option<TestClient>,
}

impl PendingClient {
    /// One step: connect and authenticate once tor has written its control port file, then
    /// look at the bootstrap progress; at 100%, read the SOCKS port and finish.
    async fn poll(&mut self, pid: u32) -> Result<(), Error> {
        let cookie_path = self.dir.join(torrc::COOKIE_FILE);
        let control = match &mut self.control {
            Some(c) => c,
            None => {
                let port_file = self.dir.join(torrc::CONTROL_PORT_FILE);
                let Some(addr) = std::fs::read_to_string(&port_file)
                    .ok()
                    .as_deref()
                    .and_then(parse_port_file)
                else {
                    return Ok(()); // not written (completely) yet
                };
                let Ok(cookie) = std::fs::read(&cookie_path) else {
                    return Ok(());
                };
                let mut control = match Control::connect(&self.name, addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("{e}; retrying");
                        return Ok(());
                    }
                };
                control.authenticate(&cookie).await?;
                self.control.insert(control)
            }
        };
        let phase = control.getinfo("status/bootstrap-phase").await?;
        let progress = bootstrap_progress(&phase).ok_or_else(|| Error::ControlReply {
            node: self.name.clone(),
            reply: phase.clone(),
        })?;
        if progress != self.progress {
            tracing::debug!(client = self.name, progress, "bootstrap");
            self.progress = progress;
        }
        if progress < 100 {
            return Ok(());
        }
        let socks = control.getinfo("net/listeners/socks").await?;
        let socks_port = first_listener_port(&socks).ok_or_else(|| Error::ControlReply {
            node: self.name.clone(),
            reply: socks.clone(),
        })?;
        let control_port = std::fs::read_to_string(self.dir.join(torrc::CONTROL_PORT_FILE))
            .ok()
            .as_deref()
            .and_then(parse_port_file)
            .map(|a| a.port())
            .unwrap_or_default();
        self.control = None;
        let bootstrap_time = self.started.elapsed();
        tracing::debug!(
            client = self.name,
            secs = bootstrap_time.as_secs_f64(),
            "bootstrapped"
        );
        self.done = Some(TestClient {
            name: self.name.clone(),
            pid,
            socks_port,
            control_port,
            cookie_path,
            data_dir: self.dir.clone(),
            bootstrap_time,
        });
        Ok(())
    }
}

/// Whether one directory is ready for clients (see [`TestNet::wait_until_usable`]), and a
/// short description of how far it is.
async fn cache_readiness(
    addr: SocketAddr,
    expected: &HashSet<String>,
) -> std::io::Result<(bool, String)> {
    let Some(consensus) = fetch(addr, MICRODESC_CONSENSUS).await? else {
        return Ok((false, "no consensus".to_owned()));
    };
    let entries = parse_consensus(&consensus);
    let missing: Vec<String> = entries
        .iter()
        .filter(|e| expected.contains(&e.id))
        .map(|e| {
            crate::dirport::REQUIRED_FLAGS
                .iter()
                .filter(|f| !e.flags.contains(**f))
                .copied()
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    let usable: Vec<_> = entries
        .into_iter()
        .filter(|e| expected.contains(&e.id) && e.has_required_flags())
        .collect();
    let flagged = format!(
        "{}/{} relays usable {missing:?}",
        usable.len(),
        expected.len()
    );
    if usable.len() < expected.len() {
        return Ok((false, flagged));
    }
    let digests: Vec<&str> = usable
        .iter()
        .filter_map(|e| e.microdesc.as_deref())
        .collect();
    let served = match fetch(addr, &microdescs_path(&digests)).await? {
        Some(body) => count_microdescs(&body),
        None => 0,
    };
    Ok((
        served == expected.len(),
        format!("{flagged}, {served} microdescriptors"),
    ))
}

/// Reserves `n` distinct free ports on 127.0.0.1 (all held at once, then released for tor to
/// bind; another program may take one in between, which `start` detects and retries).
fn pick_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::NoFreePort { source })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::NoFreePort { source })
}

/// Checks that `tor` runs and is tor; returns its version line.
async fn tor_version(tor: &Path, deadline: Instant) -> Result<String, Error> {
    let timeout = deadline
        .saturating_duration_since(Instant::now())
        .min(VERSION_TIMEOUT);
    let output = run_command(
        tor,
        &[OsStr::new("--version")],
        None,
        timeout,
        "tor --version",
        "tor",
    )
    .await?;
    let first = output.lines().next().unwrap_or_default().trim();
    if first.starts_with("Tor version ") {
        Ok(first.to_owned())
    } else {
        Err(Error::NotTor {
            program: tor.to_owned(),
            output: output
                .chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_owned(),
        })
    }
}

/// Authorities: creates the v3 authority keys (tor-gencert; the v3 identity is the
/// certificate's `fingerprint` line). Every relay: creates its identity with
/// `tor --list-fingerprint` and reads the RSA fingerprint back.
#[allow(clippy::too_many_arguments)]
async fn prepare_relay(
    tor: PathBuf,
    gencert: PathBuf,
    empty: PathBuf,
    index: usize,
    name: String,
    dir: PathBuf,
    or_port: u16,
    dir_port: u16,
    is_authority: bool,
    deadline: Instant,
) -> Result<Prepared, Error> {
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let v3ident = match is_authority {
        false => None,
        true => {
            let keys = dir.join("keys");
            create_private_dir(&keys)?;
            let cert = keys.join("authority_certificate");
            let args: Vec<OsString> = vec![
                "--create-identity-key".into(),
                "-i".into(),
                keys.join("authority_identity_key").into(),
                "-s".into(),
                keys.join("authority_signing_key").into(),
                "-c".into(),
                cert.clone().into(),
                "-m".into(),
                "12".into(),
                "-a".into(),
                format!("127.0.0.1:{dir_port}").into(),
                "--passphrase-fd".into(),
                "0".into(),
            ];
            let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
            // The identity key is encrypted with this throwaway passphrase; nothing needs it
            // again (the signing key and certificate are what the authority uses).
            run_command(
                &gencert,
                &args,
                Some(b"testnet\n"),
                remaining(),
                "tor-gencert",
                &name,
            )
            .await?;
            let text =
                std::fs::read_to_string(&cert).map_err(|e| Error::io("reading", &cert, e))?;
            let v3ident = text
                .lines()
                .find_map(|l| l.strip_prefix("fingerprint "))
                .map(|f| f.trim().to_owned())
                .filter(|f| is_fingerprint(f))
                .ok_or_else(|| Error::UnexpectedOutput {
                    command: "tor-gencert",
                    node: name.clone(),
                    detail: "no fingerprint line in authority_certificate".to_owned(),
                })?;
            Some(v3ident)
        }
    };
    let args: Vec<OsString> = vec![
        "--defaults-torrc".into(),
        empty.clone().into(),
        "-f".into(),
        empty.clone().into(),
        "--list-fingerprint".into(),
        "--DataDirectory".into(),
        dir.clone().into(),
        "--ORPort".into(),
        format!("127.0.0.1:{or_port}").into(),
        "--Nickname".into(),
        name.clone().into(),
        "--GeoIPFile".into(),
        empty.clone().into(),
        "--GeoIPv6File".into(),
        empty.into(),
    ];
    let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    run_command(
        &tor,
        &args,
        None,
        remaining(),
        "tor --list-fingerprint",
        &name,
    )
    .await?;
    let path = dir.join("fingerprint");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let fingerprint = text
        .split_whitespace()
        .nth(1)
        .filter(|f| is_fingerprint(f))
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "tor --list-fingerprint",
            node: name.clone(),
            detail: format!("fingerprint file says {text:?}"),
        })?
        .to_ascii_uppercase();
    Ok(Prepared {
        index,
        name,
        dir,
        or_port,
        dir_port,
        v3ident,
        fingerprint,
    })
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_ports() {
        let ports = pick_ports(20).unwrap();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 20);
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn fingerprints() {
        assert!(is_fingerprint("4B2B0B51968D8C77079AAC2B6DE980994D72A386"));
        assert!(!is_fingerprint("4B2B0B51968D8C77079AAC2B6DE980994D72A38"));
        assert!(!is_fingerprint("4B2B0B51968D8C77079AAC2B6DE980994D72A38X"));
    }
}
