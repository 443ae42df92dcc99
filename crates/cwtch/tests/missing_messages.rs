//! `GroupInfo::missing` counts messages that never arrived, not reports of them: a dropped
//! message named twice is one missing message, and one that arrives after a later message named
//! it (reordered in a replay batch, or live) is not missing at all. (Found by the hostile-server
//! tests: the first version counted 4 here.)

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use common::*;
use cwtch::ServerState;
use hostile::*;
use rand_core::OsRng;
use tapir::Identity;

/// `GroupEntry::missing` is documented as "messages referenced by a PreviousMessageSig that
/// never arrived". One dropped message referred to by two later ones is one missing message;
/// a message that arrives after a later one referred to it (reordering, in one replay batch or
/// live) is not missing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_counts_messages_that_never_arrived() {
    let w = World::new();
    let mut server = HostileServer::start(w.acn()).await;
    let bob = peer(&w, "bob", fast_config()).await;
    let mut events = Recorder::new(bob.cwtch.events());
    let group = server.group();
    let info = bob
        .profile
        .join_group(&server.invite(&group, "hostile"))
        .await
        .unwrap();
    let conv = info.conversation_id;
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await, None);
    let (alice, carol, dave) = (
        Identity::generate(&mut OsRng),
        Identity::generate(&mut OsRng),
        Identity::generate(&mut OsRng),
    );
    let a1 = seal(&group, &alice, "a1", None);
    let a2 = seal(&group, &alice, "a2", Some(&a1)); // dropped by the server
    let c1 = seal(&group, &carol, "c1", Some(&a2)); // both name a2
    let d1 = seal(&group, &dave, "d1", Some(&a2));
    let r1 = seal(&group, &alice, "r1", Some(&d1));
    let r2 = seal(&group, &carol, "r2", Some(&r1)); // served before r1, in the same replay
    conn.replay(&[&a1, &c1, &d1, &r2, &r1]).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    let q1 = seal(&group, &dave, "q1", Some(&r2));
    let q2 = seal(&group, &alice, "q2", Some(&q1)); // live, before q1
    conn.live(&q2).await;
    conn.live(&q1).await;
    events.until("q1", group_text("q1")).await;
    let info = bob.profile.group(conv).await.unwrap();
    assert_eq!(info.messages, 7);
    // Library today: 4 (a2 twice, r1 and q1 although both arrived).
    assert_eq!(info.missing, 1, "only a2 never arrived");
    drop(conn);
    bob.shutdown().await;
}
