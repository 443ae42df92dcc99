//! Fault injection for this crate's own tests, and the tests of the panic boundaries.
//!
//! The whole module is compiled only under `cfg(test)` (the crate's unit-test binary), so the
//! hooks exist in no other build: not in the library that clients link, not in other crates'
//! test builds, and no feature can turn them on. Integration tests (`tests/`) link the
//! library built without `cfg(test)`, hence these tests live here.
//!
//! The bug the boundaries were made for (a peer's contact suggestion reaching a panic in
//! `torv3::Onion::parse`) is fixed, so the hooks stand in for the next one: a peer's message
//! carrying a marker makes the code that handles it panic, as a bug would.

use crate::wire::PeerMessage;

/// A chat message with exactly this data makes the handler panic in `engine::dispatch`.
pub(crate) const PANIC_IN_HANDLER: &str = r#"{"o":1,"d":"injected fault: panic in the handler"}"#;
/// A body exactly this makes `Content::parse` panic (on receipt and on every listing).
pub(crate) const PANIC_IN_PARSER: &str = r#"{"o":1,"d":"injected fault: panic in the parser"}"#;

/// Called by `engine::dispatch` for every message it handles.
pub(crate) fn on_dispatch(m: &PeerMessage) {
    if m.data == PANIC_IN_HANDLER.as_bytes() {
        panic!("injected fault: a panic while handling a peer's message");
    }
}

/// Called by `Content::parse` for every body it parses.
pub(crate) fn on_parse(body: &str) {
    if body == PANIC_IN_PARSER {
        panic!("injected fault: a panic while parsing a message body");
    }
}

mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use cwtch_storage::MemoryHome;
    use tapir::ApplicationChain;
    use tapir_service::{Connection, Service, ServiceConfig};
    use tokio::sync::broadcast;
    use torv3::{Identity, Onion};

    use super::*;
    use crate::wire::{WireVersion, CONTEXT_ACK, CONTEXT_RAW};
    use crate::{
        Acn, Config, ConnectionState, Content, Cwtch, Event, LoopbackAcn, MalformedReason,
        Password, ProfileHandle,
    };

    /// How long any single expected thing may take.
    const WAIT: Duration = Duration::from_secs(20);

    /// One Cwtch (in memory) on a fresh loopback network, and its event stream.
    struct World {
        _dir: tempfile::TempDir,
        acn: Arc<dyn Acn>,
        cwtch: Cwtch,
        events: broadcast::Receiver<Event>,
        seen: Vec<Event>,
    }

    impl World {
        async fn new() -> World {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
            let dir = tempfile::tempdir().unwrap();
            let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(dir.path().join("net")).unwrap());
            let mut config = Config {
                dial_backoff_initial: Duration::from_millis(100),
                dial_backoff_max: Duration::from_millis(800),
                version_wait: Duration::from_secs(2),
                ..Config::default()
            };
            config.service.handshake_timeout = Duration::from_secs(15);
            let cwtch = Cwtch::in_memory_with_config(MemoryHome::new(), acn.clone(), config).await;
            let events = cwtch.events();
            World {
                _dir: dir,
                acn,
                cwtch,
                events,
                seen: Vec::new(),
            }
        }

        async fn profile(&self, name: &str) -> ProfileHandle {
            let info = self
                .cwtch
                .create_profile(name, &Password::Default)
                .await
                .unwrap();
            let p = self
                .cwtch
                .load_profile(info.profile_id.as_str(), &Password::Default)
                .await
                .unwrap();
            assert!(p.wait_online(WAIT).await, "{name} online");
            p
        }

        /// The first event matching `pred`, seen before or arriving within [`WAIT`].
        async fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
            if let Some(i) = self.seen.iter().position(&pred) {
                return self.seen.remove(i);
            }
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, self.events.recv()).await {
                    Ok(Ok(e)) if pred(&e) => return e,
                    Ok(Ok(e)) => self.seen.push(e),
                    Ok(Err(e)) => panic!("events: {e}"),
                    Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
                }
            }
        }

        /// `a` adds `b`; `b` accepts; `a` is connected to `b`.
        async fn befriend(&mut self, a: &ProfileHandle, b: &ProfileHandle) {
            let (ao, bo) = (a.onion().to_string(), b.onion().to_string());
            a.add_contact(&bo).await.unwrap();
            let req = self
                .expect("contact request", |e| {
                    matches!(e, Event::ContactCreated { profile, contact, request: true, .. } if *profile == bo && *contact == ao)
                })
                .await;
            let Event::ContactCreated {
                conversation_id, ..
            } = req
            else {
                unreachable!()
            };
            b.accept(crate::ConversationId(conversation_id))
                .await
                .unwrap();
            self.expect("connected", |e| {
                is_state(e, &ao, &bo, ConnectionState::Authenticated)
            })
            .await;
        }

        /// `from` sends `text` to `to`; `to` receives it and `from` sees it acknowledged.
        async fn exchange(&mut self, from: &ProfileHandle, to: &ProfileHandle, text: &str) {
            let (fo, to_) = (from.onion().to_string(), to.onion().to_string());
            let sent = from.send_text(to.onion().clone(), text).await.unwrap();
            self.expect(text, |e| {
                matches!(e, Event::NewMessage { profile, contact, text: Some(t), .. } if *profile == to_ && *contact == fo && t == text)
            })
            .await;
            self.expect("its acknowledgement", |e| {
                matches!(e, Event::Acknowledged { profile, message_id, .. } if *profile == fo && *message_id == sent.message_id.0)
            })
            .await;
        }
    }

    fn is_state(e: &Event, of: &str, contact: &str, state: ConnectionState) -> bool {
        matches!(e, Event::PeerStateChanged { profile, contact: c, state: s, .. }
            if profile == of && c == contact && *s == state)
    }

    /// A peer made of a bare tapir service, speaking the peer protocol by hand.
    struct RawPeer {
        service: Service,
        onion: Onion,
    }

    impl RawPeer {
        fn new(w: &World, seed: u8) -> RawPeer {
            let id = Arc::new(Identity::from_seed(&[seed; 32]));
            let onion = id.onion();
            RawPeer {
                service: Service::new(id, w.acn.clone(), ServiceConfig::default()),
                onion,
            }
        }

        async fn connect(&self, to: &Onion) -> Connection {
            self.service
                .connect(to, ApplicationChain::authenticated())
                .await
                .unwrap()
        }
    }

    /// Swap version messages (we read V2).
    async fn negotiate(conn: &mut Connection) {
        let first = recv(conn).await.expect("the version message");
        let (m, _) = PeerMessage::decode(&first).unwrap();
        assert_eq!(m.announced_version(), Some(2));
        conn.send(PeerMessage::version_message().encode_v1())
            .await
            .unwrap();
    }

    async fn recv(conn: &mut Connection) -> Option<Vec<u8>> {
        tokio::time::timeout(WAIT, conn.recv())
            .await
            .expect("a payload or the close, in time")
    }

    /// Skip what arrives until the connection closes.
    async fn closed(conn: &mut Connection) {
        while recv(conn).await.is_some() {}
    }

    /// Send a chat message and wait for its acknowledgement.
    async fn send_and_ack(conn: &mut Connection, id: &str, body: &str) {
        let m = PeerMessage::new(id, CONTEXT_RAW, body.as_bytes().to_vec());
        conn.send(m.encode(WireVersion::V2)).await.unwrap();
        loop {
            let p = recv(conn)
                .await
                .expect("an acknowledgement before the close");
            let (m, _) = PeerMessage::decode(&p).unwrap();
            if m.context == CONTEXT_ACK && m.id == id {
                return;
            }
        }
    }

    /// The next connection Bob dials to a raw peer's listener.
    async fn accept(l: &mut tapir_service::Listener) -> Connection {
        tokio::time::timeout(WAIT, l.accept())
            .await
            .expect("bob dials in time")
            .expect("listening")
    }

    fn poison(id: &str) -> Vec<u8> {
        PeerMessage::new(id, CONTEXT_RAW, PANIC_IN_HANDLER.as_bytes().to_vec())
            .encode(WireVersion::V2)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_panic_handling_an_accepted_connection_closes_that_connection_only() {
        let mut w = World::new().await;
        let bob = w.profile("bob").await;
        let carol = w.profile("carol").await;
        w.befriend(&carol, &bob).await;
        let bo = bob.onion().to_string();
        w.exchange(&carol, &bob, "before").await;

        // Mallory connects to Bob and sends a message whose handling panics.
        let mallory = RawPeer::new(&w, 0x4d);
        let mo = mallory.onion.to_string();
        let mut conn = mallory.connect(bob.onion()).await;
        negotiate(&mut conn).await;
        w.expect("mallory connected", |e| {
            is_state(e, &bo, &mo, ConnectionState::Authenticated)
        })
        .await;
        conn.send(poison("1")).await.unwrap();

        // Bob closes that connection, and says so (no stale "connected" contact).
        closed(&mut conn).await;
        w.expect("mallory disconnected", |e| {
            is_state(e, &bo, &mo, ConnectionState::Disconnected)
        })
        .await;
        let m = bob.contact(mallory.onion.clone()).await.unwrap();
        assert_eq!(m.state, ConnectionState::Disconnected);
        assert_eq!(m.message_count, 0);

        // The profile goes on: messages both ways with Carol, and their events.
        w.exchange(&bob, &carol, "after, to carol").await;
        w.exchange(&carol, &bob, "after, to bob").await;

        // Mallory can connect again, and an ordinary message is stored and acknowledged.
        let mut conn = mallory.connect(bob.onion()).await;
        negotiate(&mut conn).await;
        send_and_ack(&mut conn, "2", r#"{"o":1,"d":"hello"}"#).await;
        let listed = bob.messages(mallory.onion.clone(), 0, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].content, Content::text("hello"));
        w.cwtch.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_panic_handling_a_dialled_connection_does_not_stop_the_dialler() {
        let mut w = World::new().await;
        let bob = w.profile("bob").await;
        let carol = w.profile("carol").await;
        w.befriend(&carol, &bob).await;

        // Mallory only listens: every connection between her and Bob is one Bob dialled, and
        // his dialler runs it.
        let mallory = RawPeer::new(&w, 0x4e);
        let mut listener = mallory
            .service
            .listen(ApplicationChain::authenticated)
            .await
            .unwrap();
        bob.add_contact(mallory.onion.as_str()).await.unwrap();
        let mut conn = accept(&mut listener).await;
        negotiate(&mut conn).await;
        conn.send(poison("1")).await.unwrap();
        closed(&mut conn).await;

        // Bob dials again, and the new connection works.
        let mut conn = accept(&mut listener).await;
        negotiate(&mut conn).await;
        send_and_ack(&mut conn, "2", r#"{"o":1,"d":"hello again"}"#).await;

        // Nothing else was lost on the way.
        w.exchange(&carol, &bob, "still here").await;
        w.exchange(&bob, &carol, "me too").await;
        w.cwtch.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_body_whose_parsing_panics_is_stored_acknowledged_and_listed_raw() {
        let mut w = World::new().await;
        let bob = w.profile("bob").await;
        let bo = bob.onion().to_string();
        let mallory = RawPeer::new(&w, 0x4f);
        let mut conn = mallory.connect(bob.onion()).await;
        negotiate(&mut conn).await;
        send_and_ack(&mut conn, "1", PANIC_IN_PARSER).await;
        let ev = w
            .expect(
                "the message",
                |e| matches!(e, Event::NewMessage { profile, .. } if *profile == bo),
            )
            .await;
        let Event::NewMessage {
            overlay,
            text,
            malformed,
            body,
            ..
        } = ev
        else {
            unreachable!()
        };
        assert_eq!((overlay, text, malformed), (None, None, true));
        assert_eq!(body, PANIC_IN_PARSER);
        // Listing the conversation (which parses every stored body again) shows it raw.
        let unparseable = Content::Malformed {
            overlay: None,
            reason: MalformedReason::Unparseable,
        };
        let listed = bob.messages(mallory.onion.clone(), 0, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].content, unparseable);
        assert_eq!(listed[0].body, PANIC_IN_PARSER);
        let one = bob
            .message(mallory.onion.clone(), listed[0].message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.content, unparseable);
        // The connection is still open and working.
        send_and_ack(&mut conn, "2", r#"{"o":1,"d":"fine"}"#).await;
        w.cwtch.shutdown().await;
    }

    /// A body already in storage (from an older version, or from before a bug was found)
    /// is parsed again by every listing: it must not take the listing down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stored_body_whose_parsing_panics_is_listed_raw() {
        let w = World::new().await;
        let bob = w.profile("bob").await;
        let contact = Identity::from_seed(&[0x50; 32]).onion();
        let c = bob.add_contact(contact.as_str()).await.unwrap();
        let (conv, author) = (c.conversation_id, contact.to_string());
        bob.rt
            .store
            .call(move |s| {
                let mut attributes = cwtch_storage::Attributes::new();
                attributes.insert(cwtch_storage::keys::MESSAGE_AUTHOR.into(), author);
                s.insert_message(
                    conv,
                    &cwtch_storage::NewMessage {
                        body: PANIC_IN_PARSER,
                        attributes: &attributes,
                        signature: "1",
                        content_hash: "",
                    },
                )
            })
            .await
            .unwrap();
        let listed = bob.messages(&c, 0, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].content,
            Content::Malformed {
                overlay: None,
                reason: MalformedReason::Unparseable,
            }
        );
        assert_eq!(listed[0].body, PANIC_IN_PARSER);
        assert!(!listed[0].outgoing);
        w.cwtch.shutdown().await;
    }

    #[test]
    fn parsing_never_panics() {
        assert_eq!(
            Content::parse(PANIC_IN_PARSER),
            Content::Malformed {
                overlay: None,
                reason: MalformedReason::Unparseable,
            }
        );
        assert_eq!(
            Content::parse(PANIC_IN_HANDLER),
            Content::text("injected fault: panic in the handler")
        );
    }
}
