//! Groups on a real server over the loopback network: three profiles create, invite over P2P,
//! accept, post and read; a member that was offline catches up without duplicates; forged and
//! garbage messages on the server are dropped.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use cwtch::{Event, GroupRef};
use cwtch_model::{EncryptedGroupMessage, KeyBundle};
use cwtch_server::client::ServerClient;
use cwtch_server::{Server, ServerConfig};

async fn start_server(w: &World, name: &str) -> Server {
    let dir = w.home(name);
    cwtch_server::create_data_dir(&dir).unwrap();
    let c = ServerConfig::generate(&mut rand_core::OsRng);
    c.save_new(&dir).unwrap();
    Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn())
        .await
        .unwrap()
}

fn is_group_message<'a>(author: &'a str, text: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| matches!(e, Event::GroupMessage { author: a, text: Some(t), .. } if a == author && t == text)
}

/// Every message text in a group, oldest first, with its author.
async fn texts(p: &Peer, g: i64) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .profile
        .group_messages(cwtch::ConversationId(g), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.author.clone(),
                m.content.display_text().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    v.reverse();
    v
}

/// Wait for `p` to receive the invite sent over P2P, accept it, and return the group's
/// conversation id.
async fn accept_invite(p: &mut Peer, from: &str) -> i64 {
    let e = p
        .expect(
            "group invite",
            |e| matches!(e, Event::GroupInvite { from: f, .. } if f == from),
        )
        .await;
    let Event::GroupInvite {
        conversation_id, ..
    } = e
    else {
        unreachable!()
    };
    let info = p
        .profile
        .group(cwtch::ConversationId(conversation_id))
        .await
        .unwrap();
    assert!(!info.accepted, "an invite waits for acceptance");
    p.profile
        .accept_group(cwtch::ConversationId(conversation_id))
        .await
        .unwrap();
    conversation_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_create_invite_accept_post_and_read() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let mut carol = peer(&w, "carol", fast_config()).await;

    let s = alice.profile.add_server(&server.bundle()).await.unwrap();
    assert_eq!(s.onion, server.onion());
    // A bad bundle is refused with a clear error, and nothing is stored.
    assert!(alice
        .profile
        .add_server("server:bm90IGEgYnVuZGxl")
        .await
        .is_err());
    assert_eq!(alice.profile.servers().await.unwrap().len(), 1);

    let g = alice
        .profile
        .create_group("the group", server.onion().as_str())
        .await
        .unwrap();
    assert!(g.invite.starts_with("tofubundle:server:"), "{}", g.invite);
    let ag = g.conversation_id.0;

    befriend(&mut alice, &mut bob).await;
    befriend(&mut alice, &mut carol).await;
    let (a, b, c) = (alice.onion(), bob.onion(), carol.onion());
    alice
        .profile
        .invite_to_group(g.conversation_id, common::onion(&b))
        .await
        .unwrap();
    alice
        .profile
        .invite_to_group(g.conversation_id, common::onion(&c))
        .await
        .unwrap();
    let bg = accept_invite(&mut bob, &a).await;
    let cg = accept_invite(&mut carol, &a).await;
    // Both joined the same group.
    for (p, id) in [(&bob, bg), (&carol, cg)] {
        let info = p.profile.group(cwtch::ConversationId(id)).await.unwrap();
        assert_eq!(info.group_id, g.group_id);
        assert_eq!(info.name, "the group");
        assert!(info.accepted);
    }
    // Posting needs a synced connection and tokens; everyone posts, everyone reads.
    alice
        .profile
        .send_group_text(g.conversation_id, "hello from alice")
        .await
        .unwrap();
    bob.profile
        .send_group_text(cwtch::ConversationId(bg), "hello from bob")
        .await
        .unwrap();
    carol
        .profile
        .send_group_text(cwtch::ConversationId(cg), "hello from carol")
        .await
        .unwrap();
    for (p, others) in [
        (
            &mut alice,
            [(&b, "hello from bob"), (&c, "hello from carol")],
        ),
        (
            &mut bob,
            [(&a, "hello from alice"), (&c, "hello from carol")],
        ),
        (
            &mut carol,
            [(&a, "hello from alice"), (&b, "hello from bob")],
        ),
    ] {
        for (author, text) in others {
            p.expect(text, is_group_message(author, text)).await;
        }
        // Our own post came back from the server: seen.
        p.expect("own post seen", |e| {
            matches!(e, Event::GroupMessageSeen { .. })
        })
        .await;
    }
    let expected: BTreeSet<(String, String)> = [
        (a.clone(), "hello from alice".to_owned()),
        (b.clone(), "hello from bob".to_owned()),
        (c.clone(), "hello from carol".to_owned()),
    ]
    .into();
    for (p, id) in [(&alice, ag), (&bob, bg), (&carol, cg)] {
        let got = texts(p, id).await;
        assert_eq!(got.len(), 3, "no duplicates: {got:?}");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
        let info = p.profile.group(cwtch::ConversationId(id)).await.unwrap();
        assert_eq!(info.members.len(), 2, "two other members seen");
        assert_eq!(info.unread, 2, "the two others' messages are unread");
        p.profile
            .mark_group_read(cwtch::ConversationId(id))
            .await
            .unwrap();
        let info = p.profile.group(cwtch::ConversationId(id)).await.unwrap();
        assert_eq!(info.unread, 0);
    }
    // Sent messages are acknowledged once seen.
    let mine = alice
        .profile
        .group_messages(g.conversation_id, 0, 10)
        .await
        .unwrap();
    let own = mine.iter().find(|m| m.outgoing).unwrap();
    assert_eq!(own.state, cwtch::MessageState::Acknowledged);

    // Bob blocks Carol's messages in the group: hers are dropped, Alice's still arrive.
    bob.profile
        .set_group_member_blocked(cwtch::ConversationId(bg), &c, true)
        .await
        .unwrap();
    let info = bob.profile.group(cwtch::ConversationId(bg)).await.unwrap();
    assert_eq!(info.blocked_members, vec![c.clone()]);
    carol
        .profile
        .send_group_text(cwtch::ConversationId(cg), "carol, blocked")
        .await
        .unwrap();
    // Once Alice has it, the server has it, before what Alice posts next.
    alice
        .expect("carol's post", is_group_message(&c, "carol, blocked"))
        .await;
    alice
        .profile
        .send_group_text(g.conversation_id, "alice, after")
        .await
        .unwrap();
    bob.expect("alice's post", is_group_message(&a, "alice, after"))
        .await;
    let got = texts(&bob, bg).await;
    assert!(got.contains(&(a.clone(), "alice, after".to_owned())));
    assert!(
        !got.iter().any(|(_, t)| t == "carol, blocked"),
        "a blocked member's message is dropped: {got:?}"
    );
    bob.profile
        .set_group_member_blocked(cwtch::ConversationId(bg), &c, false)
        .await
        .unwrap();
    let info = bob.profile.group(cwtch::ConversationId(bg)).await.unwrap();
    assert!(info.blocked_members.is_empty());

    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_member_catches_up_on_restart_without_duplicates() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("g", server.onion().as_str())
        .await
        .unwrap();
    // Join from the pasted invite (the server is imported from it).
    let bg = bob.profile.join_group(&g.invite).await.unwrap();
    assert_eq!(bg.group_id, g.group_id);
    let a = alice.onion();
    alice
        .profile
        .send_group_text(g.conversation_id, "first")
        .await
        .unwrap();
    bob.expect("first", is_group_message(&a, "first")).await;

    // Bob goes offline; Alice posts; Bob comes back and catches up.
    let home = bob.home.clone();
    bob.shutdown().await;
    for i in 0..5 {
        alice
            .profile
            .send_group_text(g.conversation_id, &format!("while away {i}"))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        alice
            .expect("sent", |e| matches!(e, Event::GroupMessageSent { .. }))
            .await;
    }
    let mut bob = reopen(&w, &home, fast_config()).await;
    for i in 0..5 {
        let t = format!("while away {i}");
        bob.expect(&t, is_group_message(&a, &t)).await;
    }
    bob.expect("synced", |e| {
        matches!(
            e,
            Event::ServerStateChanged {
                state: cwtch::ServerState::Synced,
                ..
            }
        )
    })
    .await;
    let got = texts(&bob, bg.conversation_id.0).await;
    assert_eq!(got.len(), 6, "{got:?}");
    // Restart again: the replay resumes from the saved position and stores nothing twice.
    bob.shutdown().await;
    let mut bob = reopen(&w, &home, fast_config()).await;
    bob.expect("synced again", |e| {
        matches!(
            e,
            Event::ServerStateChanged {
                state: cwtch::ServerState::Synced,
                ..
            }
        )
    })
    .await;
    bob.expect_none(Duration::from_millis(500), "a repeated message", |e| {
        matches!(e, Event::GroupMessage { .. })
    })
    .await;
    assert_eq!(texts(&bob, bg.conversation_id.0).await.len(), 6);
    bob.shutdown().await;
    alice.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_and_garbage_posts_are_dropped() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("g", server.onion().as_str())
        .await
        .unwrap();
    bob.profile.join_group(&g.invite).await.unwrap();
    let a = alice.onion();
    alice
        .profile
        .send_group_text(g.conversation_id, "genuine")
        .await
        .unwrap();
    bob.expect("genuine", is_group_message(&a, "genuine")).await;

    // A hostile poster with tokens of its own: garbage, a genuine ciphertext under another
    // signature (a forgery of the author), and the genuine message again (a replay).
    let kb = KeyBundle::parse_server_string(&server.bundle()).unwrap();
    let mut client = ServerClient::new(&kb, w.acn()).unwrap();
    client.timeout = Duration::from_secs(30);
    let tokens = client.fetch_tokens(5).await.unwrap();
    let mut board = client.connect().await.unwrap();
    let stored = board.replay(None).await.unwrap();
    let genuine = stored.last().unwrap().clone();
    let garbage = EncryptedGroupMessage {
        ciphertext: Some(vec![7; 3000]),
        signature: Some(vec![1; 64]),
    };
    let mut forged = genuine.clone();
    let mut sig = forged.signature.clone().unwrap();
    sig[0] ^= 1;
    forged.signature = Some(sig);
    assert!(board.post(&tokens[0], &garbage).await.unwrap());
    assert!(board.post(&tokens[1], &forged).await.unwrap());
    alice
        .profile
        .send_group_text(g.conversation_id, "after the attack")
        .await
        .unwrap();
    bob.expect("after", is_group_message(&a, "after the attack"))
        .await;
    let got = texts(
        &bob,
        bob.profile.groups().await.unwrap()[0].conversation_id.0,
    )
    .await;
    assert_eq!(
        got.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["genuine", "after the attack"]
    );
    bob.shutdown().await;
    alice.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_and_groups_survive_a_restart_and_leave_removes() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let alice = peer(&w, "alice", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("kept", server.onion().as_str())
        .await
        .unwrap();
    // Importing a known server again (directly, or inside an invite) returns it (this once
    // deadlocked on the profile's state lock).
    let again = tokio::time::timeout(WAIT, alice.profile.add_server(&server.bundle()))
        .await
        .expect("importing a known server returns")
        .unwrap();
    assert_eq!(again.onion, server.onion());
    let other = peer(&w, "other", fast_config()).await;
    other.profile.add_server(&server.bundle()).await.unwrap();
    let joined = tokio::time::timeout(WAIT, other.profile.join_group(&g.invite))
        .await
        .expect("joining on a known server returns")
        .unwrap();
    assert_eq!(joined.group_id, g.group_id);
    assert_eq!(other.profile.servers().await.unwrap().len(), 1);
    other.shutdown().await;
    // A known server cannot be removed while a group uses it; an unknown group is an error.
    assert!(matches!(
        alice.profile.remove_server(server.onion().as_str()).await,
        Err(cwtch::Error::ServerInUse { groups: 1 })
    ));
    assert!(matches!(
        alice
            .profile
            .group("nope".parse::<GroupRef>().unwrap())
            .await,
        Err(cwtch::Error::GroupNotFound)
    ));
    let home = alice.home.clone();
    alice.shutdown().await;
    let alice = reopen(&w, &home, fast_config()).await;
    // Contacts do not include servers or groups.
    assert!(alice.profile.contacts().await.unwrap().is_empty());
    let groups = alice.profile.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group_id, g.group_id);
    assert_eq!(groups[0].name, "kept");
    let by_name = alice
        .profile
        .group("kept".parse::<GroupRef>().unwrap())
        .await
        .unwrap();
    assert_eq!(by_name.conversation_id, g.conversation_id);
    alice.profile.leave_group(g.conversation_id).await.unwrap();
    assert!(alice.profile.groups().await.unwrap().is_empty());
    alice
        .profile
        .remove_server(server.onion().as_str())
        .await
        .unwrap();
    assert!(alice.profile.servers().await.unwrap().is_empty());
    alice.shutdown().await;
    server.shutdown().await;
}

