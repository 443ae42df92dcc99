#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod acn;
#[cfg(feature = "cli")]
mod cli;
mod dirs;
mod error;
// Not API: re-exports the private parsers for the fuzz targets in `fuzz/` (see the module).
#[doc(hidden)]
pub mod fuzzing;
mod loopback;
mod tor;

pub use acn::{
    Acn, AcnStatus, AcnStream, BoxStream, IsolationKey, ListenOptions, OnionListener, PowDefense,
    BOOTSTRAPPED, CWTCH_PORT,
};
#[cfg(feature = "cli")]
pub use cli::{AcnArgs, NetworkKind};
pub use error::{
    AuthProblem, ConfigProblem, DialRejection, Error, Operation, ProtocolProblem, RecordProblem,
    SocksProblem, UnreachableReason,
};
pub use loopback::{LoopbackAcn, LoopbackListener, LOOPBACK_DIR_ENV};
pub use tor::{
    ControlAuth, ControlPassword, DialPolicy, TorAcn, TorConfig, TorListener, TorTimeouts,
};
