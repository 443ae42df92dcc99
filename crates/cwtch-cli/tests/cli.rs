//! The `cwtch` command line without a network: profiles (create, list, unlock, passwd,
//! show, set, export, import, delete), contacts (delete), a copy of a Go-made Cwtch home, misuse, and `--help`
//! (groups and servers: `tests/groups.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn names_and_onions(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["onion"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn create_and_list_profiles_with_and_without_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // No password: the onion is the last line of stdout.
    let alice = create(&home, "alice");
    // A password from stdin.
    let o = cwtch_stdin(
        &home,
        &["profile", "create", "--name", "bob", "--password-stdin"],
        "hunter2\n",
    );
    let bob = last_line(&o);
    assert_eq!(bob.len(), 56);
    assert_ne!(alice, bob);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&home).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the home is private");
    }

    // Text: name TAB onion, only what opens with the default password.
    let text = ok(&cwtch(&home, &["profile", "list"]));
    assert_eq!(text, format!("alice\t{alice}\n"));
    // With the password too; JSON.
    let o = cwtch_stdin(
        &home,
        &["--json", "profile", "list", "--password-stdin"],
        "hunter2\n",
    );
    let v = json(&o);
    let m = names_and_onions(&v);
    assert_eq!(m.len(), 2);
    assert_eq!(m["alice"], alice);
    assert_eq!(m["bob"], bob);
    for p in v.as_array().unwrap() {
        assert_eq!(p["profile_id"].as_str().unwrap().len(), 32);
        assert_eq!(p["running"], false);
    }
    let o = cwtch_stdin(&home, &["profile", "list", "--password-stdin"], "hunter2\n");
    assert_eq!(ok(&o).lines().count(), 2);
    // A mistyped password is an error, not a list without bob.
    fails(
        &cwtch_stdin(&home, &["profile", "list", "--password-stdin"], "hunter3\n"),
        4,
        "no profile opens with this password",
    );

    // Creating needs a choice of password, and a name.
    fails(
        &cwtch(&home, &["profile", "create", "--name", "x"]),
        2,
        "--no-password",
    );
    fails(
        &cwtch(&home, &["profile", "create", "--name", "", "--no-password"]),
        2,
        "name",
    );
    fails(
        &cwtch_stdin(
            &home,
            &["profile", "create", "--name", "c", "--password-stdin"],
            "\n",
        ),
        2,
        "empty",
    );
    fails(
        &cwtch(
            &home,
            &["profile", "create", "--name", "c", "--password-stdin"],
        ),
        2,
        "end of input",
    );
    // Still two profiles.
    let o = cwtch_stdin(&home, &["profile", "list", "--password-stdin"], "hunter2\n");
    assert_eq!(ok(&o).lines().count(), 2);
}

#[test]
fn unlock_without_a_daemon_checks_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    create(&home, "open");
    let o = cwtch_stdin(
        &home,
        &["profile", "create", "--name", "locked", "--password-stdin"],
        "right\n",
    );
    let locked = last_line(&o);
    let o = cwtch_stdin(&home, &["profile", "unlock"], "right\n");
    assert_eq!(ok(&o), format!("locked\t{locked}\n"));
    assert!(stderr(&o).contains("no `cwtch run`"), "{}", stderr(&o));
    // Wrong password: exit 4.
    fails(
        &cwtch_stdin(&home, &["profile", "unlock"], "wrong\n"),
        4,
        "password",
    );
    fails(
        &cwtch_stdin(&home, &["contact", "list", "--password-stdin"], "wrong\n"),
        4,
        "password",
    );
    // The wrong password lists nothing: it says so.
    fails(
        &cwtch_stdin(&home, &["profile", "list", "--password-stdin"], "wrong\n"),
        4,
        "password",
    );
    // A password-protected profile is not usable without its password.
    fails(
        &cwtch(&home, &["--profile", "locked", "contact", "list"]),
        3,
        "locked",
    );
    let o = cwtch_stdin(
        &home,
        &["--profile", "locked", "contact", "list", "--password-stdin"],
        "right\n",
    );
    assert_eq!(ok(&o), "");
}

