//! One behavioural suite, run against the SQLCipher store and the in-memory store: whatever
//! the peer engine sees through the traits must be the same.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;

use cwtch_storage::{
    content_hash, keys, AccessControl, Acl, Attributes, ConversationId, CwtchHome, Error, KeyType,
    MemoryHome, MessageId, NewConversation, NewMessage, Password, ProfileHome, ProfileStore,
};
use proptest::prelude::*;

const BOB: &str = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";
const CAROL: &str = "yxj2pvhozedflp4g7yitpqkeho63maaffi2qgsj3e6s2fbmosuuas2qd";

// `ProfileHome` has an associated type, so the suite is a generic function instantiated
// twice by this macro.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlcipher {
            $(
                #[test]
                fn $name() {
                    let tmp = tempfile::tempdir().unwrap();
                    let home = super::CwtchHome::open(tmp.path().join("home")).unwrap();
                    super::$name(&home);
                }
            )*
        }
        mod memory {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::MemoryHome::new());
                }
            )*
        }
    };
}

suite!(
    profiles_lifecycle,
    profile_values,
    conversations,
    blocking_and_acl,
    messages,
    batch_inserts,
    message_ranges_and_indexes,
    purge_and_delete,
    password_change,
);

fn msg<'a>(
    body: &'a str,
    attributes: &'a Attributes,
    signature: &'a str,
    hash: &'a str,
) -> NewMessage<'a> {
    NewMessage {
        body,
        attributes,
        signature,
        content_hash: hash,
    }
}

fn profiles_lifecycle<H: ProfileHome>(home: &H) {
    assert!(home.list_profiles().unwrap().is_empty());
    let a = home.create_profile("Alice", &Password::Default).unwrap();
    let b = home.create_profile("Bob", &Password::user("pw")).unwrap();
    let (ida, idb) = (a.profile_id().clone(), b.profile_id().clone());
    assert_ne!(ida, idb);
    let listed: BTreeSet<_> = home.list_profiles().unwrap().into_iter().collect();
    assert_eq!(listed, [ida.clone(), idb.clone()].into_iter().collect());

    // Open only once at a time.
    assert!(matches!(
        home.open_profile(&ida, &Password::Default),
        Err(Error::ProfileInUse(_))
    ));
    assert!(matches!(
        home.delete_profile(&ida, &Password::Default),
        Err(Error::ProfileInUse(_))
    ));
    let onion_a = a.identity().unwrap().onion();
    drop(a);
    drop(b);

    // Passwords.
    assert!(matches!(
        home.open_profile(&idb, &Password::Default),
        Err(Error::WrongPassword)
    ));
    assert!(matches!(
        home.open_profile(&ida, &Password::user("pw")),
        Err(Error::WrongPassword)
    ));
    let a = home.open_profile(&ida, &Password::Default).unwrap();
    assert_eq!(a.identity().unwrap().onion(), onion_a);
    assert_eq!(
        a.attribute(keys::PUBLIC_PROFILE_NAME).unwrap().unwrap(),
        "Alice"
    );
    assert_eq!(
        a.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
        keys::TAG_DEFAULT_PASSWORD
    );
    drop(a);
    let b = home.open_profile(&idb, &Password::user("pw")).unwrap();
    assert_eq!(
        b.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
        keys::TAG_USER_PASSWORD
    );
    drop(b);

    // Deletion needs the password.
    assert!(matches!(
        home.delete_profile(&idb, &Password::user("nope")),
        Err(Error::WrongPassword)
    ));
    home.delete_profile(&idb, &Password::user("pw")).unwrap();
    assert_eq!(home.list_profiles().unwrap(), std::slice::from_ref(&ida));
    assert!(matches!(
        home.open_profile(&idb, &Password::user("pw")),
        Err(Error::ProfileNotFound(_))
    ));
    assert!(matches!(
        home.create_profile("x", &Password::user("")),
        Err(Error::EmptyPassword)
    ));
}

