//! Hosting Cwtch servers (`c_CreateServer`, `c_LaunchServer`, …) with the `cwtch-server`
//! library, as Go's app hosts them (Go `server/servers.go`, `serverConfig.go`): each in
//! `<appDir>/servers/<random id>/` (the directory name does not say which server it is), a
//! `cwtch-server` data directory whose `serverConfig.json` is encrypted with the password
//! (`VERSION`, `SALT`; `cwtch_server::encrypted`). Go's default password protects nothing, as
//! in Go. Go's attributes `description`, `autostart` and `storageType` live in the config's
//! `attributes`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cwtch_server::encrypted::{self, ConfigKey};
use cwtch_server::{ConfigError, Server, ServerConfig};
use tracing::{debug, warn};

use crate::app::{CallResult, Global, Running};
use crate::json::{bool_str, GoEvent};

const SERVERS_DIR: &str = "servers";
const DESCRIPTION: &str = "description";
const AUTOSTART: &str = "autostart";
const STORAGE_TYPE: &str = "storageType";
/// Go's `StorageType` of a server stored with the default password.
const STORAGE_DEFAULT_PASSWORD: &str = "storage-default-password";
/// Go's `StorageType` of a server stored with a password of the user's.
const STORAGE_PASSWORD: &str = "storage-password";

/// How often a running server's statistics are looked at (`ServerStatsUpdate` is sent when
/// they changed).
const STATS_POLL: Duration = Duration::from_secs(1);

/// The servers this app hosts: loaded (known) and running.
#[derive(Default)]
pub(crate) struct Servers {
    known: Mutex<BTreeMap<String, Known>>,
    running: tokio::sync::Mutex<BTreeMap<String, Hosted>>,
}

/// A loaded server: its directory and the key its config is encrypted with.
#[derive(Clone)]
struct Known {
    dir: PathBuf,
    key: ConfigKey,
}

/// A running server and the task that reports its statistics.
struct Hosted {
    server: Arc<Server>,
    /// Dropped to end the statistics task.
    stop_stats: tokio::sync::oneshot::Sender<()>,
    stats: tokio::task::JoinHandle<()>,
}

impl Hosted {
    /// End the statistics task, then shut the server down.
    async fn shutdown(self) {
        drop(self.stop_stats);
        let _ = self.stats.await;
        // The task held the only other reference, and it has ended.
        match Arc::try_unwrap(self.server) {
            Ok(s) => s.shutdown().await,
            Err(_) => warn!("a hosted server could not be shut down cleanly"),
        }
    }
}

/// `ServerStatsUpdate`: messages stored and clients connected to the message board.
fn stats_event(onion: &str, messages: u64, connections: u64) -> GoEvent {
    GoEvent::new(
        "ServerStatsUpdate",
        [
            ("Identity", onion.to_owned()),
            ("TotalMessages", messages.to_string()),
            ("Connections", connections.to_string()),
        ],
    )
}

