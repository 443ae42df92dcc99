//! `cwtch file …` between real processes over the loopback network: a 100 MiB file arrives
//! bit-identical although the downloader is SIGKILLed midway (it resumes from what is on disk,
//! fetching only the rest) and the sharer restarts (sharing resumes); a download without a
//! running `cwtch run` shows progress as JSON lines and prints the path; stop and restart.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const BIG: Duration = Duration::from_secs(600);

struct World {
    tmp: tempfile::TempDir,
    net: PathBuf,
    a_dir: PathBuf,
    b_dir: PathBuf,
    alice: String,
    bob: String,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let net = tmp.path().join("net");
        let a_dir = tmp.path().join("a");
        let b_dir = tmp.path().join("b");
        let alice = acreate(&a_dir, "alice").await;
        let bob = acreate(&b_dir, "bob").await;
        World {
            tmp,
            net,
            a_dir,
            b_dir,
            alice,
            bob,
        }
    }

    fn net(&self) -> &str {
        self.net.to_str().unwrap()
    }

    /// Alice adds Bob; Bob accepts.
    async fn befriend(&self, b: &mut Daemon) {
        ok(&acwtch(&self.a_dir, &["contact", "add", &self.bob]).await);
        b.wait_for(STEP, |e| {
            e["event"] == "ContactCreated" && e["contact"] == self.alice.as_str()
        })
        .await;
        ok(&acwtch(&self.b_dir, &["contact", "accept", &self.alice]).await);
    }

    /// Alice shares `path` with Bob (through her daemon); Bob's daemon sees the offer.
    async fn share(&self, b: &mut Daemon, path: &Path) -> String {
        let o = acwtch(
            &self.a_dir,
            &["file", "share", &self.bob, path.to_str().unwrap()],
        )
        .await;
        let key = last_line(&o);
        assert_eq!(key.len(), 128 + 1 + 48, "{}", ok(&o));
        let offer = b
            .wait_for(STEP, |e| e["event"] == "NewMessage" && e["overlay"] == 200)
            .await;
        assert!(
            offer["body"].as_str().unwrap().contains(&key[..128]),
            "{offer}"
        );
        key
    }
}

fn write_file(path: &Path, len: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = fa.read(&mut ba).unwrap();
        let mut nb = 0;
        while nb < na {
            let n = fb.read(&mut bb[nb..na]).unwrap();
            if n == 0 {
                return false;
            }
            nb += n;
        }
        if na == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        if ba[..na] != bb[..na] {
            return false;
        }
    }
}

