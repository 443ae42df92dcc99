//! Hosting Cwtch servers (`c_CreateServer`, `c_LaunchServer`, …) with the `cwtch-server`
//! library, in `<appDir>/servers/<onion>/` (a `cwtch-server` data directory:
//! `serverConfig.json`, its stores). Go's attributes `description` and `autostart` live in the
//! config's `attributes`.
//!
//! Storage is never encrypted: only Go's default password (no protection in Go either) is
//! accepted; a real password is refused (`not yet`), rather than pretending to encrypt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cwtch_server::{Server, ServerConfig};
use tracing::warn;

use crate::app::{CallResult, Global, Running};
use crate::json::{bool_str, GoEvent};

const SERVERS_DIR: &str = "servers";
const DESCRIPTION: &str = "description";
const AUTOSTART: &str = "autostart";
/// Go's `StorageType` of a server stored with the default password.
const STORAGE_DEFAULT_PASSWORD: &str = "storage-default-password";

/// The servers this app hosts: loaded (known) and running.
#[derive(Default)]
pub(crate) struct Servers {
    known: Mutex<BTreeMap<String, PathBuf>>,
    running: tokio::sync::Mutex<BTreeMap<String, Server>>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn check_password(password: &str) -> CallResult<()> {
    if password == "be gay do crime" {
        Ok(())
    } else {
        Err(
            "encrypted server storage (a password other than the default): not yet implemented"
                .into(),
        )
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

/// Replace the config file in `dir` (write a temporary file, then rename: never a torn one).
fn save(config: &ServerConfig, dir: &Path) -> CallResult<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(".serverConfig.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(&config.to_json()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, ServerConfig::path(dir)).map_err(err)
}

impl Servers {
    fn known(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PathBuf>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir_of(&self, onion: &str) -> CallResult<PathBuf> {
        self.known()
            .get(onion)
            .cloned()
            .ok_or_else(|| "no loaded server with that onion".to_owned())
    }

    async fn new_server_event(&self, onion: &str, config: &ServerConfig) -> GoEvent {
        let running = self.running.lock().await.contains_key(onion);
        let attr = |k: &str| config.attributes.get(k).cloned().unwrap_or_default();
        GoEvent::new(
            "NewServer",
            [
                ("Onion", onion.to_owned()),
                ("ServerBundle", config.server_bundle()),
                ("Description", attr(DESCRIPTION)),
                ("StorageType", STORAGE_DEFAULT_PASSWORD.to_owned()),
                ("Autostart", bool_str(attr(AUTOSTART) == "true")),
                ("Running", bool_str(running)),
            ],
        )
    }

    /// `c_CreateServer`: a new server (`NewServer`), launched if `autostart`.
    pub(crate) async fn create(
        &self,
        g: &Global,
        r: &Running,
        password: &str,
        description: &str,
        autostart: bool,
    ) -> CallResult<()> {
        check_password(password)?;
        let mut config = ServerConfig::generate(&mut rand_core::OsRng);
        config
            .attributes
            .insert(DESCRIPTION.into(), description.to_owned());
        config
            .attributes
            .insert(AUTOSTART.into(), bool_str(autostart));
        let onion = config.onion().as_str().to_owned();
        let dir = servers_dir(r).join(&onion);
        let (d, c) = (dir.clone(), config);
        let config = blocking(move || {
            cwtch_server::create_data_dir(&d).map_err(err)?;
            c.save_new(&d).map_err(err)?;
            Ok(c)
        })
        .await?;
        self.known().insert(onion.clone(), dir);
        g.emit(self.new_server_event(&onion, &config).await);
        if autostart {
            self.launch(g, r, &onion).await?;
        }
        Ok(())
    }

    /// `c_LoadServers`: every server under `servers/` (`NewServer` each); those with
    /// `autostart` are launched.
    pub(crate) async fn load(&self, g: &Global, r: &Running, password: &str) -> CallResult<()> {
        check_password(password)?;
        let root = servers_dir(r);
        let found = blocking(move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(err(e)),
            };
            for e in entries.flatten() {
                let dir = e.path();
                match ServerConfig::load(&dir) {
                    Ok(c) => out.push((dir, c)),
                    Err(e) => warn!("a server directory does not load: {e}"),
                }
            }
            Ok(out)
        })
        .await?;
        for (dir, config) in found {
            let onion = config.onion().as_str().to_owned();
            self.known().insert(onion.clone(), dir);
            g.emit(self.new_server_event(&onion, &config).await);
            if config.attributes.get(AUTOSTART).map(String::as_str) == Some("true") {
                if let Err(e) = self.launch(g, r, &onion).await {
                    warn!("a server did not launch: {e}");
                }
            }
        }
        Ok(())
    }

    /// `c_LaunchServer`: start both onion services (`ServerIntentUpdate` `running`).
    pub(crate) async fn launch(&self, g: &Global, r: &Running, onion: &str) -> CallResult<()> {
        let dir = self.dir_of(onion)?;
        let mut running = self.running.lock().await;
        if !running.contains_key(onion) {
            let d = dir.clone();
            let config = blocking(move || ServerConfig::load(&d).map_err(err)).await?;
            let server = Server::start(config, &dir, r.acn()).await.map_err(err)?;
            running.insert(onion.to_owned(), server);
        }
        g.emit(intent(onion, "running"));
        Ok(())
    }

    /// `c_LaunchServers`.
    pub(crate) async fn launch_all(&self, g: &Global, r: &Running) -> CallResult<()> {
        let all: Vec<String> = self.known().keys().cloned().collect();
        for onion in all {
            self.launch(g, r, &onion).await?;
        }
        Ok(())
    }

    /// `c_StopServer` (`ServerIntentUpdate` `stopped`).
    pub(crate) async fn stop(&self, g: &Global, onion: &str) -> CallResult<()> {
        self.dir_of(onion)?;
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

    /// `c_DeleteServer`: stop it and delete its directory (`ServerDeleted`).
    pub(crate) async fn delete(&self, g: &Global, onion: &str, password: &str) -> CallResult<()> {
        let result: CallResult<()> = async {
            check_password(password)?;
            let dir = self.dir_of(onion)?;
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
        let dir = self.dir_of(onion)?;
        let (k, v) = (key.to_owned(), value.to_owned());
        blocking(move || {
            let mut config = ServerConfig::load(&dir).map_err(err)?;
            config.attributes.insert(k, v);
            save(&config, &dir)
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
