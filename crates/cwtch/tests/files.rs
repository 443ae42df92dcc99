//! File sharing between two profiles over the loopback network: a shared file arrives
//! bit-identical, a download interrupted by a restart resumes from what is on disk, and a
//! download from a sharer that stopped sharing fails with a reason.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use cwtch::{Config, Content, Event};

fn config() -> Config {
    let mut c = fast_config();
    c.download_stall = Duration::from_millis(300);
    c
}

/// A file of `len` bytes that are not all alike (so a misplaced chunk shows).
fn write_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut x: u32 = 0x1234_5678;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Alice shared a file with Bob, then went away (and, there, Bob saw her go).
struct SharerAway {
    w: World,
    bob: Peer,
    alice_home: PathBuf,
    a: cwtch::Onion,
    key: String,
    path: PathBuf,
    _src: tempfile::TempDir,
}

/// Alice (profiles with `config`) shares a file of `len` bytes named `name` with Bob, then
/// shuts down; returns once Bob has seen her go.
async fn sharer_away(config: Config, name: &str, len: usize) -> SharerAway {
    let w = World::new();
    let mut alice = peer(&w, "alice", config.clone()).await;
    let mut bob = peer(&w, "bob", config).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), name, len);
    let key = share(&mut alice, &mut bob, &path).await;
    let alice_home = alice.home.clone();
    let a = onion(&alice.onion());
    alice.shutdown().await;
    bob.expect("Alice gone", |e| {
        matches!(
            e,
            Event::PeerStateChanged {
                state: cwtch::ConnectionState::Disconnected,
                ..
            }
        )
    })
    .await;
    SharerAway {
        w,
        bob,
        alice_home,
        a,
        key,
        path,
        _src: src,
    }
}

