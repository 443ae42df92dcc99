#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod control;
mod dirport;
mod dirs;
mod error;
mod net;
mod process;
mod torrc;

pub use config::{TestNetConfig, AUTHORITIES, MIN_TOTAL_RELAYS};
pub use error::Error;
pub use net::{TestClient, TestNet, Timings};
pub use process::{ProcessInfo, Role};