/// The file key of the file message `author` posted in a group, once `p` has it.
async fn group_file_offer(p: &mut Peer, author: &str) -> String {
    p.expect(
        "the file offer in the group",
        |e| matches!(e, Event::GroupMessage { author: a, overlay: Some(200), .. } if a == author),
    )
    .await;
    let id = p.profile.groups().await.unwrap()[0].conversation_id;
    let msgs = p.profile.group_messages(id, 0, 100).await.unwrap();
    let offers: Vec<_> = msgs
        .iter()
        .filter_map(|m| match &m.content {
            cwtch::Content::FileShare { file_key, .. } if m.author == author => {
                Some(file_key.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 1, "{msgs:?}");
    offers[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_shared_in_a_group_is_downloaded_from_its_sharer() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let mut carol = peer(&w, "carol", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("files", server.onion().as_str())
        .await
        .unwrap();
    // Bob is Alice's contact and is invited over P2P; Carol joins from the pasted invite
    // and knows Alice only as a member of the group.
    befriend(&mut alice, &mut bob).await;
    let (a, b) = (alice.onion(), bob.onion());
    alice
        .profile
        .invite_to_group(g.conversation_id, common::onion(&b))
        .await
        .unwrap();
    let bg = cwtch::ConversationId(accept_invite(&mut bob, &a).await);
    carol.profile.add_server(&server.bundle()).await.unwrap();
    let cg = carol.profile.join_group(&g.invite).await.unwrap();
    carol
        .profile
        .accept_group(cg.conversation_id)
        .await
        .unwrap();

    let src = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = src.path().join("notes.bin");
    std::fs::write(&path, &data).unwrap();
    let (key, _) = alice
        .profile
        .share_file_in_group(g.conversation_id, &path)
        .await
        .unwrap();
    assert_eq!(group_file_offer(&mut bob, &a).await, key);
    assert_eq!(group_file_offer(&mut carol, &a).await, key);

    // Bob has refused Alice files (her contact's permissions): nothing starts.
    let dest = tempfile::tempdir().unwrap();
    let no_files = cwtch::Permissions {
        share_files: Some(false),
        render_images: None,
    };
    bob.profile
        .set_permissions(onion(&a), no_files)
        .await
        .unwrap();
    let refused = bob.profile.download_group_file(bg, &key, dest.path()).await;
    assert!(
        matches!(&refused, Err(cwtch::Error::NotPermitted { contact, .. }) if contact.as_str() == a),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    bob.profile
        .set_permissions(onion(&a), cwtch::Permissions::default())
        .await
        .unwrap();

    // Bob downloads it from Alice, over their P2P connection.
    let target = bob
        .profile
        .download_group_file(bg, &key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, conversation_id, .. } if *file_key == key && *conversation_id == bg.0),
    )
    .await;
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let files = bob.profile.group_files(bg).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].ours, files[0].state.as_str()),
        (false, "downloaded")
    );

    // Carol is not Alice's contact: she is told to add her first, and nothing starts.
    let dest = tempfile::tempdir().unwrap();
    let refused = carol
        .profile
        .download_group_file(cg.conversation_id, &key, dest.path())
        .await;
    assert!(
        matches!(&refused, Err(cwtch::Error::SharerNotContact(o)) if o.as_str() == a),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    // Once she adds Alice, she downloads it, though Alice has not accepted her.
    carol.profile.add_contact(&a).await.unwrap();
    let target = carol
        .profile
        .download_group_file(cg.conversation_id, &key, dest.path())
        .await
        .unwrap();
    carol
        .expect(
            "downloaded",
            |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
        )
        .await;
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let c = carol.onion();
    let stranger = alice.profile.contact(common::onion(&c)).await.unwrap();
    assert!(
        !stranger.accepted,
        "Alice served a member she never accepted"
    );

    // A file Alice shared with Bob alone was never offered in the group: Carol cannot ask.
    let private = src.path().join("private.bin");
    std::fs::write(&private, b"for bob only").unwrap();
    let (pkey, _) = alice
        .profile
        .share_file(common::onion(&b), &private)
        .await
        .unwrap();
    assert!(matches!(
        carol
            .profile
            .download_group_file(cg.conversation_id, &pkey, dest.path())
            .await,
        Err(cwtch::Error::FileNotFound)
    ));

    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
    server.shutdown().await;
}

/// A small PNG, `w`×`h`.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn is_image_event(e: &Event) -> bool {
    matches!(
        e,
        Event::ImagePreview { .. }
            | Event::FileDownloadProgress { .. }
            | Event::FileDownloaded { .. }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_a_contact_offers_in_a_group_are_previewed() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let mut carol = peer(&w, "carol", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("pictures", server.onion().as_str())
        .await
        .unwrap();
    // Bob is Alice's accepted contact; Carol is only a member of the group.
    befriend(&mut alice, &mut bob).await;
    let (a, b) = (alice.onion(), bob.onion());
    alice
        .profile
        .invite_to_group(g.conversation_id, common::onion(&b))
        .await
        .unwrap();
    let bg = cwtch::ConversationId(accept_invite(&mut bob, &a).await);
    carol.profile.add_server(&server.bundle()).await.unwrap();
    let cg = carol.profile.join_group(&g.invite).await.unwrap();
    carol
        .profile
        .accept_group(cg.conversation_id)
        .await
        .unwrap();
    carol.profile.set_image_previews(true).await.unwrap();

    // Offered while Bob's previews are off: nothing is fetched.
    let src = tempfile::tempdir().unwrap();
    let early = png(12, 10);
    let early_path = src.path().join("early.png");
    std::fs::write(&early_path, &early).unwrap();
    let (early_key, _) = alice
        .profile
        .share_file_in_group(g.conversation_id, &early_path)
        .await
        .unwrap();
    assert_eq!(group_file_offer(&mut bob, &a).await, early_key);
    bob.expect_none(
        Duration::from_millis(800),
        "an image download",
        is_image_event,
    )
    .await;

    // Blocked in the group, Alice's earlier image is not previewed when previews go on.
    bob.profile
        .set_group_member_blocked(bg, &a, true)
        .await
        .unwrap();
    bob.profile.set_image_previews(true).await.unwrap();
    bob.expect_none(
        Duration::from_millis(800),
        "an image download",
        is_image_event,
    )
    .await;
    bob.profile.set_image_previews(false).await.unwrap();
    bob.profile
        .set_group_member_blocked(bg, &a, false)
        .await
        .unwrap();

    // Turned on, the earlier image is previewed, from Alice over P2P, in the group.
    bob.profile.set_image_previews(true).await.unwrap();
    let e = bob
        .expect(
            "the earlier image's preview",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == early_key),
        )
        .await;
    let Event::ImagePreview {
        conversation_id,
        contact,
        width,
        path,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(
        (conversation_id, contact.as_str(), width),
        (bg.0, a.as_str(), 12)
    );
    assert_eq!(std::fs::read(&path).unwrap(), early);
    let shown = bob.profile.image(bg, &early_key).await.unwrap().unwrap();
    assert_eq!((shown.info.width, shown.info.height), (12, 10));
    let files = bob.profile.group_files(bg).await.unwrap();
    assert_eq!(files[0].state, "downloaded");

    // Offered with previews on: previewed as it arrives.
    let late = png(20, 5);
    let late_path = src.path().join("late.png");
    std::fs::write(&late_path, &late).unwrap();
    let (late_key, _) = alice
        .profile
        .share_file_in_group(g.conversation_id, &late_path)
        .await
        .unwrap();
    let e = bob
        .expect(
            "the new image's preview",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == late_key),
        )
        .await;
    let Event::ImagePreview { path, .. } = e else {
        unreachable!()
    };
    assert_eq!(std::fs::read(&path).unwrap(), late);

    // Carol has previews on but Alice is no contact of hers: nothing is fetched (fetching
    // would connect to Alice and tell her who Carol is).
    carol
        .expect(
            "the second offer",
            |e| matches!(e, Event::GroupMessage { overlay: Some(200), text: Some(t), .. } if t == "late.png"),
        )
        .await;
    carol
        .expect_none(
            Duration::from_millis(800),
            "an image download",
            is_image_event,
        )
        .await;
    assert!(carol
        .profile
        .image(cg.conversation_id, &late_key)
        .await
        .unwrap()
        .is_none());

    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
    server.shutdown().await;
}