/// Alice shares `path` with Bob; returns the file key Bob saw in the offer.
async fn share(alice: &mut Peer, bob: &mut Peer, path: &Path) -> String {
    let b = bob.onion();
    let (key, _) = alice.profile.share_file(onion(&b), path).await.unwrap();
    let a = alice.onion();
    let offer = bob
        .expect(
            "the file offer",
            |e| matches!(e, Event::NewMessage { contact, overlay: Some(200), .. } if *contact == a),
        )
        .await;
    let Event::NewMessage { body, .. } = offer else {
        unreachable!()
    };
    let Content::FileShare {
        file_key,
        name,
        size,
    } = Content::parse(&body)
    else {
        panic!("not a file share: {body}")
    };
    assert_eq!(file_key, key);
    assert_eq!(name, path.file_name().unwrap().to_string_lossy());
    assert_eq!(size, std::fs::metadata(path).unwrap().len());
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_file_arrives_bit_identical() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "photo.bin", 3 * 1024 * 1024 + 123);
    let key = share(&mut alice, &mut bob, &path).await;

    let dest = tempfile::tempdir().unwrap();
    let a = alice.onion();
    let target = bob
        .profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    assert_eq!(target, dest.path().join("photo.bin"));
    // A second download of the same file while the first runs is refused.
    assert!(matches!(
        bob.profile
            .download_file(onion(&a), &key, dest.path())
            .await,
        Err(cwtch::Error::DownloadRunning)
    ));
    // The manifest first: who serves it, its size, where it goes.
    let manifest = bob
        .expect(
            "the manifest",
            |e| matches!(e, Event::FileManifestReceived { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileManifestReceived {
        contact,
        path: going_to,
        size,
        ..
    } = manifest
    else {
        unreachable!()
    };
    assert_eq!(
        (contact.as_str(), PathBuf::from(going_to), size),
        (a.as_str(), target.clone(), 3 * 1024 * 1024 + 123)
    );
    let done = bob
        .expect(
            "downloaded",
            |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloaded { path: got, .. } = done else {
        unreachable!()
    };
    assert_eq!(PathBuf::from(&got), target);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    // Nothing else is left in the folder (no partial file).
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 1);
    // Readable by us only, whatever the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    let files = bob.profile.files(None).await.unwrap();
    assert_eq!(files.len(), 1);
    assert!(!files[0].ours && files[0].state == "downloaded");
    let mine = alice.profile.files(None).await.unwrap();
    assert!(mine[0].ours && mine[0].state == "sharing");

    // Asked for again while it is there, whole: the same file, reported downloaded again
    // (nothing fetched, no second copy).
    let same = bob
        .profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    assert_eq!(same, target);
    bob.expect(
        "reported downloaded again",
        |e| matches!(e, Event::FileDownloaded { path, .. } if Path::new(path) == target),
    )
    .await;
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 1);

    // Changed since (not the file that was offered any more): downloaded again under a
    // numbered name, never an overwrite.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&target)
        .unwrap()
        .write_all(b"my own notes")
        .unwrap();
    let again = bob
        .profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    assert_eq!(again, dest.path().join("photo (1).bin"));
    bob.expect(
        "downloaded again",
        |e| matches!(e, Event::FileDownloaded { path, .. } if Path::new(path) == again),
    )
    .await;
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&path).unwrap()
    );

    // An unknown key, or a key offered by nobody, is refused.
    let other = format!("{}.{}", "ab".repeat(64), "cd".repeat(24));
    assert!(matches!(
        bob.profile
            .download_file(onion(&a), &other, dest.path())
            .await,
        Err(cwtch::Error::FileNotFound)
    ));
    assert!(bob
        .profile
        .download_file(onion(&a), "nope", dest.path())
        .await
        .is_err());
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_download_resumes_after_a_restart() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "big.bin", 24 * 1024 * 1024);
    let key = share(&mut alice, &mut bob, &path).await;
    let dest = tempfile::tempdir().unwrap();
    let a = alice.onion();
    let target = bob
        .profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    let before = bob
        .expect("some progress", |e| {
            matches!(e, Event::FileDownloadProgress { done, total, .. } if *done > 0 && done < total)
        })
        .await;
    let Event::FileDownloadProgress { done: before, .. } = before else {
        unreachable!()
    };
    // Bob stops mid-download; the partial file stays, under its partial name only.
    let home = bob.home.clone();
    bob.shutdown().await;
    assert!(!target.exists());
    assert!(dest.path().join("big.bin.part").exists());

    // Back: the download resumes by itself, counting what is on disk as done.
    let mut bob = reopen(&w, &home, config()).await;
    let first = bob
        .expect(
            "progress after the restart",
            |e| matches!(e, Event::FileDownloadProgress { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadProgress { done: resumed, .. } = first else {
        unreachable!()
    };
    assert!(resumed >= before, "resumed at {resumed}, had {before}");
    // Until it is done, each progress event restarts the wait: a loaded machine is slow, a
    // stuck download makes no progress.
    loop {
        let e = bob
            .expect("progress or the end of the download", |e| {
                matches!(e, Event::FileDownloaded { file_key, .. }
                    | Event::FileDownloadProgress { file_key, .. } if *file_key == key)
            })
            .await;
        if matches!(e, Event::FileDownloaded { .. }) {
            break;
        }
    }
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_no_longer_shared_fails_with_a_reason() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "gone.txt", 10_000);
    let key = share(&mut alice, &mut bob, &path).await;
    alice.profile.stop_sharing(&key).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let a = alice.onion();
    bob.profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    let failed = bob
        .expect(
            "failed",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert!(reason.contains("does not answer for this file"), "{reason}");
    assert!(!dest.path().join("gone.txt").exists());
    let files = bob.profile.files(None).await.unwrap();
    assert!(files[0].state.starts_with("failed"), "{:?}", files[0]);

    // Shared again: the download goes through.
    alice.profile.restart_sharing(&key).await.unwrap();
    let target = bob
        .profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
    )
    .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_changed_after_sharing_is_not_served() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "draft.txt", 50_000);
    let key = share(&mut alice, &mut bob, &path).await;
    // Rewritten after sharing: same length, other bytes, a later modification time.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, vec![b'x'; 50_000]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let a = alice.onion();
    bob.profile
        .download_file(onion(&a), &key, dest.path())
        .await
        .unwrap();
    let failed = bob
        .expect(
            "failed",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert!(reason.contains("changed it"), "{reason}");
    assert!(!dest.path().join("draft.txt").exists());
    // Alice is told: the share stopped, and says why; restarting it is refused.
    let files = alice.profile.files(None).await.unwrap();
    assert!(
        files[0]
            .state
            .starts_with("stopped: the file changed on disk"),
        "{:?}",
        files[0]
    );
    assert!(matches!(
        alice.profile.restart_sharing(&key).await,
        Err(cwtch::Error::SharedFileChanged)
    ));
    // So it stays after a restart.
    let alice_home = alice.home.clone();
    alice.shutdown().await;
    let alice = reopen(&w, &alice_home, config()).await;
    let files = alice.profile.files(None).await.unwrap();
    assert!(
        files[0].state.starts_with("stopped: the file"),
        "{:?}",
        files[0]
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A small tmpfs of `size` for the full-disk test, unmounted on drop. `None` if this process
/// may not mount one (not root): the caller says so loudly.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_or_fails_the_download_cleanly_and_it_resumes() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "big.bin", 3 * 1024 * 1024);
    let key = share(&mut alice, &mut bob, &path).await;
    let a = alice.onion();

    let at = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&at.path().join("disk"), "4m") else {
        // Root is needed to mount a small disk; CI runs as root.
        eprintln!("!!! NOT TESTED: a full disk (cannot mount a tmpfs: not root?) !!!");
        return;
    };
    let dest = disk.0.clone();
    // Too little room to begin with: refused before anything is created.
    std::fs::write(dest.join("filler"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    let r = bob.profile.download_file(onion(&a), &key, &dest).await;
    assert!(
        matches!(r, Err(cwtch::Error::NotEnoughSpace { needed, available }) if needed == 3 * 1024 * 1024 && available < needed),
        "{r:?}"
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);

    // Room at the start, none midway: the download fails with the reason, keeps what it
    // verified and never shows the final name.
    std::fs::remove_file(dest.join("filler")).unwrap();
    let target = bob
        .profile
        .download_file(onion(&a), &key, &dest)
        .await
        .unwrap();
    std::fs::write(dest.join("filler"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    let failed = bob
        .expect(
            "failed",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert!(reason.contains("No space left"), "{reason}");
    assert!(!target.exists());
    let part = dest.join("big.bin.part");
    assert!(part.exists());

    // Room again: the same download resumes into the same partial file, and completes.
    std::fs::remove_file(dest.join("filler")).unwrap();
    let again = bob
        .profile
        .download_file(onion(&a), &key, &dest)
        .await
        .unwrap();
    assert_eq!(again, target);
    bob.expect(
        "downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
    )
    .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    assert!(!part.exists());
    alice.shutdown().await;
    bob.shutdown().await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_asked_for_while_the_sharer_is_away_starts_when_it_connects() {
    // The stall timer at its default (30 s): only the new connection can start it sooner.
    let SharerAway {
        w,
        mut bob,
        alice_home,
        a,
        key,
        path,
        _src,
    } = sharer_away(fast_config(), "later.bin", 500_000).await;
    // Asked for while she is away: the request goes nowhere.
    let dest = tempfile::tempdir().unwrap();
    let target = bob
        .profile
        .download_file(a, &key, dest.path())
        .await
        .unwrap();
    let alice = reopen(&w, &alice_home, fast_config()).await;
    bob.events
        .expect_within(
            Duration::from_secs(20),
            "downloaded once Alice is back (before the 30 s timer)",
            |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
        )
        .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A sharer that is away is waited for, however long: only silence on a connection counts
/// towards a stall (here the stall timer is 300 ms and she is away for ten times as long).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_waits_for_a_sharer_who_is_away_without_failing() {
    let SharerAway {
        w,
        mut bob,
        alice_home,
        a,
        key,
        path,
        _src,
    } = sharer_away(config(), "patient.bin", 200_000).await;
    let dest = tempfile::tempdir().unwrap();
    let target = bob
        .profile
        .download_file(a, &key, dest.path())
        .await
        .unwrap();
    bob.expect_none(Duration::from_secs(3), "a failure while she is away", |e| {
        matches!(e, Event::FileDownloadFailed { .. })
    })
    .await;
    let alice = reopen(&w, &alice_home, config()).await;
    bob.expect(
        "downloaded once Alice is back",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
    )
    .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A download from a sharer who is away ends when the sharer is blocked or deleted: it would
/// never come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_from_a_blocked_sharer_fails_with_a_reason() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "never.bin", 20_000);
    let key = share(&mut alice, &mut bob, &path).await;
    let a = onion(&alice.onion());
    alice.shutdown().await;
    let dest = tempfile::tempdir().unwrap();
    bob.profile
        .download_file(a.clone(), &key, dest.path())
        .await
        .unwrap();
    bob.profile.block(a).await.unwrap();
    let failed = bob
        .expect(
            "failed",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert_eq!(reason, "the sharer is blocked");
    bob.shutdown().await;
}

/// The user stops a download: it ends with the reason, does not resume by itself (not even
/// when the sharer is back, nor after a restart), and downloading it again resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_download_stays_stopped_until_asked_for_again() {
    let SharerAway {
        w,
        mut bob,
        alice_home,
        a,
        key,
        path,
        _src,
    } = sharer_away(config(), "later.bin", 100_000).await;
    let dest = tempfile::tempdir().unwrap();
    let target = bob
        .profile
        .download_file(a.clone(), &key, dest.path())
        .await
        .unwrap();
    bob.profile.stop_download(&key).await.unwrap();
    let failed = bob
        .expect(
            "stopped",
            |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
        )
        .await;
    let Event::FileDownloadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert_eq!(reason, cwtch::DOWNLOAD_STOPPED);
    assert!(matches!(
        bob.profile.stop_download(&key).await,
        Err(cwtch::Error::NotDownloading)
    ));
    // Not resumed: when Alice is back, nor after Bob restarts.
    let bob_home = bob.home.clone();
    bob.shutdown().await;
    let mut bob = reopen(&w, &bob_home, config()).await;
    let alice = reopen(&w, &alice_home, config()).await;
    bob.expect("Alice back", |e| {
        matches!(
            e,
            Event::PeerStateChanged {
                state: cwtch::ConnectionState::Authenticated,
                ..
            }
        )
    })
    .await;
    bob.expect_none(Duration::from_secs(1), "a download resumed", |e| {
        matches!(
            e,
            Event::FileDownloaded { .. } | Event::FileDownloadProgress { .. }
        )
    })
    .await;
    let files = bob.profile.files(None).await.unwrap();
    assert!(files[0].state.contains("stopped"), "{:?}", files[0]);
    // Asked for again: it goes through, into the same file.
    let again = bob
        .profile
        .download_file(a, &key, dest.path())
        .await
        .unwrap();
    assert_eq!(again, target);
    bob.expect(
        "downloaded",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
    )
    .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&path).unwrap()
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Sharing something that is not a regular file is refused at once: a FIFO with no writer
/// does not hang the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let shared = tokio::time::timeout(
        Duration::from_secs(10),
        alice.profile.share_file(onion(&bob.onion()), &fifo),
    )
    .await
    .expect("refused at once, not blocked on the FIFO");
    assert!(
        matches!(shared, Err(cwtch::Error::Invalid { .. })),
        "{shared:?}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A shared file that is missing for a while (an unmounted disk, moved away and back) is
/// unavailable, not changed: its share is not stopped, and it is served once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_shared_file_is_unavailable_not_changed() {
    let w = World::new();
    let mut alice = peer(&w, "alice", config()).await;
    let mut bob = peer(&w, "bob", config()).await;
    befriend(&mut alice, &mut bob).await;
    let src = tempfile::tempdir().unwrap();
    let path = write_file(src.path(), "away.bin", 30_000);
    let key = share(&mut alice, &mut bob, &path).await;
    let aside = src.path().join("aside");
    std::fs::rename(&path, &aside).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let a = onion(&alice.onion());
    bob.profile
        .download_file(a.clone(), &key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "failed while the file is away",
        |e| matches!(e, Event::FileDownloadFailed { file_key, .. } if *file_key == key),
    )
    .await;
    let files = alice.profile.files(None).await.unwrap();
    assert_eq!(files[0].state, "sharing", "{:?}", files[0]);
    std::fs::rename(&aside, &path).unwrap();
    bob.profile
        .download_file(a, &key, dest.path())
        .await
        .unwrap();
    bob.expect(
        "downloaded once it is back",
        |e| matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key),
    )
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}
