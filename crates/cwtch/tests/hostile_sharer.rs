//! Downloads from a hostile sharer (a hand-rolled peer on the loopback network): wrong chunks,
//! oversized chunks, a manifest that lies, an endless stream and a hostile file name cost only
//! that download, which fails with a reason; nothing appears under the final name and nothing
//! is written outside the download folder.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use cwtch::wire::{PeerMessage, CONTEXT_RAW};
use cwtch::{Event, Identity};
use cwtch_model::files::{FileKey, FileMessage, FileShare, Manifest, ManifestBuilder};
use cwtch_model::gojson::GoJson;
use tapir::ApplicationChain;
use tapir_service::{Service, ServiceConfig};

const VERSION_V1: &[u8] = br#"{"ID":"im.cwtch.version","Context":"im.cwtch.getVal","Data":"Ag=="}"#;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn manifest_of(data: &[u8], name: &str) -> Manifest {
    let mut b = ManifestBuilder::new();
    b.update(data).unwrap();
    b.finish(name)
}

/// How the sharer answers a request: the messages it sends back.
type Behaviour = Box<dyn Fn(&FileMessage) -> Vec<FileMessage> + Send + Sync>;

/// Mallory (a raw peer with the identity of `seed`), added by Bob as a contact, connects to
/// him and speaks the peer protocol's version 1.
async fn mallory_connects(
    w: &World,
    bob: &Peer,
    seed: u8,
) -> (cwtch::Onion, Service, tapir_service::Connection) {
    let id = Arc::new(Identity::from_seed(&[seed; 32]));
    let mallory = id.onion();
    let service = Service::new(id, w.acn(), ServiceConfig::default());
    bob.profile.add_contact(mallory.as_str()).await.unwrap();
    let conn = service
        .connect(&onion(&bob.onion()), ApplicationChain::authenticated())
        .await
        .unwrap();
    conn.send(VERSION_V1.to_vec()).await.unwrap();
    (mallory, service, conn)
}

/// A file offer (overlay 200) of `key` as `name`, as a chat message with the id `id`.
fn offer_message(id: &str, key: &FileKey, name: &str, size: u64) -> Vec<u8> {
    let offer = FileShare::for_key(name, key, size).to_go_json();
    let body = format!(
        r#"{{"o":200,"d":{}}}"#,
        serde_json::to_string(&String::from_utf8(offer).unwrap()).unwrap()
    );
    PeerMessage::new(id, CONTEXT_RAW, body.into_bytes()).encode_v1()
}

/// Send Bob the offer of `key` as `name` on `conn`, and wait until he has it.
async fn offer_and_wait(
    conn: &tapir_service::Connection,
    bob: &mut Peer,
    id: &str,
    key: &FileKey,
    name: &str,
    size: u64,
) {
    conn.send(offer_message(id, key, name, size)).await.unwrap();
    bob.expect("the offer", |e| {
        matches!(
            e,
            Event::NewMessage {
                overlay: Some(200),
                ..
            }
        )
    })
    .await;
}

/// Mallory (a raw peer, a contact of Bob's) offers a file (`offered` manifest, name `name`)
/// and answers Bob's requests with `behaviour`. Returns the file key.
async fn mallory_offers(
    w: &World,
    bob: &mut Peer,
    manifest: Manifest,
    name: &str,
    behaviour: impl Fn(&FileKey, &Manifest, &FileMessage) -> Vec<FileMessage> + Send + Sync + 'static,
) -> (FileKey, Service) {
    mallory_offers_and_drips(w, bob, manifest, name, behaviour, None).await
}

/// What Mallory sends every so often, unasked: the `n`th message (none: nothing this time).
type Drip = (
    Duration,
    Box<dyn Fn(&FileKey, &Manifest, u64) -> Option<FileMessage> + Send + Sync>,
);