fn profile_values<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    assert_eq!(p.attribute("public.profile.status").unwrap(), None);
    p.set_attribute("public.profile.status", "away").unwrap();
    p.set_attribute("public.profile.status", "busy").unwrap();
    assert_eq!(
        p.attribute("public.profile.status").unwrap().unwrap(),
        "busy"
    );
    let custom = KeyType::other("server_key_bundle");
    p.set_value(&custom, "k", &[0, 255, 1]).unwrap();
    assert_eq!(p.value(&custom, "k").unwrap().unwrap(), [0, 255, 1]);
    assert_eq!(p.value(&KeyType::ATTRIBUTE, "k").unwrap(), None);
    assert_eq!(
        p.values(&custom).unwrap(),
        [("k".to_owned(), vec![0, 255, 1])]
    );
    let names: Vec<String> = p
        .values(&KeyType::ATTRIBUTE)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "local.profile.name",
            "local.profile.tag",
            "public.profile.name",
            "public.profile.onion",
            "public.profile.status"
        ]
    );
    assert!(p.delete_value(&custom, "k").unwrap());
    assert!(!p.delete_value(&custom, "k").unwrap());
    // Survives reopening.
    let id = p.profile_id().clone();
    drop(p);
    let p = home.open_profile(&id, &Password::Default).unwrap();
    assert_eq!(
        p.attribute("public.profile.status").unwrap().unwrap(),
        "busy"
    );
}

fn conversations<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    assert!(p.conversations().unwrap().is_empty());
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    assert_eq!(bob, ConversationId(1));
    let mut attrs = Attributes::new();
    attrs.insert(
        keys::SAVE_PEER_HISTORY.into(),
        keys::DEFAULT_DELETE_HISTORY.into(),
    );
    let carol = p
        .create_conversation(&NewConversation {
            handle: CAROL.into(),
            attributes: attrs.clone(),
            acl: Acl::new(),
            accepted: false,
        })
        .unwrap();
    assert_eq!(carol, ConversationId(2));
    assert!(matches!(
        p.create_conversation(&NewConversation::contact(BOB, false)),
        Err(Error::ConversationExists(ConversationId(1)))
    ));
    assert!(matches!(
        p.create_conversation(&NewConversation::contact("", false)),
        Err(Error::EmptyHandle)
    ));

    let c = p.conversation(carol).unwrap().unwrap();
    assert_eq!(c.handle, CAROL);
    assert_eq!(c.attributes, attrs);
    assert!(!c.accepted);
    assert!(c.acl.is_empty());
    assert_eq!(p.conversation_by_handle(CAROL).unwrap().unwrap(), c);
    assert_eq!(p.conversation_by_handle("nobody").unwrap(), None);
    assert_eq!(p.conversation(ConversationId(99)).unwrap(), None);

    p.accept_conversation(carol).unwrap();
    p.set_conversation_attribute(carol, keys::PUBLIC_PROFILE_NAME, "Carol <3 & co")
        .unwrap();
    let c = p.conversation(carol).unwrap().unwrap();
    assert!(c.accepted);
    assert_eq!(
        c.attribute(keys::PUBLIC_PROFILE_NAME),
        Some("Carol <3 & co")
    );
    assert_eq!(
        c.attribute(keys::SAVE_PEER_HISTORY),
        Some(keys::DEFAULT_DELETE_HISTORY)
    );

    let ids: Vec<_> = p.conversations().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(ids, [bob, carol]);

    for r in [
        p.accept_conversation(ConversationId(99)),
        p.set_conversation_attributes(ConversationId(99), &Attributes::new()),
        p.set_conversation_acl(ConversationId(99), &Acl::new()),
        p.set_conversation_attribute(ConversationId(99), "a", "b"),
        p.set_blocked(ConversationId(99), true),
        p.delete_conversation(ConversationId(99)),
    ] {
        assert!(
            matches!(r, Err(Error::ConversationNotFound(ConversationId(99)))),
            "{r:?}"
        );
    }

    // Deleted ids are not reused.
    p.delete_conversation(bob).unwrap();
    assert_eq!(p.conversation(bob).unwrap(), None);
    let again = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    assert_eq!(again, ConversationId(3));
}

