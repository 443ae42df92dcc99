#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod acn;
mod error;
mod loopback;

pub use acn::{
    Acn, AcnStatus, AcnStream, BoxStream, IsolationKey, OnionListener, BOOTSTRAPPED, CWTCH_PORT,
};
pub use error::{Error, Operation, RecordProblem, UnreachableReason};
pub use loopback::{LoopbackAcn, LoopbackListener, LOOPBACK_DIR_ENV};
