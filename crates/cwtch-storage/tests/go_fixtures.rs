//! The Go-made profiles in `testvectors/aliceandbob1/` (Cwtch UI integration-test fixtures,
//! see testvectors/vectors.json `provenance`): opened in place read-only, and as copies
//! read-write; our schema compared with theirs.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use cwtch_storage::{
    acl_from_json, acl_to_json, attributes_from_json, attributes_to_json, keys, AccessControl,
    Attributes, ConversationId, CwtchHome, Error, KeyType, NewConversation, NewMessage, Password,
    Profile, ProfileHome, ProfileId, ProfileStore,
};

struct Expected {
    id: &'static str,
    name: &'static str,
    contacts: &'static [(&'static str, &'static str)],
}

const PROFILES: [Expected; 3] = [
    Expected {
        id: ALICE,
        name: "Alice",
        contacts: &[(
            "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd",
            "Bob",
        )],
    },
    Expected {
        id: BOB,
        name: "Bob",
        contacts: &[(
            "vbmmsbx3rhndpfz6t3jkrd7m3yu62xzrldxkdgsw4rsehiwuw3tmo7yd",
            "Alice",
        )],
    },
    Expected {
        id: CAROL,
        name: "Carol",
        contacts: &[],
    },
];

#[test]
fn go_profiles_open_in_place_read_only_and_are_not_modified() {
    let before = snapshot(&fixture_home());
    let vectors = vectors();
    for e in &PROFILES {
        let dir = fixture_home().join("profiles").join(e.id);
        let p = Profile::open_read_only(&dir, &Password::Default).unwrap();
        assert!(p.is_read_only());
        let v = &vectors["profiles"][e.id];

        // Name and onion: the attributes, vectors.json, and the stored key agree.
        let name = p.attribute(keys::PUBLIC_PROFILE_NAME).unwrap().unwrap();
        assert_eq!(name, e.name);
        assert_eq!(name, v["name"].as_str().unwrap());
        assert_eq!(
            p.attribute(keys::LOCAL_PROFILE_NAME).unwrap().unwrap(),
            e.name
        );
        let onion = p.attribute(keys::PUBLIC_PROFILE_ONION).unwrap().unwrap();
        assert_eq!(onion, v["onion"].as_str().unwrap());
        let identity = p.identity().unwrap();
        assert_eq!(identity.onion().as_str(), onion);
        assert_eq!(
            p.value(&KeyType::PUBLIC_KEY, keys::ED25519_PUBLIC_KEY)
                .unwrap()
                .unwrap(),
            identity.public_key().as_bytes().to_vec()
        );
        assert_eq!(
            p.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
            keys::TAG_DEFAULT_PASSWORD
        );
        assert_eq!(
            p.attribute(keys::LOCAL_PROFILE_PEER_ONLINE)
                .unwrap()
                .unwrap(),
            "false"
        );
        let picture = p.attribute(keys::PUBLIC_PROFILE_PICTURE).unwrap().unwrap();
        assert!(picture.starts_with(r#"{"Val":"profiles/"#), "{picture}");

        // Every profile_kv row is one of the documented ones.
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
                "local.profile.peer-online",
                "local.profile.tag",
                "public.profile.name",
                "public.profile.onion",
                "public.profile.picture"
            ]
        );

        // Contacts: handle, name, ACL, accepted; and their stored messages (none).
        let convs = p.conversations().unwrap();
        assert_eq!(convs.len(), e.contacts.len());
        for (c, (handle, contact_name)) in convs.iter().zip(e.contacts) {
            assert_eq!(c.id, ConversationId(1));
            assert_eq!(c.handle, *handle);
            assert_eq!(c.attribute(keys::PUBLIC_PROFILE_NAME), Some(*contact_name));
            assert_eq!(
                c.attribute(keys::SAVE_PEER_HISTORY),
                Some(keys::DEFAULT_DELETE_HISTORY)
            );
            assert!(c.accepted);
            assert!(!c.is_blocked());
            assert_eq!(c.acl.len(), 1);
            assert_eq!(c.own_access(), Some(&AccessControl::DEFAULT_P2P));
            assert_eq!(p.conversation_by_handle(handle).unwrap().as_ref(), Some(c));
            assert_eq!(p.message_count(c.id).unwrap(), 0);
            assert!(p.messages(c.id, 0, 100).unwrap().is_empty());
            // The contact's handle is the other fixture profile's onion.
            let other = vectors["profiles"]
                .as_object()
                .unwrap()
                .values()
                .find(|v| v["name"] == *contact_name)
                .unwrap();
            assert_eq!(other["onion"].as_str().unwrap(), *handle);
        }

        // Writes are refused.
        let mut p = p;
        assert!(matches!(p.set_attribute("x", "y"), Err(Error::ReadOnly)));
        assert!(matches!(
            p.change_password(&Password::Default, &Password::user("x")),
            Err(Error::ReadOnly)
        ));
    }
    assert_eq!(
        snapshot(&fixture_home()),
        before,
        "fixtures must not change"
    );
}