fn blocking_and_acl<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let c = p.conversation(bob).unwrap().unwrap();
    assert_eq!(c.own_access(), Some(&AccessControl::DEFAULT_P2P));
    assert!(!c.is_blocked());
    p.set_blocked(bob, true).unwrap();
    let c = p.conversation(bob).unwrap().unwrap();
    assert!(c.is_blocked());
    assert_eq!(
        c.own_access(),
        Some(&AccessControl {
            blocked: true,
            ..AccessControl::DEFAULT_P2P
        })
    );
    p.set_blocked(bob, false).unwrap();
    assert!(!p.conversation(bob).unwrap().unwrap().is_blocked());

    // A conversation without an ACL entry gets Go's default one when blocked.
    let carol = p
        .create_conversation(&NewConversation {
            handle: CAROL.into(),
            attributes: Attributes::new(),
            acl: Acl::new(),
            accepted: false,
        })
        .unwrap();
    p.set_blocked(carol, true).unwrap();
    let c = p.conversation(carol).unwrap().unwrap();
    assert_eq!(c.acl.len(), 1);
    assert!(c.is_blocked());

    // Arbitrary ACLs round-trip.
    let mut acl = Acl::new();
    acl.insert(
        "x".into(),
        AccessControl {
            append: true,
            share_files: Some(false),
            render_images: Some(true),
            ..AccessControl::ZERO
        },
    );
    acl.insert(CAROL.into(), AccessControl::DEFAULT_P2P);
    p.set_conversation_acl(carol, &acl).unwrap();
    assert_eq!(p.conversation(carol).unwrap().unwrap().acl, acl);
}

fn messages<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let me = p.identity().unwrap().onion();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    // No messages yet.
    assert_eq!(p.message_count(bob).unwrap(), 0);
    assert!(p.messages(bob, 0, 10).unwrap().is_empty());
    assert_eq!(p.message(bob, MessageId(1)).unwrap(), None);
    assert_eq!(p.latest_message(bob).unwrap(), None);
    assert_eq!(p.message_by_signature(bob, "s").unwrap(), None);
    assert_eq!(p.message_by_content_hash(bob, "h").unwrap(), None);
    assert_eq!(p.message_index(bob, MessageId(1)).unwrap(), None);

    let body = r#"{"o":1,"d":"hi Bob"}"#;
    let hash = content_hash(me.as_str(), body);
    let mut attrs = Attributes::new();
    attrs.insert(keys::MESSAGE_AUTHOR.into(), me.as_str().into());
    attrs.insert(keys::MESSAGE_ACK.into(), keys::FALSE.into());
    let m1 = p
        .insert_message(bob, &msg(body, &attrs, "sig-1", &hash))
        .unwrap();
    assert_eq!(m1, MessageId(1));
    let got = p.message(bob, m1).unwrap().unwrap();
    assert_eq!(got.id, m1);
    assert_eq!(got.body, body);
    assert_eq!(got.attributes, attrs);
    assert_eq!(got.signature, "sig-1");
    assert_eq!(got.content_hash, hash);
    assert_eq!(p.message_by_signature(bob, "sig-1").unwrap().unwrap(), got);
    assert_eq!(p.message_by_content_hash(bob, &hash).unwrap().unwrap(), got);

    // Signatures are unique per conversation; the failed insert uses no id.
    assert!(matches!(
        p.insert_message(bob, &msg(body, &attrs, "sig-1", &hash)),
        Err(Error::DuplicateSignature(c)) if c == bob
    ));
    // The same content again: content-hash lookup finds the newest.
    let m2 = p
        .insert_message(bob, &msg(body, &attrs, "sig-2", &hash))
        .unwrap();
    assert_eq!(m2, MessageId(2));
    assert_eq!(
        p.message_by_content_hash(bob, &hash).unwrap().unwrap().id,
        m2
    );
    // What a reply between them quotes: the newest before it.
    let before = |id: i64| {
        p.message_by_content_hash_before(bob, &hash, MessageId(id))
            .unwrap()
            .map(|m| m.id)
    };
    assert_eq!(before(2), Some(m1));
    assert_eq!(before(3), Some(m2));
    assert_eq!(before(1), None);

    // Acknowledge; mark an error.
    p.set_message_attribute(bob, m1, keys::MESSAGE_ACK, keys::TRUE)
        .unwrap();
    p.set_message_attribute(bob, m2, keys::MESSAGE_ERROR, "peer offline")
        .unwrap();
    let got = p.message(bob, m1).unwrap().unwrap();
    assert_eq!(got.attributes[keys::MESSAGE_ACK], keys::TRUE);
    assert_eq!(got.attributes[keys::MESSAGE_AUTHOR], me.as_str());
    assert_eq!(
        p.message(bob, m2).unwrap().unwrap().attributes[keys::MESSAGE_ERROR],
        "peer offline"
    );
    assert!(matches!(
        p.set_message_attribute(bob, MessageId(77), "a", "b"),
        Err(Error::MessageNotFound { .. })
    ));
    assert!(matches!(
        p.set_message_attributes(bob, MessageId(77), &Attributes::new()),
        Err(Error::MessageNotFound { .. })
    ));

    // Messages for a missing conversation.
    assert!(matches!(
        p.insert_message(ConversationId(42), &msg(body, &attrs, "x", &hash)),
        Err(Error::ConversationNotFound(ConversationId(42)))
    ));
    assert_eq!(p.message_count(ConversationId(42)).unwrap(), 0);

    // Signatures are per conversation.
    let carol = p
        .create_conversation(&NewConversation::contact(CAROL, true))
        .unwrap();
    assert_eq!(
        p.insert_message(carol, &msg(body, &attrs, "sig-1", &hash))
            .unwrap(),
        MessageId(1)
    );
    // Unicode, HTML-ish and empty content survive.
    let odd = "<b>\u{2028}&\"\\\u{0}é🙂";
    let mut odd_attrs = Attributes::new();
    odd_attrs.insert(odd.into(), odd.into());
    let m = p
        .insert_message(carol, &msg(odd, &odd_attrs, odd, ""))
        .unwrap();
    let got = p.message(carol, m).unwrap().unwrap();
    assert_eq!((got.body.as_str(), got.signature.as_str()), (odd, odd));
    assert_eq!(got.attributes, odd_attrs);

    let id = p.profile_id().clone();
    drop(p);
    let p = home.open_profile(&id, &Password::Default).unwrap();
    assert_eq!(p.message_count(bob).unwrap(), 2);
    assert_eq!(p.message_count(carol).unwrap(), 2);
}