fn progress(e: &Value, key: &str) -> Option<(u64, u64)> {
    (e["event"] == "FileDownloadProgress" && e["file_key"] == key)
        .then(|| (e["done"].as_u64().unwrap(), e["total"].as_u64().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_100_mib_file_arrives_despite_a_sigkilled_downloader_and_a_restarted_sharer() {
    let w = World::new().await;
    let a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("big.bin");
    write_file(&src, 100 * 1024 * 1024);
    let key = w.share(&mut b, &src).await;

    let dest = w.tmp.path().join("downloads");
    let o = acwtch(
        &w.b_dir,
        &[
            "--json",
            "file",
            "download",
            &w.alice,
            &key,
            "--to",
            dest.to_str().unwrap(),
        ],
    )
    .await;
    let started = json(&o);
    assert_eq!(started["state"], "downloading", "{started}");
    let target = PathBuf::from(started["path"].as_str().unwrap());
    assert_eq!(target, dest.join("big.bin"));

    // Some way in, the downloader is killed: no clean-up at all.
    let (done_before, total) = {
        let k = key.clone();
        let e = b
            .wait_for(BIG, move |e| {
                progress(e, &k).is_some_and(|(d, t)| d >= 8 << 20 && d < t)
            })
            .await;
        progress(&e, &key).unwrap()
    };
    assert_eq!(total, 100 * 1024 * 1024);
    b.kill9().await;
    assert!(
        !target.exists(),
        "the final name appears only when complete"
    );
    assert!(dest.join("big.bin.part").exists());

    // The sharer restarts too: sharing survives it.
    a.stop().await;
    let _a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;

    // Bob's next run resumes by itself, counting the verified part on disk as done.
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    let k = key.clone();
    let first = b.wait_for(STEP, move |e| progress(e, &k).is_some()).await;
    let (resumed, _) = progress(&first, &key).unwrap();
    assert!(
        resumed >= done_before,
        "resumed at {resumed} bytes, had {done_before} before the kill"
    );
    let k = key.clone();
    let done = b
        .wait_for(BIG, move |e| {
            (e["event"] == "FileDownloaded" || e["event"] == "FileDownloadFailed")
                && e["file_key"] == k.as_str()
        })
        .await;
    assert_eq!(done["event"], "FileDownloaded", "{done}");
    assert_eq!(PathBuf::from(done["path"].as_str().unwrap()), target);
    assert!(same_file(&src, &target), "the file arrived altered");
    assert!(!dest.join("big.bin.part").exists());

    let o = acwtch(&w.b_dir, &["--json", "file", "list"]).await;
    let files = json(&o);
    assert_eq!(files[0]["state"], "downloaded", "{files}");
    assert_eq!(files[0]["ours"], false, "{files}");
}

/// `--wait` with a `cwtch run` doing the download: the command follows it to the end
/// (progress as JSON lines, then where the file is), instead of answering at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_through_a_daemon_waits_with_wait() {
    let w = World::new().await;
    let _a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("minutes.txt");
    write_file(&src, 2 * 1024 * 1024 + 5);
    let key = w.share(&mut b, &src).await;
    let dest = w.tmp.path().join("dl");
    let o = acwtch(
        &w.b_dir,
        &[
            "file",
            "download",
            &w.alice,
            &key,
            "--to",
            dest.to_str().unwrap(),
            "--wait",
        ],
    )
    .await;
    let out = ok(&o);
    // Until the sharer answers, it says what it waits for (the sharer may be offline).
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("asking the sharer for the file"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let target = dest.join("minutes.txt");
    assert_eq!(
        *lines.last().unwrap(),
        format!("downloaded: {}", target.display()),
        "{out}"
    );
    let progress_lines: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        progress_lines.iter().all(|p| p["file_key"] == key.as_str()),
        "{out}"
    );
    // Done when it says so: the whole file is there, under its final name.
    assert!(same_file(&src, &target), "the file arrived altered");
    // Asked for again: it is there already (no second copy), with or without --wait.
    for wait in [false, true] {
        let mut args = vec![
            "file",
            "download",
            &w.alice,
            &key,
            "--to",
            dest.to_str().unwrap(),
        ];
        if wait {
            args.push("--wait");
        }
        let o = acwtch(&w.b_dir, &args).await;
        assert_eq!(
            ok(&o).trim(),
            format!("downloaded: {}", target.display()),
            "--wait {wait}"
        );
        // Nothing to wait for.
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("asking the sharer"), "--wait {wait}: {err}");
    }
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    // Its message says so too (what the TUI shows on it).
    let o = acwtch(&w.b_dir, &["--json", "messages", &w.alice]).await;
    let ms = json(&o);
    let offer = ms
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["overlay"] == 200)
        .unwrap_or_else(|| panic!("the file message among {ms}"));
    assert_eq!(offer["file"]["state"], "downloaded", "{offer}");
    assert_eq!(offer["file"]["path"].as_str(), target.to_str(), "{offer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_without_a_daemon_shows_progress_and_stop_restart_work() {
    let w = World::new().await;
    let _a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("notes.txt");
    write_file(&src, 3 * 1024 * 1024 + 17);
    let key = w.share(&mut b, &src).await;
    b.stop().await;

    let o = acwtch(&w.a_dir, &["file", "stop", &key]).await;
    assert_eq!(ok(&o).trim(), format!("stopped: {key}"));
    let dest = w.tmp.path().join("dl");
    let net = w.net().to_owned();
    let args = [
        "file",
        "download",
        &w.alice,
        &key,
        "--to",
        dest.to_str().unwrap(),
        "--network",
        "loopback",
        "--loopback-dir",
        &net,
    ];

    // Shared again: the download runs in this process, with progress as JSON lines.
    let o = acwtch(&w.a_dir, &["--json", "file", "restart", &key]).await;
    assert_eq!(
        json(&o),
        serde_json::json!({"file_key": key.as_str(), "state": "sharing"})
    );
    let o = acwtch(&w.b_dir, &args).await;
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    let last = lines.last().unwrap();
    assert_eq!(
        *last,
        format!("downloaded: {}", dest.join("notes.txt").display())
    );
    let progress_lines: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!progress_lines.is_empty(), "{out}");
    assert!(progress_lines.iter().all(|p| p["file_key"] == key.as_str()));
    assert_eq!(
        progress_lines.last().unwrap()["done"],
        progress_lines.last().unwrap()["total"]
    );
    assert!(same_file(&src, &dest.join("notes.txt")));

    // A key nobody offered: exit code 3, a clear message.
    let other = format!("{}.{}", "ab".repeat(64), "cd".repeat(24));
    let o = acwtch(
        &w.b_dir,
        &[
            "file",
            "download",
            &w.alice,
            &other,
            "--to",
            dest.to_str().unwrap(),
        ],
    )
    .await;
    fails(&o, 3, "no such file");
    let o = acwtch(&w.b_dir, &["file", "download", &w.alice, "nonsense"]).await;
    fails(&o, 2, "not a file key");
}

