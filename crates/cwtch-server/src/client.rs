//! A client of a Cwtch server: the board and token client of the `cwtch-board` crate,
//! re-exported under its old path for the tests and the load generator (feature `client`).
//!
//! The server does not use it; the peer library uses `cwtch-board` directly.

#![cfg(feature = "client")]

pub use cwtch_board::{
    post_binding, BoardClient, BoardMachine, ClientError, Cursor, Error, Event, MachineConfig,
    Phase, PostId, PreparedPost, ProtocolError, Received, ServerClient, Source, TokenId,
    MAX_SIGNATURE_LEN,
};