/// A batch is stored in order, duplicates (stored before, or earlier in the batch) are skipped
/// in place, and a batch naming a missing conversation stores nothing.
fn batch_inserts<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let carol = p
        .create_conversation(&NewConversation::contact(CAROL, true))
        .unwrap();
    let a = Attributes::new();
    p.insert_message(bob, &msg("old", &a, "s0", "h0")).unwrap();
    let got = p
        .insert_messages(&[
            (bob, msg("one", &a, "s1", "h1")),
            (carol, msg("two", &a, "s2", "h2")),
            (bob, msg("dup of old", &a, "s0", "hx")),
            (bob, msg("three", &a, "s3", "h3")),
            (bob, msg("dup in batch", &a, "s1", "hy")),
        ])
        .unwrap();
    assert_eq!(got.iter().filter(|x| x.is_none()).count(), 2, "{got:?}");
    assert!(got[0].is_some() && got[1].is_some() && got[3].is_some());
    assert!(got[2].is_none() && got[4].is_none());
    let bodies: Vec<String> = p
        .messages(bob, 0, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["three", "one", "old"]);
    assert_eq!(p.message_count(carol).unwrap(), 1);
    assert_eq!(
        p.message(bob, got[3].unwrap()).unwrap().unwrap().body,
        "three"
    );
    // A missing conversation: nothing of the batch is stored (SQLCipher) or it fails at that
    // message (memory); either way an error, and bob's earlier messages are intact.
    assert!(p
        .insert_messages(&[(ConversationId(999), msg("x", &a, "s9", "h9"))])
        .is_err());
    assert_eq!(p.message_count(bob).unwrap(), 3);
}

fn message_ranges_and_indexes<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let attrs = Attributes::new();
    for i in 1..=25 {
        let body = format!("{{\"o\":1,\"d\":\"{i}\"}}");
        let id = p
            .insert_message(bob, &msg(&body, &attrs, &format!("s{i}"), &format!("h{i}")))
            .unwrap();
        assert_eq!(id, MessageId(i));
    }
    assert_eq!(p.message_count(bob).unwrap(), 25);
    let ids = |v: Vec<cwtch_storage::Message>| v.into_iter().map(|m| m.id.0).collect::<Vec<_>>();
    assert_eq!(ids(p.messages(bob, 0, 3).unwrap()), [25, 24, 23]);
    assert_eq!(ids(p.messages(bob, 10, 3).unwrap()), [15, 14, 13]);
    assert_eq!(ids(p.messages(bob, 23, 10).unwrap()), [2, 1]);
    assert!(p.messages(bob, 25, 10).unwrap().is_empty());
    assert!(p.messages(bob, u64::MAX, 10).unwrap().is_empty());
    assert!(p.messages(bob, 0, 0).unwrap().is_empty());
    assert_eq!(p.messages(bob, 0, u32::MAX).unwrap().len(), 25);
    assert_eq!(p.latest_message(bob).unwrap().unwrap().id, MessageId(25));
    assert_eq!(p.message_index(bob, MessageId(25)).unwrap(), Some(0));
    assert_eq!(p.message_index(bob, MessageId(1)).unwrap(), Some(24));
    assert_eq!(p.message_index(bob, MessageId(26)).unwrap(), None);
    assert_eq!(p.message_index(bob, MessageId(i64::MAX)).unwrap(), None);
    // The index is the offset at which `messages` returns the message.
    let at = p.message_index(bob, MessageId(7)).unwrap().unwrap();
    assert_eq!(ids(p.messages(bob, at, 1).unwrap()), [7]);
}