/// Send `ServerStatsUpdate` for a running server now and whenever its numbers change, until
/// `stop` is dropped.
async fn report_stats(
    g: &'static Global,
    onion: String,
    server: Arc<Server>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut last = None;
    loop {
        let s = server.stats();
        let now = (s.messages, s.board_connections);
        if last != Some(now) {
            g.emit(stats_event(&onion, now.0, now.1));
            last = Some(now);
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(STATS_POLL) => {}
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn is_default(password: &str) -> bool {
    password == crate::app::cwtch_default_password()
}

/// A new directory name, as Go's `GenerateRandomID`: 16 random bytes in hex.
fn random_id() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Open the server directory `dir` with `password`: `Ok(None)` if it is not this password's.
/// A plain config (written by earlier versions of this library, before configs were
/// encrypted) is opened with the default password and encrypted with it from then on.
fn open_dir(dir: &Path, password: &str) -> Result<Option<(ServerConfig, ConfigKey)>, ConfigError> {
    let key = if dir.join(encrypted::SALT_FILE).exists() {
        ConfigKey::of_dir(dir, password)?
    } else if is_default(password) && ServerConfig::path(dir).exists() {
        encrypted::init_dir(dir, password, &mut rand_core::OsRng)?
    } else {
        return Ok(None);
    };
    match ServerConfig::load_encrypted(dir, &key) {
        Ok(config) => Ok(Some((config, key))),
        Err(ConfigError::WrongPassword(_)) if is_default(password) => {
            // A plain config beside a fresh salt (a migration cut short), or another password's.
            match ServerConfig::load(dir) {
                Ok(config) => {
                    config.save_encrypted(dir, &key, &mut rand_core::OsRng)?;
                    Ok(Some((config, key)))
                }
                Err(_) => Ok(None),
            }
        }
        Err(ConfigError::WrongPassword(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn servers_dir(r: &Running) -> PathBuf {
    r.dir().join(SERVERS_DIR)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> CallResult<T> + Send + 'static,
) -> CallResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(err)?
}

impl Servers {
    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known_server(&self, onion: &str) -> CallResult<Known> {
        self.known()
            .get(onion)
            .cloned()
            .ok_or_else(|| "no loaded server with that onion".to_owned())
    }

    async fn new_server_event(&self, onion: &str, config: &ServerConfig) -> GoEvent {
        let running = self.running.lock().await.contains_key(onion);
        let attr = |k: &str| config.attributes.get(k).cloned().unwrap_or_default();
        let storage = config
            .attributes
            .get(STORAGE_TYPE)
            .cloned()
            .unwrap_or_else(|| STORAGE_DEFAULT_PASSWORD.to_owned());
        GoEvent::new(
            "NewServer",
            [
                ("Onion", onion.to_owned()),
                ("ServerBundle", config.server_bundle()),
                ("Description", attr(DESCRIPTION)),
                ("StorageType", storage),
                ("Autostart", bool_str(attr(AUTOSTART) == "true")),
                ("Running", bool_str(running)),
            ],
        )
    }

    /// `c_CreateServer`: a new server, its config encrypted with `password` (`NewServer`),
    /// launched if `autostart`.
    pub(crate) async fn create(
        &self,
        g: &'static Global,
        r: &Running,
        password: &str,
        description: &str,
        autostart: bool,
    ) -> CallResult<()> {
        let mut config = ServerConfig::generate(&mut rand_core::OsRng);
        // Go's hosted servers write no metrics files.
        config.log_metrics_to_file = false;
        let storage = if is_default(password) {
            STORAGE_DEFAULT_PASSWORD
        } else {
            STORAGE_PASSWORD
        };
        for (k, v) in [
            (DESCRIPTION, description.to_owned()),
            (AUTOSTART, bool_str(autostart)),
            (STORAGE_TYPE, storage.to_owned()),
        ] {
            config.attributes.insert(k.into(), v);
        }
        let onion = config.onion().as_str().to_owned();
        let dir = servers_dir(r).join(random_id());
        let (d, c, pass) = (
            dir.clone(),
            config,
            zeroize::Zeroizing::new(password.to_owned()),
        );
        let (config, key) = blocking(move || {
            let key = encrypted::init_dir(&d, &pass, &mut rand_core::OsRng).map_err(err)?;
            c.save_encrypted(&d, &key, &mut rand_core::OsRng)
                .map_err(err)?;
            Ok((c, key))
        })
        .await?;
        self.known().insert(onion.clone(), Known { dir, key });
        g.emit(self.new_server_event(&onion, &config).await);
        if autostart {
            self.launch(g, r, &onion).await?;
        }
        Ok(())
    }

    /// `c_LoadServers`: every server under `servers/` that `password` opens and that is not
    /// loaded yet (`NewServer` each); those with `autostart` are launched.
    pub(crate) async fn load(
        &self,
        g: &'static Global,
        r: &Running,
        password: &str,
    ) -> CallResult<()> {
        let root = servers_dir(r);
        let pass = zeroize::Zeroizing::new(password.to_owned());
        let found = blocking(move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(err(e)),
            };
            for e in entries.flatten() {
                let dir = e.path();
                if !dir.is_dir() {
                    continue;
                }
                match open_dir(&dir, &pass) {
                    Ok(Some((c, key))) => out.push((c, Known { dir, key })),
                    Ok(None) => debug!("a server directory is not this password's"),
                    Err(e) => {
                        warn!(error = %cwtch::Sensitive(&e), "a server directory does not load")
                    }
                }
            }
            Ok(out)
        })
        .await?;
        for (config, known) in found {
            let onion = config.onion().as_str().to_owned();
            if self.known().contains_key(&onion) {
                continue;
            }
            self.known().insert(onion.clone(), known);
            g.emit(self.new_server_event(&onion, &config).await);
            if config.attributes.get(AUTOSTART).map(String::as_str) == Some("true") {
                if let Err(e) = self.launch(g, r, &onion).await {
                    warn!(error = %cwtch::Sensitive(&e), "a server did not launch");
                }
            }
        }
        Ok(())
    }

    /// `c_LaunchServer`: start both onion services (`ServerIntentUpdate` `running`), and
    /// report statistics (`ServerStatsUpdate`) while it runs.
    pub(crate) async fn launch(
        &self,
        g: &'static Global,
        r: &Running,
        onion: &str,
    ) -> CallResult<()> {
        let Known { dir, key } = self.known_server(onion)?;
        let mut running = self.running.lock().await;
        if running.contains_key(onion) {
            g.emit(intent(onion, "running"));
            return Ok(());
        }
        let d = dir.clone();
        let config = blocking(move || ServerConfig::load_encrypted(&d, &key).map_err(err)).await?;
        let server = Arc::new(Server::start(config, &dir, r.acn()).await.map_err(err)?);
        g.emit(intent(onion, "running"));
        let (stop_stats, stop) = tokio::sync::oneshot::channel();
        let stats = tokio::spawn(report_stats(g, onion.to_owned(), server.clone(), stop));
        let hosted = Hosted {
            server,
            stop_stats,
            stats,
        };
        running.insert(onion.to_owned(), hosted);
        Ok(())
    }

    /// `c_LaunchServers`.
    pub(crate) async fn launch_all(&self, g: &'static Global, r: &Running) -> CallResult<()> {
        let all: Vec<String> = self.known().keys().cloned().collect();
        for onion in all {
            self.launch(g, r, &onion).await?;
        }
        Ok(())
    }

    /// `c_StopServer` (`ServerIntentUpdate` `stopped`).
    pub(crate) async fn stop(&self, g: &Global, onion: &str) -> CallResult<()> {
        self.known_server(onion)?;
        if let Some(s) = self.running.lock().await.remove(onion) {
            s.shutdown().await;
        }
        g.emit(intent(onion, "stopped"));
        Ok(())
    }

    /// `c_StopServers`.
    pub(crate) async fn stop_all(&self, g: &Global) -> CallResult<()> {
        let all: Vec<String> = self.known().keys().cloned().collect();
        for onion in all {
            self.stop(g, &onion).await?;
        }
        Ok(())
    }

    /// `c_DestroyServers`: stop every server and forget them (until `c_LoadServers`).
    pub(crate) async fn destroy_all(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        for (_, s) in running {
            s.shutdown().await;
        }
        self.known().clear();
    }

    /// `c_DeleteServer`: with the server's password, stop it and delete its directory
    /// (`ServerDeleted`).
    pub(crate) async fn delete(&self, g: &Global, onion: &str, password: &str) -> CallResult<()> {
        let result: CallResult<()> = async {
            let Known { dir, key } = self.known_server(onion)?;
            let (d, pass) = (dir.clone(), zeroize::Zeroizing::new(password.to_owned()));
            let given = blocking(move || ConfigKey::of_dir(&d, &pass).map_err(err)).await?;
            if given != key {
                // Go's words.
                return Err("cannot delete server, passwords do not match".to_owned());
            }
            if let Some(s) = self.running.lock().await.remove(onion) {
                s.shutdown().await;
            }
            blocking(move || std::fs::remove_dir_all(&dir).map_err(err)).await?;
            self.known().remove(onion);
            Ok(())
        }
        .await;
        let mut fields = vec![
            ("Identity", onion.to_owned()),
            (
                "Status",
                if result.is_ok() { "success" } else { "error" }.to_owned(),
            ),
        ];
        if let Err(e) = &result {
            fields.push(("Error", e.clone()));
        }
        g.emit(GoEvent::new("ServerDeleted", fields));
        result
    }

    /// `c_SetServerAttribute`: stored in the config's attributes (a running server keeps the
    /// config it started with until relaunched).
    pub(crate) async fn set_attribute(
        &self,
        onion: &str,
        key: &str,
        value: &str,
    ) -> CallResult<()> {
        let Known { dir, key: ck } = self.known_server(onion)?;
        let (k, v) = (key.to_owned(), value.to_owned());
        blocking(move || {
            let mut config = ServerConfig::load_encrypted(&dir, &ck).map_err(err)?;
            config.attributes.insert(k, v);
            config
                .save_encrypted(&dir, &ck, &mut rand_core::OsRng)
                .map_err(err)
        })
        .await
    }
}

fn intent(onion: &str, intent: &str) -> GoEvent {
    GoEvent::new(
        "ServerIntentUpdate",
        [("Identity", onion), ("Intent", intent)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_server(dir: &Path) -> ServerConfig {
        let config = ServerConfig::generate(&mut rand_core::OsRng);
        cwtch_server::create_data_dir(dir).expect("dir");
        config.save_new(dir).expect("save");
        config
    }

    #[test]
    fn plain_configs_of_earlier_versions_are_encrypted_with_the_default_password() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("old");
        let config = plain_server(&dir);
        assert!(open_dir(&dir, "hunter2").expect("no error").is_none());
        assert!(!dir.join(encrypted::SALT_FILE).exists(), "untouched");

        let default = crate::app::cwtch_default_password();
        let (loaded, key) = open_dir(&dir, default).expect("opens").expect("default's");
        assert_eq!(loaded.onion(), config.onion());
        assert!(ServerConfig::load(&dir).is_err(), "still plain");
        let again = ServerConfig::load_encrypted(&dir, &key).expect("encrypted");
        assert_eq!(again.onion(), config.onion());
        let (_, key2) = open_dir(&dir, default).expect("opens").expect("default's");
        assert!(key2 == key);
        assert!(open_dir(&dir, "hunter2").expect("no error").is_none());
    }

    #[test]
    fn a_migration_cut_short_is_finished() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("old");
        let config = plain_server(&dir);
        let default = crate::app::cwtch_default_password();
        // The salt was written, the config not yet encrypted.
        encrypted::init_dir(&dir, default, &mut rand_core::OsRng).expect("salt");
        let (loaded, key) = open_dir(&dir, default).expect("opens").expect("default's");
        assert_eq!(loaded.onion(), config.onion());
        assert!(ServerConfig::load_encrypted(&dir, &key).is_ok());
    }

    #[test]
    fn a_password_opens_only_its_own_servers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("s");
        let key = encrypted::init_dir(&dir, "hunter2", &mut rand_core::OsRng).expect("init");
        let config = ServerConfig::generate(&mut rand_core::OsRng);
        config
            .save_encrypted(&dir, &key, &mut rand_core::OsRng)
            .expect("save");
        let default = crate::app::cwtch_default_password();
        assert!(open_dir(&dir, default).expect("no error").is_none());
        assert!(open_dir(&dir, "hunter3").expect("no error").is_none());
        let (loaded, _) = open_dir(&dir, "hunter2").expect("opens").expect("its own");
        assert_eq!(loaded.onion(), config.onion());
        // Not a server directory at all.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("dir");
        assert!(open_dir(&empty, default).expect("no error").is_none());
    }
}
