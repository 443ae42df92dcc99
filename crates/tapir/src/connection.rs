//! A tapir connection as a sans-IO state machine.
//!
//! Bytes from the stream go in with [`Connection::receive`]; packets to write come out of
//! [`Connection::poll_transmit`]; what happened comes out of [`Connection::poll_event`]. The
//! connection runs its [`ApplicationChain`] and then carries the owner's payloads. Any error
//! means the connection must be closed; nothing is ever sent to the peer about why.

use std::collections::VecDeque;
use std::sync::Arc;

use privacypass::Transcript;
use rand_core::CryptoRngCore;
use torv3::{Identity, Onion};
use zeroize::Zeroize;

use crate::app::{AppContext, Application, ApplicationChain, Core, Step};
use crate::capability::{Capabilities, Capability};
use crate::compat::TRANSCRIPT_LABEL;
use crate::packet::{self, PacketReader, PACKET_LEN};
use crate::Error;

/// Who opened the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us; its identity is unknown until an auth app proves it.
    Inbound,
    /// We dialled `remote`.
    Outbound {
        /// The onion we dialled. The auth app checks the peer proves this identity.
        remote: Onion,
    },
}

/// Something the owner of a connection needs to know.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The peer proved it holds the key of this onion.
    Authenticated(Onion),
    /// A token client obtained verified, unblinded tokens.
    Tokens(Vec<privacypass::Token>),
    /// The application chain completed: payloads now go to the owner.
    Established,
    /// A payload from the peer, after the chain completed.
    Payload(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Handshaking,
    Established,
    Closed,
}

type Link = (Box<dyn Application>, Option<Capability>);

/// One tapir connection.
pub struct Connection {
    core: Core,
    pending: VecDeque<Link>,
    active: Option<Link>,
    reader: PacketReader,
    state: State,
    /// Whole packets received so far.
    packets_received: u64,
}

impl Connection {
    /// A connection that will run `chain`, as `identity`, with randomness from `rng`.
    pub fn new(
        identity: Arc<Identity>,
        direction: Direction,
        chain: ApplicationChain,
        rng: Box<dyn CryptoRngCore + Send>,
    ) -> Connection {
        Connection {
            core: Core {
                direction,
                identity,
                transcript: Transcript::new(TRANSCRIPT_LABEL),
                key: None,
                capabilities: Capabilities::default(),
                remote: None,
                outbox: VecDeque::new(),
                events: VecDeque::new(),
                rng,
            },
            pending: chain.links,
            active: None,
            reader: PacketReader::new(),
            state: State::New,
            packets_received: 0,
        }
    }

    /// How many whole packets were received so far (a driver's idle timer counts these, not
    /// bytes: a peer that trickles a byte at a time is idle).
    pub fn packets_received(&self) -> u64 {
        self.packets_received
    }

    /// Start the first application. Call once, before feeding bytes.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.state != State::New {
            return Ok(());
        }
        self.state = State::Handshaking;
        let r = self.advance();
        self.fail_on_err(r)
    }

    /// Feed bytes read from the stream. Whole packets are processed at once; a partial packet
    /// waits for more bytes (that is not an error).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        if self.state == State::New {
            self.start()?;
        }
        self.reader.push(bytes);
        while let Some(packet) = self.reader.next_packet() {
            self.packets_received += 1;
            let r = self.process(packet);
            self.fail_on_err(r)?;
        }
        Ok(())
    }

    /// Send a payload to the peer. Only once established.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        match self.state {
            State::Established => self.core.send(payload),
            State::Closed => Err(Error::Closed),
            State::New | State::Handshaking => Err(Error::NotEstablished),
        }
    }

    /// The next packet to write to the stream, if any. Every packet is [`PACKET_LEN`] bytes.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.outbox.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// Whether the application chain has completed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection failed or was closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Close the connection: further input is refused and nothing more is sent.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.core.outbox.clear();
        self.active = None;
        self.pending.clear();
    }

    /// The peer's proven identity, once an auth app has run.
    pub fn remote(&self) -> Option<&Onion> {
        self.core.remote.as_ref()
    }

    /// Whether the connection holds a capability.
    pub fn has_capability(&self, c: Capability) -> bool {
        self.core.capabilities.has(c)
    }

    /// Grant a capability (used by the owner, e.g. a server marking a client synced).
    pub fn grant(&mut self, c: Capability) {
        self.core.capabilities.grant(c);
    }

    /// All capabilities held.
    pub fn capabilities(&self) -> &Capabilities {
        &self.core.capabilities
    }

    /// Whether packets are encrypted (a session key is set).
    pub fn is_encrypted(&self) -> bool {
        self.core.key.is_some()
    }

    /// Our direction.
    pub fn direction(&self) -> &Direction {
        &self.core.direction
    }

    /// The local identity of this connection.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.core.identity
    }

    fn fail_on_err(&mut self, r: Result<(), Error>) -> Result<(), Error> {
        if r.is_err() {
            self.close();
        }
        r
    }

    fn process(&mut self, mut packet: Box<[u8; PACKET_LEN]>) -> Result<(), Error> {
        let payload = match &self.core.key {
            None => packet::decode_plain(&packet)?.to_vec(),
            Some(key) => {
                // Decrypted where it lies; only the plaintext we copied out is left to scrub.
                let plain = packet::open_in_place(key, &mut packet)?;
                let payload = plain.to_vec();
                plain.zeroize();
                payload
            }
        };
        match self.state {
            State::Established => {
                self.core.events.push_back(Event::Payload(payload));
                Ok(())
            }
            State::Handshaking => {
                let Some((app, _)) = self.active.as_mut() else {
                    return Err(Error::NotEstablished);
                };
                let step = app.receive(
                    &mut AppContext {
                        core: &mut self.core,
                    },
                    &payload,
                )?;
                if step == Step::Done {
                    self.finish_active()?;
                    self.advance()?;
                }
                Ok(())
            }
            State::New | State::Closed => Err(Error::Closed),
        }
    }

    /// Check the finished application granted what the chain requires of it.
    fn finish_active(&mut self) -> Result<(), Error> {
        if let Some((_, Some(cap))) = self.active.take() {
            if !self.core.capabilities.has(cap) {
                return Err(Error::CapabilityNotGranted(cap));
            }
        }
        Ok(())
    }

    /// Start applications until one waits for input, or the chain is complete.
    fn advance(&mut self) -> Result<(), Error> {
        while let Some((mut app, cap)) = self.pending.pop_front() {
            let step = app.start(&mut AppContext {
                core: &mut self.core,
            })?;
            self.active = Some((app, cap));
            if step == Step::Continue {
                return Ok(());
            }
            self.finish_active()?;
        }
        self.state = State::Established;
        self.core.events.push_back(Event::Established);
        Ok(())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("direction", &self.core.direction)
            .field("state", &self.state)
            .field("remote", &self.core.remote)
            .finish_non_exhaustive()
    }
}