#[test]
fn go_json_columns_round_trip_byte_for_byte() {
    for id in [ALICE, BOB] {
        let c = raw_open(&fixture_home().join("profiles").join(id), "be gay do crime");
        let (attrs, acl): (Vec<u8>, Vec<u8>) = c
            .query_row("SELECT Attributes, ACL FROM conversations", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            attributes_to_json(&attributes_from_json(&attrs).unwrap()),
            attrs
        );
        assert_eq!(acl_to_json(&acl_from_json(&acl).unwrap()), acl);
    }
}

#[test]
fn go_profiles_open_read_write_from_a_copy() {
    let (_tmp, home_dir) = fixture_copy();
    let home = CwtchHome::open(&home_dir).unwrap();
    let mut ids = home.list_profiles().unwrap();
    ids.sort();
    let mut expected: Vec<ProfileId> = [ALICE, BOB, CAROL]
        .iter()
        .map(|s| ProfileId::parse(s).unwrap())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);

    let alice = ProfileId::parse(ALICE).unwrap();
    let mut p = home.open_profile(&alice, &Password::Default).unwrap();
    assert!(matches!(
        home.open_profile(&alice, &Password::Default),
        Err(Error::ProfileInUse(_))
    ));
    let bob = p.conversations().unwrap()[0].clone();
    let mut attrs = Attributes::new();
    attrs.insert(keys::MESSAGE_AUTHOR.into(), bob.handle.clone());
    let body = r#"{"o":1,"d":"hello from rust"}"#;
    let hash = cwtch_storage::content_hash(&bob.handle, body);
    let m = p
        .insert_message(
            bob.id,
            &NewMessage {
                body,
                attributes: &attrs,
                signature: "sig-1",
                content_hash: &hash,
            },
        )
        .unwrap();
    // Go created channel_1_0_chat already; ids start at 1.
    assert_eq!(m.0, 1);
    let c2 = p
        .create_conversation(&NewConversation::contact(
            "yxj2pvhozedflp4g7yitpqkeho63maaffi2qgsj3e6s2fbmosuuas2qd",
            false,
        ))
        .unwrap();
    assert_eq!(c2, ConversationId(2), "Go's sqlite_sequence continues");
    drop(p);

    let p = home.open_profile(&alice, &Password::Default).unwrap();
    assert_eq!(
        p.message_by_content_hash(bob.id, &hash)
            .unwrap()
            .unwrap()
            .id,
        m
    );
    assert_eq!(p.conversations().unwrap().len(), 2);
    drop(p);
    // Still opens with Go's exact settings (what Go itself would do).
    let raw = raw_open(&home.profile_dir(&alice), "be gay do crime");
    let n: i64 = raw
        .query_row("SELECT count(*) FROM channel_1_0_chat", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn wrong_password_on_a_go_profile() {
    let before = snapshot(&fixture_home());
    let dir = fixture_home().join("profiles").join(BOB);
    let e = Profile::open_read_only(&dir, &Password::user("be gay do crimes")).unwrap_err();
    assert!(matches!(e, Error::WrongPassword), "{e}");
    assert_eq!(snapshot(&fixture_home()), before);
}

#[test]
fn our_schema_is_gos_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let mut p = home.create_profile("Dave", &Password::Default).unwrap();
    let id = p.profile_id().clone();

    // A fresh profile is what Carol (no contacts) is.
    let go_carol = raw_open(
        &fixture_home().join("profiles").join(CAROL),
        "be gay do crime",
    );
    let ours = raw_open(&home.profile_dir(&id), "be gay do crime");
    assert_eq!(master(&ours), master(&go_carol));
    drop(ours);

    // With a contact it is what Alice (one contact, empty channel table) is, down to
    // `sqlite_sequence` (no row for the channel table: Go created it with the conversation).
    let c = p
        .create_conversation(&NewConversation::contact(
            "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd",
            true,
        ))
        .unwrap();
    let go_alice = raw_open(
        &fixture_home().join("profiles").join(ALICE),
        "be gay do crime",
    );
    {
        let ours = raw_open(&home.profile_dir(&id), "be gay do crime");
        assert_eq!(master(&ours), master(&go_alice));
        let seq = |c: &rusqlite::Connection| -> Vec<(String, i64)> {
            let mut st = c.prepare("SELECT name, seq FROM sqlite_sequence").unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(seq(&ours), seq(&go_alice));
        assert_eq!(seq(&ours), [("conversations".to_owned(), 1)]);
    }
    // And with a message still the same schema.
    let attrs = Attributes::new();
    p.insert_message(
        c,
        &NewMessage {
            body: "{}",
            attributes: &attrs,
            signature: "s",
            content_hash: "h",
        },
    )
    .unwrap();
    drop(p);
    let go_alice = raw_open(
        &fixture_home().join("profiles").join(ALICE),
        "be gay do crime",
    );
    let ours = raw_open(&home.profile_dir(&id), "be gay do crime");
    assert_eq!(master(&ours), master(&go_alice));
    assert_eq!(
        master(&ours)
            .iter()
            .filter_map(|r| r.3.clone())
            .collect::<Vec<_>>(),
        [
            cwtch_storage::schema::MASTER_SQL[0].to_owned(),
            cwtch_storage::schema::MASTER_SQL[1].to_owned(),
            cwtch_storage::schema::MASTER_SQL[2].to_owned(),
            cwtch_storage::schema::channel_master_sql(ConversationId(1)),
        ]
    );

    // Same storage classes as Go's rows (text keys, blob values, integer Accepted).
    assert_eq!(
        typed_rows(&ours, "conversations"),
        typed_rows(&go_alice, "conversations")
    );
    let kv_types = |c: &rusqlite::Connection| {
        let mut v = typed_rows(c, "profile_kv");
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(kv_types(&ours), kv_types(&go_alice));

    // Same database-level settings.
    for pragma in [
        "page_size",
        "user_version",
        "application_id",
        "auto_vacuum",
        "encoding",
        "journal_mode",
        "cipher_plaintext_header_size",
    ] {
        let get = |c: &rusqlite::Connection| -> String {
            c.query_row(&format!("PRAGMA {pragma}"), [], |r| {
                Ok(format!("{:?}", r.get::<_, rusqlite::types::Value>(0)?))
            })
            .unwrap()
        };
        assert_eq!(get(&ours), get(&go_alice), "PRAGMA {pragma}");
    }
}

#[test]
fn created_identity_round_trips_as_go_stores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let identity = torv3::Identity::from_seed(&[7u8; 32]);
    let p = home
        .create_profile_with_identity("Eve", &Password::user("pw"), &identity)
        .unwrap();
    let id = p.profile_id().clone();
    drop(p);
    let p = home.open_profile(&id, &Password::user("pw")).unwrap();
    let back = p.identity().unwrap();
    assert_eq!(back.onion(), identity.onion());
    assert_eq!(
        p.value(&KeyType::PRIVATE_KEY, keys::ED25519_PRIVATE_KEY)
            .unwrap()
            .unwrap(),
        identity.to_go_private_key().to_vec()
    );
    assert_eq!(
        p.value(&KeyType::PUBLIC_KEY, keys::ED25519_PUBLIC_KEY)
            .unwrap()
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        p.attribute(keys::PUBLIC_PROFILE_ONION).unwrap().unwrap(),
        identity.onion().as_str()
    );
    assert_eq!(
        p.attribute(keys::PUBLIC_PROFILE_NAME).unwrap().unwrap(),
        "Eve"
    );
    assert_eq!(
        p.attribute(keys::LOCAL_PROFILE_NAME).unwrap().unwrap(),
        "Eve"
    );
    assert_eq!(
        p.attribute(keys::LOCAL_PROFILE_TAG).unwrap().unwrap(),
        keys::TAG_USER_PASSWORD
    );
    // The same code path that opens Go's profiles opens ours, read-only too.
    let dir = p.dir().to_path_buf();
    drop(p);
    let ro = Profile::open_read_only(&dir, &Password::user("pw")).unwrap();
    assert_eq!(ro.identity().unwrap().onion(), identity.onion());
    // And Go's settings open it: VERSION and SALT as Go writes them.
    assert_eq!(std::fs::read(dir.join("VERSION")).unwrap(), b"2");
    assert_eq!(std::fs::read(dir.join("SALT")).unwrap().len(), 128);
    let raw = raw_open(&dir, "pw");
    let n: i64 = raw
        .query_row("SELECT count(*) FROM profile_kv", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 6);
}

#[test]
fn a_tampered_identity_is_refused() {
    let (_tmp, home_dir) = fixture_copy();
    let home = CwtchHome::open(&home_dir).unwrap();
    let carol = ProfileId::parse(CAROL).unwrap();
    let mut p = home.open_profile(&carol, &Password::Default).unwrap();
    p.set_attribute(
        keys::PUBLIC_PROFILE_ONION,
        "vbmmsbx3rhndpfz6t3jkrd7m3yu62xzrldxkdgsw4rsehiwuw3tmo7yd",
    )
    .unwrap();
    drop(p);
    let e = home.open_profile(&carol, &Password::Default).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Identity(cwtch_storage::IdentityError::OnionMismatch)
        ),
        "{e}"
    );
}