#[test]
fn passwd_changes_adds_and_removes_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let onion = create(&home, "carol");
    // Add a password (the old one is empty: none).
    let o = cwtch_stdin(&home, &["profile", "passwd"], "\none\n");
    assert!(ok(&o).contains(&onion));
    let o = cwtch(&home, &["profile", "list"]);
    assert_eq!(ok(&o), "");
    // Said, not an empty answer: the profile is there, behind its password.
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));
    fails(
        &cwtch(&home, &["contact", "list"]),
        3,
        "use --password-stdin for others",
    );
    assert_eq!(
        ok(&cwtch_stdin(&home, &["profile", "unlock"], "one\n")),
        format!("carol\t{onion}\n")
    );
    // Change it; the old one no longer works.
    let o = cwtch_stdin(&home, &["profile", "passwd"], "one\ntwo\n");
    assert!(ok(&o).starts_with("password changed: carol"), "{}", ok(&o));
    fails(
        &cwtch_stdin(&home, &["profile", "unlock"], "one\n"),
        4,
        "password",
    );
    ok(&cwtch_stdin(&home, &["profile", "unlock"], "two\n"));
    // A wrong old password changes nothing.
    fails(
        &cwtch_stdin(&home, &["profile", "passwd"], "nope\nthree\n"),
        4,
        "password",
    );
    ok(&cwtch_stdin(&home, &["profile", "unlock"], "two\n"));
    // An empty new password is refused; --clear removes it.
    fails(
        &cwtch_stdin(&home, &["profile", "passwd"], "two\n\n"),
        2,
        "empty",
    );
    fails(
        &cwtch_stdin(&home, &["profile", "passwd"], "two\n"),
        2,
        "end of input",
    );
    let o = cwtch_stdin(&home, &["profile", "passwd", "--clear"], "two\n");
    assert!(ok(&o).starts_with("password removed"), "{}", ok(&o));
    assert_eq!(
        ok(&cwtch(&home, &["profile", "list"])),
        format!("carol\t{onion}\n")
    );
}

