//! The server's errors. Each one says what to fix; none is a panic.

use std::path::PathBuf;

/// A problem with the data directory or the configuration in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No configuration: the data directory was never initialised.
    #[error("no server configuration at {0} (run `cwtch-server --data-dir DIR init` first)")]
    Missing(PathBuf),
    /// `init` on a directory that already has a configuration.
    #[error("{0} already exists: refusing to overwrite a server identity")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is not valid JSON of the expected shape.
    #[error("server configuration is corrupt: {0}")]
    Syntax(serde_json::Error),
    /// A key in the configuration is malformed or inconsistent.
    #[error("server configuration field `{field}`: {problem}")]
    BadKey {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The data directory is readable or writable by other users.
    #[error("{} is accessible by other users (mode {mode:o}); run `chmod 700` on it", .path.display())]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An encrypted configuration that this password does not open.
    #[error("{}: cannot be decrypted with this password", .0.display())]
    WrongPassword(PathBuf),
    /// The data directory path exists but is not a directory.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
}

/// A problem with the message or spent-token store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed on this file.
    #[error("{}: {source}", .path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The database file could not be created or made private.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored row is not valid (e.g. not base64).
    #[error("{}: corrupt row {row}", .path.display())]
    CorruptRow {
        /// The database file.
        path: PathBuf,
        /// The row id.
        row: i64,
    },
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration or data directory.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The stores.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The anonymity network.
    #[error("network: {0}")]
    Acn(#[from] connectivity::Error),
    /// Hosting a service.
    #[error("service: {0}")]
    Service(#[from] tapir_service::Error),
    /// Another server is already running on this data directory.
    #[error("another cwtch-server is already running with {} (lock held)", .0.display())]
    Locked(PathBuf),
}
