//! Image previews and profile pictures between profiles over the loopback network: nothing
//! is fetched while previews are off; with them on, a contact's profile picture and the images
//! it offers arrive decoded and described; garbage, decompression bombs and images over
//! 20 MiB are refused with a reason and never reported as images; a contact we did not accept
//! gets nothing fetched.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use cwtch::images::PROFILE_IMAGE_ATTRIBUTE;
use cwtch::{Config, Event};

fn config() -> Config {
    let mut c = fast_config();
    c.download_stall = Duration::from_millis(300);
    c
}

/// How long we watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(800);

/// A `w`×`h` PNG.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 9) as u8, (y * 3) as u8, (x + y) as u8, 255])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A JPEG, `w`×`h`.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A tiny, valid-looking PNG declaring `w`×`h` pixels (a decompression bomb's header).
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut p = png(4, 4);
    p[16..20].copy_from_slice(&w.to_be_bytes());
    p[20..24].copy_from_slice(&h.to_be_bytes());
    let mut c = !0u32;
    for &b in &p[12..29] {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    p[29..33].copy_from_slice(&(!c).to_be_bytes());
    p
}

/// Bytes behind a PNG signature that are no PNG.
fn garbage_png() -> Vec<u8> {
    let mut g = b"\x89PNG\r\n\x1a\n".to_vec();
    g.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    g
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn is_image_event(e: &Event) -> bool {
    matches!(
        e,
        Event::ImagePreview { .. }
            | Event::FileDownloadProgress { .. }
            | Event::FileDownloaded { .. }
    )
}

/// `a` adds `b`; `b` sees the request (returns its conversation id with `a`), not accepted.
async fn request(a: &mut Peer, b: &mut Peer) -> cwtch::ConversationId {
    let a_onion = a.onion();
    a.profile.add_contact(&b.onion()).await.unwrap();
    let req = b
        .expect("contact request", |e| {
            matches!(e, Event::ContactCreated { contact, request: true, .. } if *contact == a_onion)
        })
        .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    cwtch::ConversationId(conversation_id)
}

/// Wait until `p` stores `a`'s profile picture key `key`.
async fn expect_profile_key(p: &mut Peer, a: &str, key: &str) {
    p.expect("the profile image key", |e| {
        matches!(e, Event::AttributeUpdated { contact, key: k, value, .. }
            if contact == a && k == PROFILE_IMAGE_ATTRIBUTE && value == key)
    })
    .await;
}

/// Wait for the failure of the download of `key`; returns the reason.
async fn expect_failed(p: &mut Peer, key: &str) -> String {
    let e = p
        .expect(
            "the download to fail",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = e else {
        unreachable!()
    };
    reason
}

/// The names of the files in `p`'s images folder.
fn images_in(p: &Peer) -> Vec<String> {
    let profiles = p.home.join("profiles");
    let mut out = Vec::new();
    for d in std::fs::read_dir(profiles).unwrap() {
        let dir = d.unwrap().path().join(cwtch::IMAGES_DIR);
        if let Ok(rd) = std::fs::read_dir(dir) {
            out.extend(rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profile_pictures_arrive_only_with_previews_on() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    let src = tempfile::tempdir().unwrap();

    // Our own picture is checked before it is shared.
    assert!(!alice.profile.image_previews());
    let garbage = write(src.path(), "garbage.png", &garbage_png());
    assert!(matches!(
        alice.profile.set_profile_image(&garbage).await,
        Err(cwtch::Error::InvalidImage(_))
    ));
    let bomb = write(src.path(), "bomb.png", &png_declaring(100_000, 100_000));
    assert!(matches!(
        alice.profile.set_profile_image(&bomb).await,
        Err(cwtch::Error::InvalidImage(cwtch::ImageError::TooManyPixels))
    ));
    let huge = src.path().join("huge.png");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(20 * 1024 * 1024 + 1)
        .unwrap();
    assert!(matches!(
        alice.profile.set_profile_image(&huge).await,
        Err(cwtch::Error::FileTooLarge { .. })
    ));
    // A first picture, then the one that counts: the first is no longer served.
    let first = write(src.path(), "first.png", &png(8, 8));
    let (first_key, _) = alice.profile.set_profile_image(&first).await.unwrap();
    let pic = png(40, 30);
    let pic_path = write(src.path(), "me.png", &pic);
    let (key, info) = alice.profile.set_profile_image(&pic_path).await.unwrap();
    assert_ne!(key, first_key);
    assert_eq!(
        (info.format.as_str(), info.width, info.height),
        ("png", 40, 30)
    );
    assert_eq!(
        alice
            .profile
            .attribute(PROFILE_IMAGE_ATTRIBUTE)
            .await
            .unwrap(),
        Some(key.clone())
    );

    // Previews off (the default): bob learns the key, and fetches nothing.
    befriend(&mut alice, &mut bob).await;
    let a = alice.onion();
    expect_profile_key(&mut bob, &a, &key).await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    assert!(images_in(&bob).is_empty());
    assert_eq!(bob.profile.profile_image(onion(&a)).await.unwrap(), None);

    // Alice restarts: her picture is still shared (restored from her profile).
    bob.events.clear();
    let alice_home = alice.home.clone();
    alice.shutdown().await;
    let alice = reopen(&w, &alice_home, config()).await;
    bob.expect("alice back", |e| {
        matches!(e, Event::PeerStateChanged { contact, state: cwtch::ConnectionState::Authenticated, .. } if *contact == a)
    })
    .await;

    // Previews on: the picture published already is fetched, decoded and described.
    bob.profile.set_image_previews(true).await.unwrap();
    assert!(bob.profile.image_previews());
    let e = bob
        .expect(
            "the profile image",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::ImagePreview {
        contact,
        profile_image,
        format,
        width,
        height,
        bytes,
        path,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(contact, a);
    assert!(profile_image);
    assert_eq!((format.as_str(), width, height), ("png", 40, 30));
    assert_eq!(bytes, pic.len() as u64);
    assert!(Path::new(&path).starts_with(&bob.home));
    assert_eq!(std::fs::read(&path).unwrap(), pic);
    let got = bob.profile.profile_image(onion(&a)).await.unwrap().unwrap();
    assert_eq!(got.file_key, key);
    assert_eq!(got.path, path);
    assert_eq!(got.info, info);
    assert_eq!(bob.profile.image(onion(&a), &key).await.unwrap(), Some(got));

    // A new picture replaces it: fetched, and the old one deleted from bob's images folder.
    let new_pic = png(20, 10);
    let new_path = write(src.path(), "new.png", &new_pic);
    let (new_key, _) = alice.profile.set_profile_image(&new_path).await.unwrap();
    bob.profile.accept(onion(&a)).await.unwrap();
    let e = bob
        .expect(
            "the new profile image",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == new_key),
        )
        .await;
    let Event::ImagePreview { path: newer, .. } = e else {
        unreachable!()
    };
    assert_eq!(std::fs::read(&newer).unwrap(), new_pic);
    assert!(
        !Path::new(&path).exists(),
        "the replaced picture is still on disk"
    );
    assert_eq!(bob.profile.image(onion(&a), &key).await.unwrap(), None);
    let got = bob.profile.profile_image(onion(&a)).await.unwrap().unwrap();
    assert_eq!(got.file_key, new_key);
    assert_eq!(images_in(&bob).len(), 1, "{:?}", images_in(&bob));

    // Alice removes her picture: no longer served, published as none, and Bob deletes his
    // copy when he next asks.
    assert!(alice.profile.remove_profile_image().await.unwrap());
    assert!(!alice.profile.remove_profile_image().await.unwrap());
    assert_eq!(
        alice
            .profile
            .attribute(PROFILE_IMAGE_ATTRIBUTE)
            .await
            .unwrap(),
        Some(String::new())
    );
    bob.profile.accept(onion(&a)).await.unwrap();
    expect_profile_key(&mut bob, &a, "").await;
    for _ in 0..200 {
        if !Path::new(&newer).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !Path::new(&newer).exists(),
        "the removed picture is still on disk"
    );
    assert_eq!(bob.profile.profile_image(onion(&a)).await.unwrap(), None);
    assert!(images_in(&bob).is_empty(), "{:?}", images_in(&bob));

    // The old picture is not served: asked for it, alice sends nothing (the download stalls).
    alice
        .profile
        .set_attribute(PROFILE_IMAGE_ATTRIBUTE, &first_key)
        .await
        .unwrap();
    // (bob asks again when he accepts again)
    bob.profile.accept(onion(&a)).await.unwrap();
    expect_profile_key(&mut bob, &a, &first_key).await;
    let reason = expect_failed(&mut bob, &first_key).await;
    assert!(reason.contains("does not answer for this file"), "{reason}");
    assert_eq!(
        bob.profile.profile_image(onion(&a)).await.unwrap(),
        None,
        "the failed picture is not shown"
    );

    // The setting is kept in the profile.
    let bob_home = bob.home.clone();
    bob.shutdown().await;
    let bob = reopen(&w, &bob_home, config()).await;
    assert!(bob.profile.image_previews());
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_profile_pictures_are_refused_with_a_reason() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (alice.onion(), bob.onion());

    // Alice (hostile) publishes as her picture the key of a file that is no image: she
    // shares it with bob and sets the attribute by hand. (The name is not an image's, so
    // this is about the profile picture only.)
    let conv = request(&mut alice, &mut bob).await;
    let garbage = write(src.path(), "garbage.bin", &garbage_png());
    let (garbage_key, _) = alice.profile.share_file(onion(&b), &garbage).await.unwrap();
    alice
        .profile
        .set_attribute(PROFILE_IMAGE_ATTRIBUTE, &garbage_key)
        .await
        .unwrap();
    bob.profile.accept(conv).await.unwrap();
    expect_profile_key(&mut bob, &a, &garbage_key).await;
    let reason = expect_failed(&mut bob, &garbage_key).await;
    assert!(reason.starts_with("not a valid image"), "{reason}");
    assert_eq!(bob.profile.profile_image(onion(&a)).await.unwrap(), None);
    assert!(images_in(&bob).is_empty(), "{:?}", images_in(&bob));

    // A decompression bomb: a tiny PNG declaring 100000×100000 pixels.
    let bomb = write(src.path(), "bomb.bin", &png_declaring(100_000, 100_000));
    let (bomb_key, _) = alice.profile.share_file(onion(&b), &bomb).await.unwrap();
    alice
        .profile
        .set_attribute(PROFILE_IMAGE_ATTRIBUTE, &bomb_key)
        .await
        .unwrap();
    bob.profile.accept(conv).await.unwrap(); // asks for the attributes again
    expect_profile_key(&mut bob, &a, &bomb_key).await;
    let reason = expect_failed(&mut bob, &bomb_key).await;
    assert!(reason.contains("too large to decode"), "{reason}");
    assert!(images_in(&bob).is_empty(), "{:?}", images_in(&bob));

    // Over 20 MiB: refused once the manifest tells the size, nothing written.
    let big = write(
        src.path(),
        "big.bin",
        &vec![7u8; 20 * 1024 * 1024 + 4096 + 1],
    );
    let (big_key, _) = alice.profile.share_file(onion(&b), &big).await.unwrap();
    alice
        .profile
        .set_attribute(PROFILE_IMAGE_ATTRIBUTE, &big_key)
        .await
        .unwrap();
    bob.profile.accept(conv).await.unwrap();
    expect_profile_key(&mut bob, &a, &big_key).await;
    let reason = expect_failed(&mut bob, &big_key).await;
    assert!(reason.contains("more than the limit"), "{reason}");

    // None was ever reported as an image, and none is tried again.
    bob.expect_none(Duration::ZERO, "an image preview", |e| {
        matches!(e, Event::ImagePreview { .. })
    })
    .await;
    bob.events.clear();
    bob.profile.accept(conv).await.unwrap();
    bob.expect_none(QUIET, "an image", |e| {
        matches!(
            e,
            Event::ImagePreview { .. } | Event::FileDownloadProgress { .. }
        )
    })
    .await;
    let states: Vec<String> = bob
        .profile
        .files(Some(onion(&a).into()))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.state)
        .collect();
    assert_eq!(states.len(), 3);
    assert!(
        states.iter().all(|s| s.starts_with("refused: ")),
        "{states:?}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offered_images_are_previewed() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let b = bob.onion();

    // Not an image's name: not fetched. An image over 20 MiB by its offer: not fetched.
    // (Files are handled in the order offered: once the last preview arrives, these were
    // passed over.)
    let notes = write(src.path(), "notes.txt", b"hello");
    let (notes_key, _) = alice.profile.share_file(onion(&b), &notes).await.unwrap();
    let big = src.path().join("huge.png");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(20 * 1024 * 1024 + 1)
        .unwrap();
    let (big_key, _) = alice.profile.share_file(onion(&b), &big).await.unwrap();
    // A "PNG" that is garbage: fetched, refused.
    let fake = write(src.path(), "fake.png", &garbage_png());
    let (fake_key, _) = alice.profile.share_file(onion(&b), &fake).await.unwrap();
    let reason = expect_failed(&mut bob, &fake_key).await;
    assert!(reason.starts_with("not a valid image"), "{reason}");
    // A JPEG named .png: previewed as what it is.
    let cat = jpeg(64, 48);
    let cat_path = write(src.path(), "cat.png", &cat);
    let (cat_key, _) = alice
        .profile
        .share_file(onion(&b), &cat_path)
        .await
        .unwrap();
    let e = bob
        .expect(
            "the preview",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == cat_key),
        )
        .await;
    let Event::ImagePreview {
        profile_image,
        format,
        width,
        height,
        path,
        ..
    } = e
    else {
        unreachable!()
    };
    assert!(!profile_image);
    assert_eq!((format.as_str(), width, height), ("jpeg", 64, 48));
    assert_eq!(Path::new(&path).file_name().unwrap(), "cat.png");
    assert_eq!(std::fs::read(&path).unwrap(), cat);

    let a = alice.onion();
    let files = bob.profile.files(Some(onion(&a).into())).await.unwrap();
    let state = |k: &str| {
        files
            .iter()
            .find(|f| f.file_key == k)
            .map(|f| f.state.clone())
            .unwrap()
    };
    assert_eq!(state(&notes_key), "offered");
    assert_eq!(state(&big_key), "offered");
    assert!(state(&fake_key).starts_with("refused: not a valid image"));
    assert_eq!(state(&cat_key), "downloaded");
    assert!(bob
        .profile
        .image(onion(&a), &fake_key)
        .await
        .unwrap()
        .is_none());
    let shown = bob
        .profile
        .image(onion(&a), &cat_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown.info.format, "jpeg");
    // The user can still download an offered file themselves.
    let dest = tempfile::tempdir().unwrap();
    bob.profile
        .download_file(onion(&a), &notes_key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "notes downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == notes_key),
    )
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_offered_while_previews_were_off_are_previewed_once_turned_on() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let (a, b) = (alice.onion(), bob.onion());
    let src = tempfile::tempdir().unwrap();

    // Offered while Bob's previews are off: an image, and a file that is not one.
    let early = png(24, 16);
    let early_path = write(src.path(), "early.png", &early);
    let (early_key, _) = alice
        .profile
        .share_file(onion(&b), &early_path)
        .await
        .unwrap();
    let notes = write(src.path(), "notes.txt", b"not an image");
    let (notes_key, _) = alice.profile.share_file(onion(&b), &notes).await.unwrap();
    bob.expect("the offer", |e| {
        matches!(e, Event::NewMessage { overlay: Some(200), text: Some(t), .. } if t == "notes.txt")
    })
    .await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    assert!(images_in(&bob).is_empty());

    // Turned on: the image offered earlier is fetched, checked and described; the other
    // file is left alone.
    bob.profile.set_image_previews(true).await.unwrap();
    let e = bob
        .expect(
            "the earlier image's preview",
            |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == early_key),
        )
        .await;
    let Event::ImagePreview {
        width,
        height,
        path,
        conversation_id,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((width, height), (24, 16));
    assert_eq!(std::fs::read(&path).unwrap(), early);
    let conv = bob
        .profile
        .contact(onion(&a))
        .await
        .unwrap()
        .conversation_id;
    assert_eq!(conversation_id, conv.0);
    let files = bob.profile.files(Some(onion(&a).into())).await.unwrap();
    let state = |k: &str| {
        files
            .iter()
            .find(|f| f.file_key == k)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(state(&early_key), "downloaded");
    assert_eq!(state(&notes_key), "offered");
    assert_eq!(images_in(&bob), vec!["early.png".to_owned()]);

    // Turning previews off and on again fetches nothing twice.
    bob.events.clear();
    bob.profile.set_image_previews(false).await.unwrap();
    bob.profile.set_image_previews(true).await.unwrap();
    bob.expect_none(QUIET, "a second download", is_image_event)
        .await;
    assert_eq!(images_in(&bob), vec!["early.png".to_owned()]);
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_fetched_from_a_contact_not_accepted() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (alice.onion(), bob.onion());
    let (key, _) = alice
        .profile
        .set_profile_image(&write(src.path(), "me.png", &png(16, 16)))
        .await
        .unwrap();

    // A stranger (a request bob has not accepted) offers an image: kept as a message, not
    // fetched; and bob does not ask a stranger for its attributes.
    let conv = request(&mut alice, &mut bob).await;
    let cat = write(src.path(), "cat.png", &png(10, 10));
    let (cat_key, _) = alice.profile.share_file(onion(&b), &cat).await.unwrap();
    bob.expect(
        "the offer",
        |e| matches!(e, Event::NewMessage { contact, overlay: Some(200), .. } if *contact == a),
    )
    .await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    assert!(images_in(&bob).is_empty());
    assert_eq!(bob.profile.profile_image(conv).await.unwrap(), None);

    // Accepted: now the picture is fetched (offers made before are not previewed).
    bob.profile.accept(conv).await.unwrap();
    expect_profile_key(&mut bob, &a, &key).await;
    bob.expect(
        "the profile image",
        |e| matches!(e, Event::ImagePreview { file_key, profile_image: true, .. } if *file_key == key),
    )
    .await;
    let files = bob.profile.files(Some(conv.into())).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file_key, cat_key);
    assert_eq!(files[0].state, "offered");

    // Previews off again: a new picture is not fetched.
    bob.events.clear();
    bob.profile.set_image_previews(false).await.unwrap();
    let (key2, _) = alice
        .profile
        .set_profile_image(&write(src.path(), "me2.png", &png(12, 12)))
        .await
        .unwrap();
    bob.profile.accept(conv).await.unwrap();
    expect_profile_key(&mut bob, &a, &key2).await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    let shown = bob.profile.profile_image(conv).await.unwrap();
    assert_eq!(shown, None, "the new picture is not fetched yet");
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contact_permissions_refuse_previews_and_downloads() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (a, b) = (alice.onion(), bob.onion());
    let contact = bob.profile.contact(onion(&a)).await.unwrap();
    assert_eq!(contact.permissions, cwtch::Permissions::default());
    assert!(contact.permissions.renders_images() && contact.permissions.shares_files());

    // Images refused: an offered image is kept as a message, not fetched; the user may
    // still download it by hand.
    let no_images = cwtch::Permissions {
        share_files: None,
        render_images: Some(false),
    };
    bob.profile
        .set_permissions(onion(&a), no_images)
        .await
        .unwrap();
    assert_eq!(
        bob.profile.contact(onion(&a)).await.unwrap().permissions,
        no_images
    );
    let cat = write(src.path(), "cat.png", &png(10, 10));
    let (cat_key, _) = alice.profile.share_file(onion(&b), &cat).await.unwrap();
    bob.expect(
        "the offer",
        |e| matches!(e, Event::NewMessage { contact, overlay: Some(200), .. } if *contact == a),
    )
    .await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    assert!(images_in(&bob).is_empty());
    bob.profile
        .download_file(onion(&a), &cat_key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "cat downloaded by hand",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == cat_key),
    )
    .await;
    assert!(
        images_in(&bob).is_empty(),
        "downloaded by hand, not as a preview"
    );

    // Files refused: no preview even with images allowed, and no download by hand.
    let no_files = cwtch::Permissions {
        share_files: Some(false),
        render_images: Some(true),
    };
    bob.profile
        .set_permissions(onion(&a), no_files)
        .await
        .unwrap();
    bob.events.clear();
    let dog = write(src.path(), "dog.png", &png(12, 12));
    let (dog_key, _) = alice.profile.share_file(onion(&b), &dog).await.unwrap();
    bob.expect(
        "the second offer",
        |e| matches!(e, Event::NewMessage { contact, overlay: Some(200), .. } if *contact == a),
    )
    .await;
    bob.expect_none(QUIET, "an image download", is_image_event)
        .await;
    let refused = bob
        .profile
        .download_file(onion(&a), &dog_key, dest.path())
        .await;
    assert!(
        matches!(refused, Err(cwtch::Error::NotPermitted { .. })),
        "{refused:?}"
    );
    assert!(!dest.path().join("dog.png").exists());

    // Back to the defaults: the next image is previewed.
    bob.profile
        .set_permissions(onion(&a), cwtch::Permissions::default())
        .await
        .unwrap();
    let owl = write(src.path(), "owl.png", &png(14, 14));
    let (owl_key, _) = alice.profile.share_file(onion(&b), &owl).await.unwrap();
    bob.expect(
        "the owl's preview",
        |e| matches!(e, Event::ImagePreview { file_key, .. } if *file_key == owl_key),
    )
    .await;

    // Permissions are stored with the contact: they survive a restart.
    bob.profile
        .set_permissions(onion(&a), no_files)
        .await
        .unwrap();
    let home = bob.home.clone();
    bob.shutdown().await;
    let bob = reopen(&w, &home, config()).await;
    assert_eq!(
        bob.profile.contact(onion(&a)).await.unwrap().permissions,
        no_files
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Five images shared in a row: automatic downloads run two at a time from one contact, and
/// those left waiting start as the first ones end, so every one is previewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_shared_in_a_row_are_all_previewed() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let b = bob.onion();
    let mut keys = Vec::new();
    for i in 0..5u32 {
        let path = write(src.path(), &format!("photo {i}.png"), &png(20 + i, 10));
        let (key, _) = alice.profile.share_file(onion(&b), &path).await.unwrap();
        keys.push(key);
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < keys.len() {
        let e = bob
            .expect("a preview", |e| matches!(e, Event::ImagePreview { .. }))
            .await;
        let Event::ImagePreview {
            file_key, width, ..
        } = e
        else {
            unreachable!()
        };
        let i = keys.iter().position(|k| *k == file_key).unwrap();
        assert_eq!(width, 20 + i as u32);
        seen.insert(file_key);
    }
    let a = alice.onion();
    let files = bob.profile.files(Some(onion(&a).into())).await.unwrap();
    for k in &keys {
        let f = files.iter().find(|f| f.file_key == *k).unwrap();
        assert_eq!(f.state, "downloaded", "{f:?}");
    }
    alice.shutdown().await;
    bob.shutdown().await;
}
