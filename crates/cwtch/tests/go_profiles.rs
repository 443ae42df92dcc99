//! The three Go-made profiles in `testvectors/aliceandbob1/` (Cwtch UI integration-test
//! fixtures; names and onions in `testvectors/vectors.json`) open with the default password
//! through the same code path as profiles we create: listed, loaded, their contacts and
//! message counts read — and they come online and talk to each other.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use cwtch::{ContactId, Cwtch, Error, Event, Password};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testvectors/aliceandbob1")
}

fn vectors() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testvectors/vectors.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Copy a directory tree; directories 0700 (a Cwtch home must be private).
fn copy_private(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_private(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            snapshot(&e.path(), out);
        } else {
            let h = Sha256::digest(std::fs::read(e.path()).unwrap());
            out.insert(e.path(), format!("{h:x}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn go_profiles_open_like_ours_and_come_online() {
    let w = World::new();
    let mut before = BTreeMap::new();
    snapshot(&fixtures(), &mut before);
    let home = w.home("home");
    copy_private(&fixtures(), &home);
    let cwtch = Cwtch::open_with_config(&home, w.acn(), fast_config())
        .await
        .unwrap();
    let mut events = Events::new(cwtch.events());

    // Listed with the default password: names and onions as in vectors.json.
    let v = vectors();
    let listed = cwtch.list_profiles(&Password::Default).await.unwrap();
    assert_eq!(listed.len(), 3);
    for p in &listed {
        let exp = &v["profiles"][p.profile_id.as_str()];
        assert_eq!(p.name, exp["name"].as_str().unwrap());
        assert_eq!(p.onion.as_str(), exp["onion"].as_str().unwrap());
        assert!(!p.loaded);
    }
    assert!(cwtch
        .list_profiles(&Password::user("not it"))
        .await
        .unwrap()
        .is_empty());

    // A profile we create sits beside them and opens the same way.
    let dave = cwtch
        .create_profile("Dave", &Password::Default)
        .await
        .unwrap();
    let listed = cwtch.list_profiles(&Password::Default).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.contains(&dave));

    // Load all four (Alice by her onion, the others by id): contacts and message counts.
    let alice_onion = v["profiles"]["c39e0660a885b6000173ffea9d214b5c"]["onion"]
        .as_str()
        .unwrap();
    let bob_onion = v["profiles"]["aef99a4db367d0a06f8a351f4732e2db"]["onion"]
        .as_str()
        .unwrap();
    assert!(matches!(
        cwtch
            .load_profile(alice_onion, &Password::user("not it"))
            .await,
        Err(Error::ProfileNotFound { .. })
    ));
    let alice = cwtch
        .load_profile(alice_onion, &Password::Default)
        .await
        .unwrap();
    let bob = cwtch
        .load_profile("aef99a4db367d0a06f8a351f4732e2db", &Password::Default)
        .await
        .unwrap();
    let carol = cwtch
        .load_profile("648b3aac5a139faadf74661983ab072e", &Password::Default)
        .await
        .unwrap();
    let dave = cwtch
        .load_profile(dave.profile_id.as_str(), &Password::Default)
        .await
        .unwrap();
    assert_eq!(alice.onion().as_str(), alice_onion);
    assert_eq!(alice.name().await.unwrap(), "Alice");
    assert_eq!(carol.name().await.unwrap(), "Carol");
    assert_eq!(dave.name().await.unwrap(), "Dave");

    let ac = alice.contacts().await.unwrap();
    assert_eq!(ac.len(), 1);
    assert_eq!(ac[0].onion.as_str(), bob_onion);
    assert_eq!(ac[0].name.as_deref(), Some("Bob"));
    assert!(ac[0].accepted && !ac[0].blocked);
    assert_eq!(ac[0].message_count, 0);
    let bc = bob.contacts().await.unwrap();
    assert_eq!(bc.len(), 1);
    assert_eq!(bc[0].onion.as_str(), alice_onion);
    assert_eq!(bc[0].name.as_deref(), Some("Alice"));
    assert_eq!(bc[0].message_count, 0);
    assert!(carol.contacts().await.unwrap().is_empty());
    assert!(dave.contacts().await.unwrap().is_empty());
    let listed = cwtch.list_profiles(&Password::Default).await.unwrap();
    assert!(listed.iter().all(|p| p.loaded));

    // Go's Alice and Bob are contacts of each other: their engines connect and talk.
    let to_bob = ContactId::Onion(onion(bob_onion));
    alice
        .send_text(to_bob.clone(), "hi Bob, from Go's Alice")
        .await
        .unwrap();
    events
        .expect("delivered", |e| {
            matches!(e, Event::NewMessage { profile, text: Some(t), .. }
                if profile == bob_onion && t == "hi Bob, from Go's Alice")
        })
        .await;
    events
        .expect(
            "acknowledged",
            |e| matches!(e, Event::Acknowledged { profile, .. } if profile == alice_onion),
        )
        .await;
    assert_eq!(
        bob.contact(ContactId::Onion(onion(alice_onion)))
            .await
            .unwrap()
            .message_count,
        1
    );
    cwtch.shutdown().await;

    // The originals were never touched.
    let mut after = BTreeMap::new();
    snapshot(&fixtures(), &mut after);
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_export_import_and_delete() {
    let w = World::new();
    let home = w.home("home");
    copy_private(&fixtures(), &home);
    let cwtch = Cwtch::open_with_config(&home, w.acn(), fast_config())
        .await
        .unwrap();
    let carol = "648b3aac5a139faadf74661983ab072e"
        .parse::<cwtch::ProfileId>()
        .unwrap();

    // Change Carol's password (not loaded), then she only opens with the new one.
    let new = Password::user("correct horse");
    cwtch
        .change_password(&carol, &Password::Default, &new)
        .await
        .unwrap();
    assert_eq!(
        cwtch.list_profiles(&Password::Default).await.unwrap().len(),
        2
    );
    let listed = cwtch.list_profiles(&new).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Carol");

    // Change it back while loaded.
    let p = cwtch.load_profile(carol.as_str(), &new).await.unwrap();
    p.change_password(&new, &Password::Default).await.unwrap();
    assert_eq!(
        cwtch.list_profiles(&Password::Default).await.unwrap().len(),
        3
    );
    assert!(cwtch.list_profiles(&new).await.unwrap().is_empty());

    // Export while loaded, delete, import again.
    let archive = w.dir.path().join("carol.tar.gz");
    cwtch.export_profile(&carol, &archive).await.unwrap();
    assert!(matches!(
        cwtch.delete_profile(&carol, &new).await,
        Err(Error::Storage(cwtch_storage::Error::WrongPassword))
    ));
    cwtch
        .delete_profile(&carol, &Password::Default)
        .await
        .unwrap();
    assert!(p.is_shut_down());
    assert_eq!(
        cwtch.list_profiles(&Password::Default).await.unwrap().len(),
        2
    );
    let info = cwtch
        .import_profile(&archive, &Password::Default)
        .await
        .unwrap();
    assert_eq!(info.name, "Carol");
    assert_eq!(info.profile_id, carol);
    assert_eq!(
        cwtch.list_profiles(&Password::Default).await.unwrap().len(),
        3
    );
    cwtch.shutdown().await;
}