#[test]
fn export_import_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let alice = create(&home, "alice");
    let o = cwtch_stdin(
        &home,
        &["profile", "create", "--name", "bob", "--password-stdin"],
        "pw\n",
    );
    let bob = last_line(&o);

    // Export (a relative path is relative to our working directory).
    let archive = tmp.path().join("alice.tar.gz");
    let o = std::process::Command::new(BIN)
        .current_dir(tmp.path())
        .args(["--data-dir", home.to_str().unwrap(), "--profile", "alice"])
        .args(["profile", "export", "alice.tar.gz"])
        .env_remove("CWTCH_HOME")
        .output()
        .unwrap();
    assert!(ok(&o).contains("exported"));
    assert!(std::fs::metadata(&archive).unwrap().len() > 0);
    // Never overwrites.
    fails(
        &cwtch(
            &home,
            &[
                "--profile",
                "alice",
                "profile",
                "export",
                archive.to_str().unwrap(),
            ],
        ),
        1,
        "exists",
    );
    // Bob needs his password to be found.
    let bob_archive = tmp.path().join("bob.tar.gz");
    let b = bob_archive.to_str().unwrap();
    fails(
        &cwtch(&home, &["--profile", "bob", "profile", "export", b]),
        3,
        "bob",
    );
    ok(&cwtch_stdin(
        &home,
        &[
            "--profile",
            "bob",
            "profile",
            "export",
            b,
            "--password-stdin",
        ],
        "pw\n",
    ));

    // Import into another home: same onion, listed.
    let other = tmp.path().join("other");
    let o = cwtch(&other, &["profile", "import", archive.to_str().unwrap()]);
    assert_eq!(last_line(&o), alice);
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(note.contains("run it in one place only"), "{note}");
    assert_eq!(
        ok(&cwtch(&other, &["profile", "list"])),
        format!("alice\t{alice}\n")
    );
    // Importing it again is refused; a password archive needs its password.
    fails(
        &cwtch(&other, &["profile", "import", archive.to_str().unwrap()]),
        1,
        "exists",
    );
    fails(
        &cwtch(&other, &["profile", "import", b]),
        4,
        "has a password: give it with --password-stdin",
    );
    let o = cwtch_stdin(
        &other,
        &["profile", "import", b, "--password-stdin"],
        "pw\n",
    );
    assert_eq!(last_line(&o), bob);
    fails(
        &cwtch(&other, &["profile", "import", "/nonexistent/x.tar.gz"]),
        1,
        "nonexistent",
    );

    // Delete: needs --yes (stdin is not a terminal here) and the password.
    fails(
        &cwtch(
            &home,
            &["--profile", "alice", "profile", "delete", "--no-password"],
        ),
        2,
        "--yes",
    );
    fails(
        &cwtch(&home, &["--profile", "alice", "profile", "delete", "--yes"]),
        2,
        "--no-password",
    );
    fails(
        &cwtch_stdin(
            &home,
            &[
                "--profile",
                "bob",
                "profile",
                "delete",
                "--yes",
                "--password-stdin",
            ],
            "wrong\n",
        ),
        4,
        "password",
    );
    fails(
        &cwtch(
            &home,
            &[
                "--profile",
                "bob",
                "profile",
                "delete",
                "--yes",
                "--no-password",
            ],
        ),
        3,
        "bob",
    );
    let o = cwtch(
        &home,
        &[
            "--profile",
            "alice",
            "profile",
            "delete",
            "--yes",
            "--no-password",
        ],
    );
    assert!(ok(&o).contains(&alice));
    assert_eq!(ok(&cwtch(&home, &["profile", "list"])), "");
    let o = cwtch_stdin(
        &home,
        &[
            "--profile",
            bob.as_str(),
            "profile",
            "delete",
            "--yes",
            "--password-stdin",
        ],
        "pw\n",
    );
    assert!(ok(&o).contains(&bob));
    fails(
        &cwtch_stdin(&home, &["profile", "unlock"], "pw\n"),
        4,
        "password",
    );
    // The copies in the other home are untouched.
    let o = cwtch_stdin(&other, &["profile", "list", "--password-stdin"], "pw\n");
    assert_eq!(ok(&o).lines().count(), 2);
}

#[test]
fn a_copy_of_a_go_cwtch_home_lists_alice_bob_and_carol() {
    let fixtures = repo().join("testvectors/aliceandbob1");
    let hash = |dir: &Path| {
        let mut out = BTreeMap::new();
        fn walk(d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.path(), std::fs::read(e.path()).unwrap());
                }
            }
        }
        walk(dir, &mut out);
        out
    };
    let before = hash(&fixtures);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("go-home");
    copy_private(&fixtures, &home);

    let vectors: Value =
        serde_json::from_slice(&std::fs::read(repo().join("testvectors/vectors.json")).unwrap())
            .unwrap();
    let expected: BTreeMap<String, String> = vectors["profiles"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["onion"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 3);
    assert!(
        expected.contains_key("Alice")
            && expected.contains_key("Bob")
            && expected.contains_key("Carol")
    );

    let text = ok(&cwtch(&home, &["profile", "list"]));
    let listed: BTreeMap<String, String> = text
        .lines()
        .map(|l| {
            let (n, o) = l.split_once('\t').unwrap();
            (n.to_owned(), o.to_owned())
        })
        .collect();
    assert_eq!(listed, expected);
    let v = json(&cwtch(&home, &["--json", "profile", "list"]));
    assert_eq!(names_and_onions(&v), expected);
    for p in v.as_array().unwrap() {
        assert!(vectors["profiles"][p["profile_id"].as_str().unwrap()].is_object());
    }
    // Several profiles: a profile-scoped command needs --profile, and says which there are.
    let o = cwtch(&home, &["contact", "list"]);
    fails(&o, 2, "--profile");
    for onion in expected.values() {
        assert!(stderr(&o).contains(onion.as_str()), "{}", stderr(&o));
    }
    // Alice's contacts, read offline from the Go-made database.
    let o = cwtch(&home, &["--profile", "Alice", "--json", "contact", "list"]);
    let contacts = json(&o);
    let bob = &expected["Bob"];
    assert!(
        contacts
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["onion"] == bob.as_str()),
        "Alice knows Bob: {contacts}"
    );
    // By onion (with .onion) and by id too.
    ok(&cwtch(
        &home,
        &[
            "--profile",
            &format!("{}.onion", expected["Carol"]),
            "contact",
            "list",
        ],
    ));
    ok(&cwtch(
        &home,
        &[
            "--profile",
            "c39e0660a885b6000173ffea9d214b5c",
            "contact",
            "list",
        ],
    ));

    assert!(before == hash(&fixtures), "the fixtures were modified");
}

