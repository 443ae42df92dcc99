//! A group's members and unread count (`ProfileStore::authors`) in a SQLCipher profile whose
//! group has 10 000 messages from 20 authors: the store's one SQL pass, against reading every
//! message out (what `ProfileHandle::group` did before), measured in the same run. And a
//! contact's unread count (`ProfileStore::count_after`, 100 messages after the last read) in
//! the same conversation: counted in SQL over those rows only, against reading them out. And
//! its file offers (every 100th message; `ProfileStore::messages_containing`, what `cwtch
//! file list` and a download look for): searched in SQL, against reading every message. And
//! what a profile's load looks for in every conversation, our messages not acknowledged
//! (`ProfileStore::messages_where`): selected in SQL, against reading every message. And what
//! a search for `Notes` reads (`ProfileStore::scan_containing_ignore_ascii_case`, the file
//! offers, with their positions): searched in SQL, against reading every message.

#![allow(clippy::unwrap_used)] // a bench that fails should stop loudly

use std::hint::black_box;

use criterion::Throughput;
use cwtch_storage::{
    authors_by_reading, count_after_by_reading, keys, messages_containing_by_reading,
    messages_where_by_reading, scan_containing_ignore_ascii_case_by_reading, AttributeCondition,
    Attributes, CwtchHome, MessageId, NewConversation, NewMessage, Password, ProfileHome,
    ProfileStore,
};

const MESSAGES: usize = 10_000;
const BOB: &str = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";

fn main() {
    let mut c = benchkit::criterion();
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let mut p = home.create_profile("A", &Password::Default).unwrap();
    let conv = p
        .create_conversation(&NewConversation::contact(BOB, true))
        .unwrap();
    // A group message's row: a body as long as a short post, Go's attributes.
    let body = format!(
        r#"{{"o":1,"d":"{}"}}"#,
        "a message of some length ".repeat(8)
    );
    let rows: Vec<(Attributes, String, String)> = (0..MESSAGES)
        .map(|i| {
            let mut a = Attributes::new();
            a.insert(keys::MESSAGE_AUTHOR.into(), format!("author-{:02}", i % 20));
            a.insert(keys::MESSAGE_ACK.into(), keys::TRUE.into());
            a.insert("sent".into(), "2026-12-04T17:00:00Z".into());
            (a, format!("sig-{i}"), format!("hash-{i}"))
        })
        .collect();
    // Every 100th message offers a file (Go's overlay 200 body).
    let offer = r#"{"o":200,"d":"{\"f\":\"notes.txt\",\"h\":\"00\",\"n\":\"00\",\"s\":5}"}"#;
    let batch: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, (a, s, h))| {
            (
                conv,
                NewMessage {
                    body: if i % 100 == 0 { offer } else { &body },
                    attributes: a,
                    signature: s,
                    content_hash: h,
                },
            )
        })
        .collect();
    p.insert_messages(&batch).unwrap();
    let after = MessageId(MESSAGES as i64 - 100);
    let want = authors_by_reading(&p, conv, keys::MESSAGE_AUTHOR, "author-00", after).unwrap();
    assert_eq!(want.names.len(), 19);
    assert_eq!(want.after, 95);
    assert_eq!(
        p.authors(conv, keys::MESSAGE_AUTHOR, "author-00", after)
            .unwrap(),
        want
    );

    let mut g = c.benchmark_group("authors");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(20);
    g.bench_function("read_every_message", |b| {
        b.iter(|| {
            black_box(
                authors_by_reading(&p, conv, keys::MESSAGE_AUTHOR, "author-00", after).unwrap(),
            );
        })
    });
    g.bench_function("sql", |b| {
        b.iter(|| {
            black_box(
                p.authors(conv, keys::MESSAGE_AUTHOR, "author-00", after)
                    .unwrap(),
            );
        })
    });
    g.finish();
    assert_eq!(
        p.count_after(conv, keys::MESSAGE_AUTHOR, "author-00", after)
            .unwrap(),
        95
    );
    let offers = messages_containing_by_reading(&p, conv, "200").unwrap();
    assert_eq!(offers.len(), MESSAGES / 100);
    assert_eq!(p.messages_containing(conv, "200").unwrap(), offers);
    let mut g = c.benchmark_group("offers");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(20);
    g.bench_function("read_every_message", |b| {
        b.iter(|| black_box(messages_containing_by_reading(&p, conv, "200").unwrap()))
    });
    g.bench_function("sql", |b| {
        b.iter(|| black_box(p.messages_containing(conv, "200").unwrap()))
    });
    g.finish();
    let outbox = [
        AttributeCondition::Equals(keys::MESSAGE_AUTHOR, "author-00"),
        AttributeCondition::NotEquals(keys::MESSAGE_ACK, keys::TRUE),
        AttributeCondition::Empty(keys::MESSAGE_ERROR),
    ];
    // The acknowledged ones are not in it; author-00's are.
    assert!(p.messages_where(conv, &outbox).unwrap().is_empty());
    assert_eq!(
        p.messages_where(conv, &outbox[..1]).unwrap(),
        messages_where_by_reading(&p, conv, &outbox[..1]).unwrap()
    );
    assert_eq!(
        p.messages_where(conv, &outbox[..1]).unwrap().len(),
        MESSAGES / 20
    );
    let mut g = c.benchmark_group("outbox");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(20);
    g.bench_function("read_every_message", |b| {
        b.iter(|| black_box(messages_where_by_reading(&p, conv, &outbox).unwrap()))
    });
    g.bench_function("sql", |b| {
        b.iter(|| black_box(p.messages_where(conv, &outbox).unwrap()))
    });
    g.finish();
    let needles = ["Notes", "\\u"];
    let scan = |by_reading: bool| {
        let mut found = Vec::new();
        let mut each = |i: u64, m: cwtch_storage::Message| {
            found.push((i, m.id));
            std::ops::ControlFlow::Continue(())
        };
        if by_reading {
            scan_containing_ignore_ascii_case_by_reading(&p, conv, &needles, &mut each).unwrap();
        } else {
            p.scan_containing_ignore_ascii_case(conv, &needles, &mut each)
                .unwrap();
        }
        found
    };
    let want = scan(true);
    assert_eq!(want.len(), MESSAGES / 100);
    assert_eq!(scan(false), want);
    let mut g = c.benchmark_group("search");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(20);
    g.bench_function("read_every_message", |b| b.iter(|| black_box(scan(true))));
    g.bench_function("sql", |b| b.iter(|| black_box(scan(false))));
    g.finish();
    let mut g = c.benchmark_group("unread");
    g.sample_size(50);
    g.bench_function("read_unread_messages", |b| {
        b.iter(|| {
            black_box(
                count_after_by_reading(&p, conv, keys::MESSAGE_AUTHOR, "author-00", after).unwrap(),
            );
        })
    });
    g.bench_function("sql", |b| {
        b.iter(|| {
            black_box(
                p.count_after(conv, keys::MESSAGE_AUTHOR, "author-00", after)
                    .unwrap(),
            );
        })
    });
    g.finish();
    c.final_summary();
    benchkit::report(&[
        ("authors/sql", "authors/read_every_message"),
        ("unread/sql", "unread/read_unread_messages"),
        ("offers/sql", "offers/read_every_message"),
        ("outbox/sql", "outbox/read_every_message"),
        ("search/sql", "search/read_every_message"),
    ]);
}