fn purge_and_delete<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let attrs = Attributes::new();
    for i in 1..=3 {
        p.insert_message(bob, &msg("b", &attrs, &format!("s{i}"), "h"))
            .unwrap();
    }
    p.delete_messages(bob).unwrap();
    assert_eq!(p.message_count(bob).unwrap(), 0);
    assert_eq!(p.message_by_signature(bob, "s1").unwrap(), None);
    // AUTOINCREMENT: ids continue after a purge, and old signatures are free again.
    assert_eq!(
        p.insert_message(bob, &msg("b", &attrs, "s1", "h")).unwrap(),
        MessageId(4)
    );
    // Purging a conversation that never had messages is fine; a missing one is not.
    let carol = p
        .create_conversation(&NewConversation::contact(CAROL, true))
        .unwrap();
    p.delete_messages(carol).unwrap();
    assert!(matches!(
        p.delete_messages(ConversationId(9)),
        Err(Error::ConversationNotFound(_))
    ));
    // Deleting the conversation deletes its messages.
    p.delete_conversation(bob).unwrap();
    assert_eq!(p.message_count(bob).unwrap(), 0);
    assert_eq!(p.message(bob, MessageId(4)).unwrap(), None);
    assert_eq!(p.conversations().unwrap().len(), 1);
}

fn password_change<H: ProfileHome>(home: &H) {
    let mut p = home.create_profile("Alice", &Password::Default).unwrap();
    let id = p.profile_id().clone();
    let onion = p.identity().unwrap().onion();
    let bob = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let attrs = Attributes::new();
    p.insert_message(bob, &msg("b", &attrs, "s", "h")).unwrap();

    assert!(matches!(
        p.change_password(&Password::user("not it"), &Password::user("new")),
        Err(Error::WrongPassword)
    ));
    assert!(matches!(
        p.change_password(&Password::Default, &Password::user("")),
        Err(Error::EmptyPassword)
    ));
    p.change_password(&Password::Default, &Password::user("new"))
        .unwrap();
    // The handle keeps working after the change.
    assert_eq!(p.message_count(bob).unwrap(), 1);
    assert_eq!(
        p.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
        keys::TAG_USER_PASSWORD
    );
    p.insert_message(bob, &msg("b", &attrs, "s2", "h")).unwrap();
    drop(p);

    assert!(matches!(
        home.open_profile(&id, &Password::Default),
        Err(Error::WrongPassword)
    ));
    let mut p = home.open_profile(&id, &Password::user("new")).unwrap();
    assert_eq!(p.identity().unwrap().onion(), onion);
    assert_eq!(p.message_count(bob).unwrap(), 2);
    p.change_password(&Password::user("new"), &Password::Default)
        .unwrap();
    assert_eq!(
        p.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
        keys::TAG_DEFAULT_PASSWORD
    );
    drop(p);
    home.open_profile(&id, &Password::Default).unwrap();
}

// ---- property tests: arbitrary attributes and ACLs survive both stores ----

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.]{0,12}",
        any::<String>(),
        Just("<&>\u{2028}\u{2029}\"\\".to_owned()),
    ]
}

fn arb_attributes() -> impl Strategy<Value = Attributes> {
    proptest::collection::btree_map(arb_text(), arb_text(), 0..6)
}