#[test]
fn misuse_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // No home yet.
    fails(&cwtch(&home, &["profile", "list"]), 3, "no Cwtch home");
    fails(&cwtch(&home, &["contact", "list"]), 3, "no Cwtch home");
    assert!(!home.exists(), "nothing was created");
    // No profile yet.
    std::fs::create_dir(&home).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    fails(&cwtch(&home, &["contact", "list"]), 3, "profile create");
    let a = create(&home, "alice");
    create(&home, "alice");
    let carol = create(&home, "carol");
    // Ambiguous: two alices; no selection: three profiles.
    fails(
        &cwtch(&home, &["--profile", "alice", "contact", "list"]),
        2,
        "several",
    );
    fails(&cwtch(&home, &["contact", "list"]), 2, "--profile");
    fails(
        &cwtch(&home, &["--profile", "dave", "contact", "list"]),
        3,
        "dave",
    );
    let me = ["--profile", a.as_str()];
    let net = tmp.path().join("net");
    let net = net.to_str().unwrap();
    // Invalid contacts.
    let with = |args: &[&str]| {
        let mut v: Vec<&str> = me.to_vec();
        v.extend_from_slice(args);
        cwtch(&home, &v)
    };
    fails(&with(&["contact", "add", "notanonion"]), 2, "not a valid");
    fails(&with(&["contact", "add", "42"]), 2, "not a valid");
    fails(&with(&["contact", "add", &a]), 2, "itself");
    fails(
        &with(&["contact", "accept", "zzz"]),
        3,
        "no contact \"zzz\"",
    );
    fails(
        &with(&["contact", "accept", "zzzzzzzzzz.onion"]),
        2,
        "neither",
    );
    fails(&with(&["contact", "block", "42"]), 3, "no contact 42");
    fails(
        &with(&["messages", "42"]),
        3,
        "no contact or group with conversation id 42",
    );
    fails(&with(&["messages", &carol]), 3, "no contact");
    fails(
        &with(&[
            "send",
            &carol,
            "hi",
            "--network",
            "loopback",
            "--loopback-dir",
            net,
        ]),
        3,
        "no contact",
    );
    // Contacts added offline are listed (and a trailing .onion is fine).
    let c = with(&["contact", "add", &format!("{carol}.onion")]);
    assert!(
        ok(&c).starts_with(&format!("1\t{carol}\taccepted\tDisconnected")),
        "{}",
        ok(&c)
    );
    let v = json(&with(&["--json", "contact", "list"]));
    assert_eq!(v[0]["onion"], carol.as_str());
    // An empty message is not sent (nor stored).
    for empty in ["", " \n\t"] {
        fails(&with(&["send", "1", empty]), 2, "empty");
    }
    assert_eq!(
        json(&with(&["--json", "messages", "1"])),
        Value::Array(vec![])
    );
    // A profile's name (which contacts fetch) is one line, not empty, not too long.
    let long = "n".repeat(257);
    for bad in ["two\nlines", "esc\u{1b}[2J", long.as_str()] {
        fails(
            &cwtch(
                &home,
                &["profile", "create", "--name", bad, "--no-password"],
            ),
            2,
            "invalid name",
        );
        fails(&with(&["profile", "set", "--name", bad]), 2, "invalid name");
    }
    assert_eq!(v[0]["conversation_id"], 1);
    // Permissions: shown, changed one at a time, back to the default; stored.
    assert_eq!(
        ok(&with(&["contact", "permissions", "1"])).trim_end(),
        "files: allow (default)\timages: allow (default)"
    );
    assert_eq!(
        ok(&with(&[
            "contact",
            "permissions",
            "1",
            "--images",
            "refuse"
        ]))
        .trim_end(),
        "files: allow (default)\timages: refuse"
    );
    assert_eq!(
        ok(&with(&["contact", "permissions", "1", "--files", "refuse"])).trim_end(),
        "files: refuse\timages: refuse"
    );
    let v = json(&with(&["--json", "contact", "list"]));
    assert_eq!(
        v[0]["permissions"],
        serde_json::json!({"share_files": false, "render_images": false})
    );
    assert_eq!(
        ok(&with(&[
            "contact",
            "permissions",
            "1",
            "--files",
            "default",
            "--images",
            "allow"
        ]))
        .trim_end(),
        "files: allow (default)\timages: allow"
    );
    fails(
        &with(&["contact", "permissions", "1", "--files", "maybe"]),
        2,
        "invalid value 'maybe'",
    );
    fails(
        &with(&["contact", "permissions", "42", "--files", "allow"]),
        3,
        "no contact 42",
    );
    ok(&with(&["contact", "block", "1"]));
    assert!(ok(&with(&["contact", "list"])).contains("\tblocked\t"));
    fails(
        &with(&[
            "send",
            "1",
            "hi",
            "--network",
            "loopback",
            "--loopback-dir",
            net,
        ]),
        1,
        "blocked",
    );
    ok(&with(&["contact", "unblock", &carol]));
    assert!(ok(&with(&["contact", "list"])).contains("\taccepted\t"));
    // Too long a message.
    let long = "x".repeat(7001);
    fails(
        &with(&[
            "send",
            "1",
            &long,
            "--network",
            "loopback",
            "--loopback-dir",
            net,
        ]),
        2,
        "7000",
    );
    // Conflicting network flags.
    fails(
        &with(&[
            "send",
            "1",
            "hi",
            "--network",
            "loopback",
            "--tor-control",
            "127.0.0.1:9051",
        ]),
        2,
        "--tor-control",
    );
    fails(
        &with(&["send", "1", "hi", "--loopback-dir", net]),
        2,
        "--loopback-dir",
    );
    fails(
        &cwtch(&home, &["run", "--tor-cookie-file", "/c"]),
        2,
        "--tor-control",
    );
    fails(
        &cwtch(&home, &["run", "--no-default-profiles"]),
        2,
        "--password-stdin",
    );
    fails(
        &cwtch(
            &home,
            &[
                "run",
                "--network",
                "loopback",
                "--loopback-dir",
                net,
                "--tor-binary",
                "/t",
            ],
        ),
        2,
        "--tor-binary",
    );
    // Unknown subcommands and flags: clap's usage error.
    let o = cwtch(&home, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    // A file where the home should be.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    fails(&cwtch(&file, &["profile", "list"]), 2, "is not a directory");
    // Or under a file: named, not the control socket's error.
    let o = cwtch(
        &file.join("sub"),
        &["profile", "create", "--name", "x", "--no-password"],
    );
    fails(&o, 2, &format!("{} is not a directory", file.display()));
    assert!(!stderr(&o).contains("socket"), "{}", stderr(&o));
    // A file as the download folder: said before anything starts.
    let o = cwtch(
        &home,
        &[
            "--profile",
            &a,
            "file",
            "download",
            "1",
            "00.11",
            "--to",
            file.to_str().unwrap(),
        ],
    );
    fails(&o, 2, "the download folder");
    // An exposed home is refused.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    fails(&cwtch(&home, &["profile", "list"]), 1, "chmod 700");
}