/// Without a `cwtch run`: the downloading command is SIGKILLed midway; the same command run
/// again finds the download resumed (the profile resumes unfinished downloads when it starts)
/// and follows it to the end, from what the first run verified, instead of refusing it as
/// already running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_download_resumes_when_the_same_command_runs_again() {
    let w = World::new().await;
    let _a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("video.bin");
    write_file(&src, 40 * 1024 * 1024);
    let key = w.share(&mut b, &src).await;
    b.stop().await;

    let dest = w.tmp.path().join("dl");
    let net = w.net().to_owned();
    let args = [
        "file",
        "download",
        &w.alice,
        &key,
        "--to",
        dest.to_str().unwrap(),
        "--network",
        "loopback",
        "--loopback-dir",
        &net,
    ];
    let target = dest.join("video.bin");
    let (done_before, total) = {
        let mut first = Daemon::spawn_command(&w.b_dir, &args, "");
        let e = first
            .wait_for(BIG, |p| {
                p["file_key"] == key.as_str()
                    && p["done"].as_u64().unwrap_or(0) >= 2 << 20
                    && p["done"].as_u64() < p["total"].as_u64()
            })
            .await;
        first.kill9().await;
        (e["done"].as_u64().unwrap(), e["total"].as_u64().unwrap())
    };
    assert_eq!(total, 40 * 1024 * 1024);
    assert!(
        !target.exists(),
        "the final name appears only when complete"
    );
    assert!(dest.join("video.bin.part").exists());

    let o = acwtch(&w.b_dir, &args).await;
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        *lines.last().unwrap(),
        format!("downloaded: {}", target.display()),
        "{out}"
    );
    // It went on from what was verified before the kill.
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        first["done"].as_u64().unwrap() >= done_before,
        "resumed at {first}, had {done_before} before the kill"
    );
    assert!(same_file(&src, &target), "the file arrived altered");
    assert!(!dest.join("video.bin.part").exists());
}

/// `file list` shows a name as `messages` shows text: one record per line, with a newline or
/// an escape sequence in the sharer's file name written out (`\n`, `\u{1b}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_list_escapes_names_like_messages_do() {
    let w = World::new().await;
    let _a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("two\nlines\u{1b}[2J.txt");
    std::fs::write(&src, b"hello").unwrap();
    let key = w.share(&mut b, &src).await;
    let o = acwtch(&w.b_dir, &["file", "list"]).await;
    let text = ok(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(&key), "{text}");
    assert!(
        text.trim_end().ends_with("\ttwo\\nlines\\u{1b}[2J.txt"),
        "{text}"
    );
    // The sharer's contact list does not carry file sharing's own attributes (manifests,
    // local paths): `file list` is where files are.
    let contacts = json(&acwtch(&w.a_dir, &["--json", "contact", "list"]).await);
    let attrs = contacts[0]["attributes"].as_object().unwrap();
    assert!(
        attrs.keys().all(|k| !k.contains("filesharing")),
        "{attrs:?}"
    );
}

/// `file stop` on a file offered to us stops its download in the daemon; a key that is
/// neither shared by us nor being downloaded is exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_stop_stops_a_download() {
    let w = World::new().await;
    let a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("report.pdf");
    std::fs::write(&src, vec![7u8; 50_000]).unwrap();
    let key = w.share(&mut b, &src).await;
    // Alice goes away: the download waits for her.
    a.stop().await;
    let dest = w.tmp.path().join("in");
    std::fs::create_dir_all(&dest).unwrap();
    let o = acwtch(
        &w.b_dir,
        &[
            "file",
            "download",
            &w.alice,
            &key,
            "--to",
            dest.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok(&o).starts_with("downloading: "), "{}", ok(&o));
    let o = acwtch(&w.b_dir, &["file", "stop", &key]).await;
    assert_eq!(ok(&o).trim_end(), format!("download stopped: {key}"));
    let k = key.clone();
    let failed = b
        .wait_for(STEP, move |e| {
            e["event"] == "FileDownloadFailed" && e["file_key"] == k.as_str()
        })
        .await;
    assert!(
        failed["reason"].as_str().unwrap().starts_with("stopped"),
        "{failed}"
    );
    fails(
        &acwtch(&w.b_dir, &["file", "stop", &key]).await,
        3,
        "being downloaded",
    );
    assert!(b.stop().await.success());
}

/// Ctrl-C during a download without a daemon says what stays and how to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_download_says_how_to_resume() {
    let w = World::new().await;
    let a = Daemon::loopback(&w.a_dir, &w.net, &w.alice).await;
    let mut b = Daemon::loopback(&w.b_dir, &w.net, &w.bob).await;
    w.befriend(&mut b).await;
    let src = w.tmp.path().join("notes.txt");
    std::fs::write(&src, b"some notes").unwrap();
    let key = w.share(&mut b, &src).await;
    b.stop().await;
    a.stop().await;
    let dest = w.tmp.path().join("dl");
    let args = [
        "file",
        "download",
        &w.alice,
        &key,
        "--to",
        dest.to_str().unwrap(),
        "--network",
        "loopback",
        "--loopback-dir",
        w.net(),
    ];
    let d = Daemon::spawn_command(&w.b_dir, &args, "");
    let mut log = w.b_dir.as_os_str().to_owned();
    log.push(".log");
    let log = PathBuf::from(log);
    let deadline = std::time::Instant::now() + STEP;
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("asking the sharer")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let status = d.stop_with("-INT").await;
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("interrupted: what arrived is kept; run the same command to resume"),
        "{text}"
    );
}
