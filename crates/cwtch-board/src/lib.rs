#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "driver")]
mod client;
mod error;
mod machine;

#[cfg(feature = "driver")]
pub use client::{BoardClient, ServerClient};
pub use error::{ClientError, Error, ProtocolError};
pub use machine::{
    post_binding, BoardMachine, Cursor, Event, MachineConfig, Phase, PostId, PreparedPost,
    Received, Source, TokenId, MAX_SIGNATURE_LEN,
};
