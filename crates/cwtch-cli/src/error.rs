//! The command's errors and exit codes.

use serde::{Deserialize, Serialize};

/// Why a command failed. Each kind has an exit code and a name on the control socket.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Something went wrong (storage, network, the daemon). Exit 1.
    #[error("{0}")]
    Failed(String),
    /// The command was used wrongly (bad arguments, conflicting flags, an invalid address,
    /// bundle or invite, an ambiguous profile or group name). Exit 2.
    #[error("{0}")]
    Usage(String),
    /// No such profile, contact, server or group. Exit 3.
    #[error("{0}")]
    NotFound(String),
    /// The password does not open the profile. Exit 4.
    #[error("{0}")]
    WrongPassword(String),
    /// The profile is running in another process. Exit 5.
    #[error("{0}")]
    Busy(String),
    /// The user interrupted the command (Ctrl-C). Exit 130, as a shell reports SIGINT.
    #[error("{0}")]
    Interrupted(String),
}

/// The error kinds as named on the control socket (`"code"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    Failed,
    Usage,
    NotFound,
    WrongPassword,
    Busy,
}

impl CliError {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::WrongPassword(_) => 4,
            CliError::Busy(_) => 5,
            CliError::Interrupted(_) => 130,
        }
    }

    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            CliError::Failed(_) => ErrorCode::Failed,
            CliError::Usage(_) => ErrorCode::Usage,
            CliError::NotFound(_) => ErrorCode::NotFound,
            CliError::WrongPassword(_) => ErrorCode::WrongPassword,
            CliError::Busy(_) => ErrorCode::Busy,
            // Never sent over the socket (only a command's own process is interrupted).
            CliError::Interrupted(_) => ErrorCode::Failed,
        }
    }

    pub(crate) fn from_code(code: ErrorCode, message: String) -> CliError {
        match code {
            ErrorCode::Failed => CliError::Failed(message),
            ErrorCode::Usage => CliError::Usage(message),
            ErrorCode::NotFound => CliError::NotFound(message),
            ErrorCode::WrongPassword => CliError::WrongPassword(message),
            ErrorCode::Busy => CliError::Busy(message),
        }
    }

    /// An error of the library, classified.
    pub(crate) fn lib(e: cwtch::Error) -> CliError {
        let msg = chain(&e);
        match &e {
            cwtch::Error::ProfileNotFound { .. }
            | cwtch::Error::ContactNotFound
            | cwtch::Error::ServerNotFound
            | cwtch::Error::GroupNotFound => CliError::NotFound(msg),
            cwtch::Error::ProfileLocked { .. } => CliError::Busy(msg),
            cwtch::Error::InvalidAddress(_)
            | cwtch::Error::SelfContact
            | cwtch::Error::MessageTooLong { .. }
            | cwtch::Error::GroupMessageTooLong { .. }
            | cwtch::Error::PayloadTooLarge { .. }
            | cwtch::Error::Invalid { .. }
            | cwtch::Error::Bundle(_)
            | cwtch::Error::AmbiguousGroup(_) => CliError::Usage(msg),
            cwtch::Error::Storage(cwtch::StorageError::WrongPassword) => {
                CliError::WrongPassword(msg)
            }
            cwtch::Error::Storage(cwtch::StorageError::EmptyPassword) => CliError::Usage(msg),
            _ => CliError::Failed(msg),
        }
    }

    /// An error of the network layer (building the ACN: conflicting flags, tor failing).
    pub(crate) fn acn(e: cwtch::connectivity::Error) -> CliError {
        let msg = chain(&e);
        match e {
            cwtch::connectivity::Error::InvalidConfig { .. } => CliError::Usage(msg),
            _ => CliError::Failed(msg),
        }
    }

    pub(crate) fn io(what: &str, e: std::io::Error) -> CliError {
        CliError::Failed(format!("{what}: {e}"))
    }
}

/// An error and its sources, on one line.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        source = c.source();
    }
    s
}