/// [`mallory_offers`], and Mallory also sends what `drip` gives, every so often.
async fn mallory_offers_and_drips(
    w: &World,
    bob: &mut Peer,
    manifest: Manifest,
    name: &str,
    behaviour: impl Fn(&FileKey, &Manifest, &FileMessage) -> Vec<FileMessage> + Send + Sync + 'static,
    drip: Option<Drip>,
) -> (FileKey, Service) {
    let (_, service, mut conn) = mallory_connects(w, bob, 0x66).await;
    let key = FileKey {
        root_hash: manifest.root_hash,
        nonce: [3; 24],
    };
    offer_and_wait(&conn, bob, "offer-1", &key, name, manifest.file_size).await;
    let manifest = Arc::new(manifest);
    let m2 = manifest.clone();
    let behaviour: Behaviour = Box::new(move |m| behaviour(&key, &m2, m));
    let (every, drip) = match drip {
        Some((every, f)) => (every, Some(f)),
        None => (Duration::from_secs(3600), None),
    };
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        let mut n = 0;
        loop {
            let p = tokio::select! {
                p = conn.recv() => p,
                _ = timer.tick() => {
                    let next = drip.as_ref().and_then(|f| f(&key, &manifest, n));
                    n += 1;
                    if let Some(m) = next {
                        if conn.send(m.to_peer_message().encode_v1()).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            };
            let Some(p) = p else { return };
            let Ok((m, _)) = PeerMessage::decode(&p) else {
                continue;
            };
            let Ok(f) = FileMessage::parse(&m) else {
                continue;
            };
            for answer in behaviour(&f) {
                if conn
                    .send(answer.to_peer_message().encode_v1())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (key, service)
}

/// The honest answer to `m` for a file of `data` described by `manifest`.
fn honest(key: &FileKey, manifest: &Manifest, data: &[u8], m: &FileMessage) -> Vec<FileMessage> {
    match m {
        FileMessage::RequestManifest { .. } => {
            let json = manifest.to_go_json();
            cwtch_model::files::manifest_parts(&json)
                .into_iter()
                .enumerate()
                .map(|(i, p)| FileMessage::ManifestPart {
                    key: *key,
                    index: i as u64,
                    data: p.to_vec(),
                })
                .collect()
        }
        FileMessage::RequestChunks { spec, .. } => {
            let spec = cwtch_model::files::ChunkSpec::parse(spec, manifest.chunk_count()).unwrap();
            spec.indices()
                .map(|i| {
                    let (s, l) = manifest.chunk_range(i).unwrap();
                    FileMessage::Chunk {
                        key: *key,
                        index: i,
                        data: data[s as usize..s as usize + l].to_vec(),
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

async fn download_fails(bob: &mut Peer, key: &FileKey, dest: &std::path::Path) -> String {
    let mallory = bob.profile.contacts().await.unwrap()[0].onion.clone();
    bob.profile
        .download_file(&mallory, &key.to_string(), dest)
        .await
        .unwrap();
    let k = key.to_string();
    let failed = bob
        .expect("the download fails", |e| {
            matches!(e, Event::FileDownloadFailed { file_key, .. } | Event::FileDownloaded { file_key, .. } if *file_key == k)
        })
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        panic!("a hostile sharer's file was accepted: {failed:?}")
    };
    // Nothing under a final name: only the partial file, if anything.
    for e in std::fs::read_dir(dest).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".part"), "{name}");
    }
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_and_oversized_chunks_fail_the_download_after_three_tries() {
    for oversized in [false, true] {
        let w = World::new();
        let mut bob = peer(&w, "bob", fast_config()).await;
        let data = content(30_000, 1);
        let m = manifest_of(&data, "f.bin");
        let (key, _svc) = mallory_offers(&w, &mut bob, m, "f.bin", move |k, m, req| {
            honest(k, m, &data, req)
                .into_iter()
                .map(|a| match a {
                    FileMessage::Chunk {
                        key,
                        index: 2,
                        mut data,
                    } => {
                        if oversized {
                            data.extend_from_slice(&[0; 100]);
                        } else {
                            data[7] ^= 1;
                        }
                        FileMessage::Chunk {
                            key,
                            index: 2,
                            data,
                        }
                    }
                    a => a,
                })
                .collect()
        })
        .await;
        let dest = tempfile::tempdir().unwrap();
        let reason = download_fails(&mut bob, &key, dest.path()).await;
        assert!(reason.contains("chunk 2 arrived wrong 3 times"), "{reason}");
        bob.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_that_lies_fails_at_the_end() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let real = content(20_000, 1);
    let other = content(20_000, 2);
    // The chunk hashes are of `other`; the root hash (the key) is `real`'s.
    let lie = Manifest {
        root_hash: manifest_of(&real, "f").root_hash,
        ..manifest_of(&other, "f")
    };
    let (key, _svc) = mallory_offers(&w, &mut bob, lie, "f.bin", move |k, m, req| {
        honest(k, m, &other, req)
    })
    .await;
    let dest = tempfile::tempdir().unwrap();
    let reason = download_fails(&mut bob, &key, dest.path()).await;
    assert!(reason.contains("manifest lies"), "{reason}");
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endless_stream_fails_the_download() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let data = content(20_000, 1);
    let m = manifest_of(&data, "f.bin");
    let (key, _svc) = mallory_offers(&w, &mut bob, m, "f.bin", move |k, m, req| {
        let mut out = honest(k, m, &data, req);
        if matches!(req, FileMessage::RequestChunks { .. }) {
            // Chunk 0 again and again: nobody asked for it twice.
            let first = out[0].clone();
            out = vec![first; 5000];
        }
        out
    })
    .await;
    let dest = tempfile::tempdir().unwrap();
    let reason = download_fails(&mut bob, &key, dest.path()).await;
    assert!(reason.contains("not asked for"), "{reason}");
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_name_is_only_a_suggestion() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let data = content(10_000, 1);
    let name = "../../.bashrc\u{202e}txt.exe";
    let m = manifest_of(&data, name);
    let d2 = data.clone();
    let (key, _svc) = mallory_offers(&w, &mut bob, m, name, move |k, m, req| {
        honest(k, m, &d2, req)
    })
    .await;
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("downloads");
    let mallory = bob.profile.contacts().await.unwrap()[0].onion.clone();
    let target = bob
        .profile
        .download_file(&mallory, &key.to_string(), &dest)
        .await
        .unwrap();
    assert_eq!(target, dest.join("bashrctxt.exe"));
    let k = key.to_string();
    bob.expect(
        "downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == k),
    )
    .await;
    assert_eq!(std::fs::read(&target).unwrap(), data);
    // Nothing outside the download folder.
    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("downloads")]);
    bob.shutdown().await;
}

/// A contact offering many images at once (previews on) gets a few downloads, not one each:
/// every automatic download holds a file, a thread and, at its end, an image decode. The rest
/// stay offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_image_offers_starts_only_a_few_downloads() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let (mallory, service, mut conn) = mallory_connects(&w, &bob, 0x67).await;
    const OFFERS: u8 = 12;
    for i in 0..OFFERS {
        let key = FileKey {
            root_hash: [i; 64],
            nonce: [i; 24],
        };
        let (id, name) = (format!("offer-{i}"), format!("cat {i}.png"));
        conn.send(offer_message(&id, &key, &name, 1000))
            .await
            .unwrap();
    }
    // A text after them: once it has arrived, every offer before it has been handled.
    conn.send(
        PeerMessage::new(
            "text",
            CONTEXT_RAW,
            br#"{"o":1,"d":"that is all"}"#.to_vec(),
        )
        .encode_v1(),
    )
    .await
    .unwrap();
    // Mallory never answers a request.
    tokio::spawn(async move { while conn.recv().await.is_some() {} });
    bob.expect(
        "the text after the offers",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "that is all"),
    )
    .await;
    let files = bob
        .profile
        .files(Some(cwtch::ContactId::Onion(mallory.clone())))
        .await
        .unwrap();
    let offered = files.iter().filter(|f| !f.ours).count();
    let downloading = files.iter().filter(|f| f.state == "downloading").count();
    assert_eq!(offered, OFFERS as usize, "{files:?}");
    assert_eq!(downloading, 2, "{files:?}");
    drop(service);
    bob.shutdown().await;
}

/// Messages that answer nothing (here, a manifest part far out of range, ten times a second)
/// do not put off the download's silence timer: it asks again, then fails (the file is not
/// shared), long before the flood limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_that_answer_nothing_do_not_keep_a_download_waiting() {
    let w = World::new();
    let mut config = fast_config();
    config.download_stall = Duration::from_millis(300);
    let mut bob = peer(&w, "bob", config).await;
    let data = content(30_000, 4);
    let m = manifest_of(&data, "f.bin");
    let junk: Drip = (
        Duration::from_millis(100),
        Box::new(|key, _, _| {
            Some(FileMessage::ManifestPart {
                key: *key,
                index: u64::MAX,
                data: b"junk".to_vec(),
            })
        }),
    );
    let (key, _svc) =
        mallory_offers_and_drips(&w, &mut bob, m, "f.bin", |_, _, _| Vec::new(), Some(junk)).await;
    let dest = tempfile::tempdir().unwrap();
    let reason = download_fails(&mut bob, &key, dest.path()).await;
    assert!(reason.contains("does not answer for this file"), "{reason}");
    bob.shutdown().await;
}

/// An automatic image download has a deadline: a sharer that sends its manifest a part at a
/// time, each just before the silence timer would fire, does not hold a preview for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickling_image_download_fails_at_its_deadline() {
    let w = World::new();
    let mut config = fast_config();
    config.download_stall = Duration::from_millis(400);
    config.image_download_deadline = Duration::from_secs(2);
    let mut bob = peer(&w, "bob", config).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let data = content(10 << 20, 5);
    let m = manifest_of(&data, "cat.png");
    let parts = cwtch_model::files::manifest_parts(&m.to_go_json()).len();
    assert!(
        parts > 12,
        "a manifest of {parts} parts trickles for longer than the deadline"
    );
    let trickle: Drip = (
        Duration::from_millis(200),
        Box::new(|key, manifest, n| {
            let json = manifest.to_go_json();
            let part = cwtch_model::files::manifest_parts(&json)
                .get(n as usize)?
                .to_vec();
            Some(FileMessage::ManifestPart {
                key: *key,
                index: n,
                data: part,
            })
        }),
    );
    let (key, _svc) = mallory_offers_and_drips(
        &w,
        &mut bob,
        m,
        "cat.png",
        |_, _, _| Vec::new(),
        Some(trickle),
    )
    .await;
    let k = key.to_string();
    let failed = bob
        .expect(
            "the preview fails",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == k),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert!(reason.contains("did not arrive within 2 s"), "{reason}");
    bob.shutdown().await;
}

/// When the automatic downloads are at their bound, an image offered by another contact
/// waits, and starts when a place is free (here, when the others' downloads stall), not only
/// when a download in its own conversation ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_left_waiting_starts_when_any_automatic_download_ends() {
    let w = World::new();
    let mut config = fast_config();
    config.download_stall = Duration::from_millis(300);
    let mut bob = peer(&w, "bob", config).await;
    bob.profile.set_image_previews(true).await.unwrap();
    let mut held = Vec::new();
    // Four contacts offer two images each: the eight automatic downloads. None answers.
    for c in 0..5u8 {
        let (_, service, conn) = mallory_connects(&w, &bob, 0x70 + c).await;
        let offers = if c < 4 { 2 } else { 1 };
        for i in 0..offers {
            let key = FileKey {
                root_hash: [c * 2 + i; 64],
                nonce: [c; 24],
            };
            let (id, name) = (format!("offer-{i}"), format!("cat {i}.png"));
            offer_and_wait(&conn, &mut bob, &id, &key, &name, 1000).await;
        }
        held.push((service, conn));
        if c == 3 {
            // The eight are running before the fifth contact offers its image.
            let mut tries = 0;
            while downloading(&bob).await < 8 {
                tries += 1;
                assert!(tries < 200, "the eight downloads never started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert_eq!(
        downloading(&bob).await,
        8,
        "the fifth contact's image waits"
    );
    let last = FileKey {
        root_hash: [8; 64],
        nonce: [4; 24],
    }
    .to_string();
    // The fifth contact's image was left waiting; it starts once the others stall, and,
    // never answered either, fails in turn.
    let failed = bob
        .expect(
            "the fifth contact's image downloaded (and failed)",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == last),
        )
        .await;
    assert!(matches!(failed, Event::FileDownloadFailed { .. }));
    bob.shutdown().await;
}

/// How many of Bob's downloads are running.
async fn downloading(bob: &Peer) -> usize {
    let files = bob.profile.files(None).await.unwrap();
    files.iter().filter(|f| f.state == "downloading").count()
}