#[test]
fn settings_and_contact_deletion_without_a_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let onion = create(&home, "dora");
    let o = cwtch_stdin(
        &home,
        &["profile", "create", "--name", "erin", "--password-stdin"],
        "pw\n",
    );
    let erin = last_line(&o);
    let dora = ["--profile", onion.as_str()];
    let with = |args: &[&str]| cwtch(&home, &[&dora[..], args].concat());
    // Defaults.
    assert_eq!(
        ok(&with(&["profile", "show"])),
        format!("name\tdora\nonion\t{onion}\nstatus\t\nblock-unknown\toff\nimage-previews\toff\nautostart\ton\nimage\tnone\n")
    );
    // Change all three; the result is printed (escaped: a backslash doubled) and stored.
    let o = with(&[
        "profile",
        "set",
        "--name",
        "Dora\\the explorer",
        "--status",
        "away",
        "--block-unknown",
        "on",
    ]);
    assert_eq!(
        ok(&o),
        format!("name\tDora\\\\the explorer\nonion\t{onion}\nstatus\taway\nblock-unknown\ton\nimage-previews\toff\nautostart\ton\nimage\tnone\n")
    );
    let v = json(&cwtch(
        &home,
        &["--profile", &onion, "--json", "profile", "show"],
    ));
    assert_eq!(v["name"], "Dora\\the explorer", "{v}");
    assert_eq!(v["status"], "away", "{v}");
    assert_eq!(v["block_unknown"], true, "{v}");
    assert_eq!(v["onion"], onion.as_str(), "{v}");
    // The new name is the one listed.
    assert!(ok(&cwtch(&home, &["profile", "list"])).starts_with("Dora\\\\the explorer\t"));
    // Only what is given changes; --block-unknown off turns it off.
    let v = json(&cwtch(
        &home,
        &[
            "--profile",
            &onion,
            "--json",
            "profile",
            "set",
            "--block-unknown",
            "off",
        ],
    ));
    assert_eq!(
        (&v["name"], &v["status"], &v["block_unknown"]),
        (
            &Value::from("Dora\\the explorer"),
            &Value::from("away"),
            &Value::from(false)
        )
    );
    // A password-protected profile needs its password.
    let erin_sel = ["--profile", erin.as_str()];
    fails(
        &cwtch(&home, &[&erin_sel[..], &["profile", "show"]].concat()),
        3,
        "--password-stdin",
    );
    // Names are escaped in error messages too (one candidate per line, no control bytes).
    fails(
        &cwtch(&home, &["--profile", "nobody", "profile", "show"]),
        3,
        "  Dora\\\\the explorer\t",
    );
    let o = cwtch_stdin(
        &home,
        &[
            &erin_sel[..],
            &["profile", "set", "--status", "busy", "--password-stdin"],
        ]
        .concat(),
        "pw\n",
    );
    assert!(ok(&o).contains("status\tbusy\n"), "{}", ok(&o));
    // Misuse.
    let o = cwtch(&home, &[&erin_sel[..], &["profile", "set"]].concat());
    assert_eq!(o.status.code(), Some(2), "nothing to set: {}", stderr(&o));
    fails(
        &cwtch(
            &home,
            &["--profile", &onion, "profile", "set", "--name", " "],
        ),
        2,
        "empty",
    );
    let o = with(&["profile", "set", "--block-unknown", "maybe"]);
    assert_eq!(o.status.code(), Some(2));

    // Image previews: off by default, on when asked, and stored.
    let v = json(&cwtch(
        &home,
        &[
            "--profile",
            &onion,
            "--json",
            "profile",
            "set",
            "--image-previews",
            "on",
        ],
    ));
    assert_eq!(v["image_previews"], true, "{v}");
    assert!(ok(&with(&["profile", "show"])).contains("\nimage-previews\ton\n"));
    // A profile picture must be a real image: garbage is refused, and nothing is set.
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    fails(
        &with(&["profile", "set", "--image", junk.to_str().unwrap()]),
        2,
        "cannot use",
    );
    assert!(ok(&with(&["profile", "show"])).ends_with("\nimage\tnone\n"));
    let pic = tmp.path().join("me.png");
    let img = image::RgbaImage::from_fn(4, 3, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
    image::DynamicImage::ImageRgba8(img)
        .save_with_format(&pic, image::ImageFormat::Png)
        .unwrap();
    let v = json(&cwtch(
        &home,
        &[
            "--profile",
            &onion,
            "--json",
            "profile",
            "set",
            "--image",
            pic.to_str().unwrap(),
        ],
    ));
    let key = v["image"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 128 + 1 + 48, "{v}");
    // It stays (shared from the profile, restored when it loads).
    assert!(ok(&with(&["profile", "show"])).ends_with(&format!("\nimage\t{key}\n")));
    // `file list` shows it, shared with no conversation (-1).
    let files = ok(&with(&["file", "list"]));
    assert!(
        files.starts_with(&format!("-1\t{key}\tours\tsharing\t"))
            && files.trim_end().ends_with("\tprofile-image.png"),
        "{files}"
    );
    // Removed: none again; both at once is a usage error.
    fails(
        &with(&[
            "profile",
            "set",
            "--no-image",
            "--image",
            pic.to_str().unwrap(),
        ]),
        2,
        "cannot be used with",
    );
    ok(&with(&["profile", "set", "--no-image"]));
    assert!(ok(&with(&["profile", "show"])).ends_with("\nimage\tnone\n"));
    let files = ok(&with(&["file", "list"]));
    assert!(
        files.starts_with(&format!("-1\t{key}\tours\tstopped\t")),
        "{files}"
    );

    // Contact deletion: confirmation required, then the conversation is gone.
    let peer = create(&tmp.path().join("other"), "peer");
    ok(&with(&["contact", "add", &peer]));
    // A contact can be named by the nickname we gave it (never by the name it gives itself).
    ok(&with(&["contact", "rename", &peer, "my pal"]));
    let o = with(&["contact", "block", "my pal"]);
    assert!(ok(&o).contains("\tblocked\t"), "{}", ok(&o));
    // Adding it again says it is blocked, and how to let it in.
    let o = with(&["contact", "add", &peer]);
    assert!(ok(&o).contains("\tblocked\t"), "{}", ok(&o));
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(note.contains("contact unblock"), "{note}");
    ok(&with(&["contact", "unblock", "my pal"]));
    assert!(json(&with(&["--json", "messages", "my pal"]))
        .as_array()
        .unwrap()
        .is_empty());
    fails(&with(&["contact", "delete", &peer]), 2, "--yes");
    assert_eq!(ok(&with(&["contact", "list"])).lines().count(), 1);
    let o = with(&["contact", "delete", "1", "--yes"]);
    assert_eq!(
        ok(&o),
        format!("deleted: 1\t{peer}\taccepted\tDisconnected\t0\tmy pal (0 messages)\n")
    );
    assert_eq!(ok(&with(&["contact", "list"])), "");
    fails(
        &with(&["contact", "delete", &peer, "--yes"]),
        3,
        "no contact",
    );
    fails(&with(&["messages", &peer]), 3, "no contact");
    fails(
        &with(&["contact", "delete", "nonsense", "--yes"]),
        3,
        "no contact \"nonsense\"",
    );
    // It can be added again: a new conversation.
    assert!(ok(&with(&["contact", "add", &peer])).starts_with("2\t"));
}