fn arb_acl() -> impl Strategy<Value = Acl> {
    proptest::collection::btree_map(
        arb_text(),
        (
            (any::<bool>(), any::<bool>(), any::<bool>()),
            proptest::array::uniform4(any::<Option<bool>>()),
        )
            .prop_map(|((blocked, read, append), [a, e, s, r])| AccessControl {
                blocked,
                read,
                append,
                auto_connect: a,
                exchange_attributes: e,
                share_files: s,
                render_images: r,
            }),
        0..4,
    )
}

fn store_round_trip<P: ProfileStore>(
    p: &mut P,
    conv: ConversationId,
    a: &Attributes,
    acl: &Acl,
    n: usize,
) {
    p.set_conversation_attributes(conv, a).unwrap();
    p.set_conversation_acl(conv, acl).unwrap();
    let c = p.conversation(conv).unwrap().unwrap();
    assert_eq!(&c.attributes, a);
    assert_eq!(&c.acl, acl);
    let m = p
        .insert_message(conv, &msg("b", a, &format!("sig{n}"), "h"))
        .unwrap();
    assert_eq!(&p.message(conv, m).unwrap().unwrap().attributes, a);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn attributes_and_acls_survive_both_stores(cases in proptest::collection::vec((arb_attributes(), arb_acl()), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut sql = home.create_profile("A", &Password::Default).unwrap();
        let mem_home = MemoryHome::new();
        let mut mem = mem_home.create_profile("A", &Password::Default).unwrap();
        let cs = sql.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let cm = mem.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        for (n, (a, acl)) in cases.iter().enumerate() {
            store_round_trip(&mut sql, cs, a, acl, n);
            store_round_trip(&mut mem, cm, a, acl, n);
        }
        prop_assert_eq!(sql.conversations().unwrap(), mem.conversations().unwrap());
        prop_assert_eq!(sql.messages(cs, 0, 100).unwrap(), mem.messages(cm, 0, 100).unwrap());
    }
}

#[test]
fn stores_are_send() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<cwtch_storage::Profile>();
    send::<cwtch_storage::MemoryProfile>();
    send_sync::<CwtchHome>();
    send_sync::<MemoryHome>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `authors` (a group's members and unread count) answers the same in SQL as by reading
    /// every message, for any authors, keys (also ones a JSON path must quote) and cut-off.
    #[test]
    fn authors_agree_in_both_stores(
        messages in proptest::collection::vec((proptest::option::of(0..5usize), arb_attributes()), 0..30),
        after in 0i64..35,
        key in prop_oneof![Just(keys::MESSAGE_AUTHOR.to_owned()), Just("a.b c".to_owned()), Just("q\"uote".to_owned()), arb_text()],
    ) {
        let names = ["me", BOB, CAROL, "dave", ""];
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut sql = home.create_profile("A", &Password::Default).unwrap();
        let mem_home = MemoryHome::new();
        let mut mem = mem_home.create_profile("A", &Password::Default).unwrap();
        let cs = sql.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let cm = mem.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let mut want = cwtch_storage::Authors::default();
        for (n, (author, extra)) in messages.iter().enumerate() {
            let mut attrs = extra.clone();
            attrs.remove(&key);
            if let Some(i) = author {
                attrs.insert(key.clone(), names[*i].to_owned());
                if names[*i] != "me" {
                    want.names.insert(names[*i].to_owned());
                    if n as i64 + 1 > after {
                        want.after += 1;
                    }
                }
            }
            let (sig, hash) = (format!("s{n}"), format!("h{n}"));
            sql.insert_message(cs, &msg("{}", &attrs, &sig, &hash)).unwrap();
            mem.insert_message(cm, &msg("{}", &attrs, &sig, &hash)).unwrap();
        }
        let got_sql = sql.authors(cs, &key, "me", MessageId(after)).unwrap();
        let got_mem = mem.authors(cm, &key, "me", MessageId(after)).unwrap();
        prop_assert_eq!(&got_sql, &want);
        prop_assert_eq!(&got_mem, &want);
        // The same unread count, counted over the messages after `after` only.
        let after = MessageId(after);
        prop_assert_eq!(sql.count_after(cs, &key, "me", after).unwrap(), want.after);
        prop_assert_eq!(mem.count_after(cm, &key, "me", after).unwrap(), want.after);
        prop_assert_eq!(
            cwtch_storage::count_after_by_reading(&sql, cs, &key, "me", after).unwrap(),
            want.after
        );
    }
}

#[test]
fn authors_of_a_conversation_without_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let mut sql = home.create_profile("A", &Password::Default).unwrap();
    let c = sql
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    let none = sql
        .authors(c, keys::MESSAGE_AUTHOR, "me", MessageId(0))
        .unwrap();
    assert_eq!(none, cwtch_storage::Authors::default());
    let none = sql
        .authors(
            ConversationId(999),
            keys::MESSAGE_AUTHOR,
            "me",
            MessageId(0),
        )
        .unwrap();
    assert_eq!(none, cwtch_storage::Authors::default());
    for conv in [c, ConversationId(999)] {
        let n = sql
            .count_after(conv, keys::MESSAGE_AUTHOR, "me", MessageId(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `messages_containing` (a conversation's file offers) finds the same messages, in the
    /// same order, in SQL as by reading every message, for any bodies and needles.
    #[test]
    fn messages_containing_agrees_in_both_stores(
        bodies in proptest::collection::vec(prop_oneof!["[02o\":{}, ]{0,16}", arb_text()], 0..30),
        needle in prop_oneof![Just("200".to_owned()), Just(String::new()), "[02o\":]{1,4}", arb_text()],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut sql = home.create_profile("A", &Password::Default).unwrap();
        let mem_home = MemoryHome::new();
        let mut mem = mem_home.create_profile("A", &Password::Default).unwrap();
        let cs = sql.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let cm = mem.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let attrs = Attributes::new();
        for (n, body) in bodies.iter().enumerate() {
            let (sig, hash) = (format!("s{n}"), format!("h{n}"));
            sql.insert_message(cs, &msg(body, &attrs, &sig, &hash)).unwrap();
            mem.insert_message(cm, &msg(body, &attrs, &sig, &hash)).unwrap();
        }
        let want: Vec<String> = bodies.iter().rev().filter(|b| b.contains(needle.as_str())).cloned().collect();
        let bodies_of = |ms: Vec<cwtch_storage::Message>| ms.into_iter().map(|m| m.body).collect::<Vec<_>>();
        prop_assert_eq!(bodies_of(sql.messages_containing(cs, &needle).unwrap()), want.clone());
        prop_assert_eq!(bodies_of(mem.messages_containing(cm, &needle).unwrap()), want.clone());
        prop_assert_eq!(
            bodies_of(cwtch_storage::messages_containing_by_reading(&sql, cs, &needle).unwrap()),
            want
        );
        prop_assert!(sql.messages_containing(ConversationId(999), &needle).unwrap().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `scan_containing_ignore_ascii_case` (what a search reads) finds the same messages, at
    /// the same positions, in the same order, in SQL as by reading every message, for any
    /// bodies and needles (ASCII case folded, nothing else), and stops when told to.
    #[test]
    fn scan_containing_agrees_in_both_stores(
        bodies in proptest::collection::vec(prop_oneof!["[aAbBİı\\\\u\" ]{0,12}", arb_text()], 0..30),
        needles in proptest::collection::vec(prop_oneof![Just(String::new()), "[aAbBİı\\\\u]{1,3}", arb_text()], 0..3),
        stop_after in 0usize..5,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut sql = home.create_profile("A", &Password::Default).unwrap();
        let c = sql.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let attrs = Attributes::new();
        for (n, body) in bodies.iter().enumerate() {
            sql.insert_message(c, &msg(body, &attrs, &format!("s{n}"), &format!("h{n}"))).unwrap();
        }
        let needle_refs: Vec<&str> = needles.iter().map(String::as_str).collect();
        let want: Vec<(u64, String)> = bodies
            .iter()
            .rev()
            .enumerate()
            .filter(|(_, b)| {
                let b = b.to_ascii_lowercase();
                needles.iter().any(|n| b.contains(&n.to_ascii_lowercase()))
            })
            .map(|(i, b)| (i as u64, b.clone()))
            .collect();
        let collect = |by_reading: bool, limit: Option<usize>| {
            let mut got = Vec::new();
            let mut each = |i: u64, m: cwtch_storage::Message| {
                got.push((i, m.body));
                if limit.is_some_and(|l| got.len() >= l) {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            };
            if by_reading {
                cwtch_storage::scan_containing_ignore_ascii_case_by_reading(&sql, c, &needle_refs, &mut each).unwrap();
            } else {
                sql.scan_containing_ignore_ascii_case(c, &needle_refs, &mut each).unwrap();
            }
            got
        };
        prop_assert_eq!(collect(false, None), want.clone());
        prop_assert_eq!(collect(true, None), want.clone());
        let first: Vec<_> = want.iter().take(stop_after.max(1)).cloned().collect();
        prop_assert_eq!(collect(false, Some(stop_after.max(1))), first);
        // Each position is where `messages` lists that message.
        for (i, body) in &want {
            prop_assert_eq!(&sql.messages(c, *i, 1).unwrap()[0].body, body);
        }
        let mut none = true;
        sql.scan_containing_ignore_ascii_case(ConversationId(999), &needle_refs, &mut |_, _| {
            none = false;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        prop_assert!(none);
    }
}

fn arb_condition() -> impl Strategy<Value = (u8, usize, usize)> {
    (0u8..4, 0usize..4, 0usize..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `messages_where` (the outbox and unposted posts a restart looks for) selects the same
    /// messages, in the same order, in SQL as by reading every message, for any attributes
    /// and conditions (also on keys a JSON path must quote, and on absent ones).
    #[test]
    fn messages_where_agrees_in_both_stores(
        messages in proptest::collection::vec(
            (arb_attributes(), proptest::collection::vec((0usize..4, 0usize..4), 0..4)),
            0..25,
        ),
        conditions in proptest::collection::vec(arb_condition(), 0..4),
    ) {
        use cwtch_storage::AttributeCondition as C;
        let keys = [keys::MESSAGE_AUTHOR, keys::MESSAGE_ACK, "q\"uote", "error"];
        let values = ["me", "true", "", "x"];
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut sql = home.create_profile("A", &Password::Default).unwrap();
        let mem_home = MemoryHome::new();
        let mut mem = mem_home.create_profile("A", &Password::Default).unwrap();
        let cs = sql.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let cm = mem.create_conversation(&NewConversation::contact(BOB, true)).unwrap();
        let mut stored = Vec::new();
        for (n, (extra, set)) in messages.iter().enumerate() {
            let mut attrs = extra.clone();
            for (k, v) in set {
                attrs.insert(keys[*k].to_owned(), values[*v].to_owned());
            }
            let (sig, hash) = (format!("s{n}"), format!("h{n}"));
            sql.insert_message(cs, &msg("{}", &attrs, &sig, &hash)).unwrap();
            mem.insert_message(cm, &msg("{}", &attrs, &sig, &hash)).unwrap();
            stored.push((sig, attrs));
        }
        let filter: Vec<C<'_>> = conditions
            .iter()
            .map(|(kind, k, v)| match kind {
                0 => C::Equals(keys[*k], values[*v]),
                1 => C::NotEquals(keys[*k], values[*v]),
                2 => C::NonEmpty(keys[*k]),
                _ => C::Empty(keys[*k]),
            })
            .collect();
        let want: Vec<String> = stored
            .iter()
            .rev()
            .filter(|(_, a)| filter.iter().all(|c| c.holds(a)))
            .map(|(s, _)| s.clone())
            .collect();
        let sigs = |ms: Vec<cwtch_storage::Message>| ms.into_iter().map(|m| m.signature).collect::<Vec<_>>();
        prop_assert_eq!(sigs(sql.messages_where(cs, &filter).unwrap()), want.clone());
        prop_assert_eq!(sigs(mem.messages_where(cm, &filter).unwrap()), want.clone());
        prop_assert_eq!(
            sigs(cwtch_storage::messages_where_by_reading(&sql, cs, &filter).unwrap()),
            want
        );
    }
}

#[test]
fn messages_where_conditions() {
    use cwtch_storage::AttributeCondition as C;
    let mut a = Attributes::new();
    a.insert("author".into(), "me".into());
    a.insert("ack".into(), String::new());
    assert!(C::Equals("author", "me").holds(&a));
    assert!(!C::Equals("author", "you").holds(&a));
    assert!(!C::Equals("missing", "").holds(&a));
    assert!(C::NotEquals("missing", "").holds(&a));
    assert!(C::NotEquals("ack", "true").holds(&a));
    assert!(!C::NotEquals("author", "me").holds(&a));
    assert!(C::Empty("ack").holds(&a) && C::Empty("missing").holds(&a));
    assert!(!C::Empty("author").holds(&a));
    assert!(C::NonEmpty("author").holds(&a));
    assert!(!C::NonEmpty("ack").holds(&a) && !C::NonEmpty("missing").holds(&a));
}
