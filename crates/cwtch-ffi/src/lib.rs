#![doc = include_str!("../README.md")]
// The C names (`c_StartCwtch`, `dir_c`, `torLen`, ...) are the header's; the crate is named
// `Cwtch` so that the library file is `libCwtch.so`.
#![allow(non_snake_case)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod app;
mod bus;
mod cabi;
mod events;
pub mod ffi;
mod json;
mod ops;
mod pictures;
mod servers;

pub use app::{LOG_ENV, NETWORK_ENV, TOR_CONTROL_ENV, UNSAFE_LOGGING_ENV};
pub use cwtch::connectivity::LOOPBACK_DIR_ENV;