#[test]
fn help_of_every_subcommand_mentions_its_flags() {
    let help = |args: &[&str]| {
        let o = std::process::Command::new(BIN)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}");
        stdout(&o)
    };
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "profile",
                "contact",
                "server",
                "group",
                "send",
                "messages",
                "run",
                "--data-dir",
                "--profile",
                "--json",
                "Exit codes",
            ],
        ),
        (
            &["profile"],
            &[
                "create", "list", "unlock", "passwd", "show", "set", "export", "import", "delete",
            ],
        ),
        (&["profile", "show"], &["--password-stdin", "--json"]),
        (
            &["profile", "set"],
            &[
                "--name",
                "--status",
                "--block-unknown",
                "--image-previews",
                "--image",
                "--password-stdin",
            ],
        ),
        (
            &["profile", "create"],
            &["--name", "--no-password", "--password-stdin"],
        ),
        (&["profile", "list"], &["--password-stdin", "--json"]),
        (&["profile", "unlock"], &["stdin", "--profile"]),
        (&["profile", "passwd"], &["--clear", "stdin"]),
        (&["profile", "export"], &["<PATH>", "--password-stdin"]),
        (&["profile", "import"], &["<PATH>", "--password-stdin"]),
        (
            &["profile", "delete"],
            &["--yes", "--no-password", "--password-stdin"],
        ),
        (
            &["contact"],
            &[
                "add",
                "list",
                "accept",
                "block",
                "unblock",
                "permissions",
                "delete",
            ],
        ),
        (&["contact", "delete"], &["<CONTACT>", "--yes"]),
        (&["contact", "add"], &["<CONTACT>", "--password-stdin"]),
        (&["contact", "list"], &["--password-stdin", "--json"]),
        (&["contact", "accept"], &["<CONTACT>"]),
        (&["contact", "block"], &["<CONTACT>"]),
        (&["contact", "unblock"], &["<CONTACT>"]),
        (
            &["contact", "permissions"],
            &[
                "<CONTACT>",
                "--files",
                "--images",
                "allow",
                "refuse",
                "default",
            ],
        ),
        (
            &["server"],
            &["add", "list", "remove", "cwtch-server bundle"],
        ),
        (
            &["server", "add"],
            &["<BUNDLE>", "server:", "--password-stdin"],
        ),
        (&["server", "list"], &["tokens", "--json"]),
        (&["server", "remove"], &["<ONION>"]),
        (
            &["group"],
            &[
                "create", "invite", "join", "list", "accept", "leave", "GROUP",
            ],
        ),
        (&["group", "create"], &["<NAME>", "--server", "invite"]),
        (
            &["group", "invite"],
            &[
                "<GROUP>",
                "<CONTACT>",
                "--wait",
                "--network",
                "--loopback-dir",
            ],
        ),
        (
            &["group", "join"],
            &[
                "<INVITE>",
                "tofubundle:",
                "torv3",
                "cwtch-server bundle --tofu",
            ],
        ),
        (&["group", "list"], &["unread", "missing", "--json"]),
        (&["group", "accept"], &["<GROUP>"]),
        (&["group", "leave"], &["<GROUP>"]),
        (
            &["send"],
            &[
                "<CONTACT|GROUP>",
                "<TEXT>",
                "--wait",
                "--reply-to",
                "--network",
                "--loopback-dir",
                "--tor-control",
                "--tor-cookie-file",
                "--tor-binary",
                "--tor-password-stdin",
            ],
        ),
        (
            &["messages"],
            &["<CONTACT|GROUP>", "author", "--limit", "--offset", "--json"],
        ),
        (
            &["run"],
            &[
                "--password-stdin",
                "--no-default-profiles",
                "--network",
                "--loopback-dir",
                "--tor-control",
                "--tor-cookie-file",
                "--tor-binary",
                "--tor-password-stdin",
                "--data-dir",
            ],
        ),
    ];
    for (args, words) in cases {
        let h = help(args);
        for w in *words {
            assert!(
                h.contains(w),
                "`cwtch {} --help` lacks {w}:\n{h}",
                args.join(" ")
            );
        }
    }
}
