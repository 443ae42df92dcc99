//! The SOCKS5 client that dials onions through Tor, driven against an in-memory proxy that
//! answers with the fuzz bytes (handed out in small pieces, with partial writes and spurious
//! `Pending`s).
//!
//! Asserts, against an independent model of RFC 1928/1929 and Tor's replies: the client
//! succeeds, or fails with the same reply code, protocol problem or end of input, as the model;
//! it writes exactly the greeting, the authentication and the CONNECT request it reached; on
//! success it has consumed exactly the reply and nothing of the tunnelled bytes after it; every
//! failure maps to a typed error, retryable whenever a retry can help.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use connectivity::fuzzing::{
    failure_error, retry_helps, socks_connect, socks_credentials, SocksFailure,
};
use connectivity::{IsolationKey, SocksProblem};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The proxy: reads come from `input` at most `piece` bytes at a time; writes are recorded.
struct Proxy<'a> {
    input: &'a [u8],
    pos: usize,
    piece: usize,
    stall: bool,
    polls: u32,
    written: Vec<u8>,
}

impl Proxy<'_> {
    /// Every third poll (if `stall`) says "not yet", after waking the task.
    fn not_yet(&mut self, cx: &mut Context<'_>) -> bool {
        self.polls += 1;
        if self.stall && self.polls % 3 == 0 {
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }
}

impl AsyncRead for Proxy<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.not_yet(cx) {
            return Poll::Pending;
        }
        let n = this
            .piece
            .min(buf.remaining())
            .min(this.input.len() - this.pos);
        buf.put_slice(&this.input[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Proxy<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.not_yet(cx) {
            return Poll::Pending;
        }
        let n = this.piece.min(buf.len());
        this.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the client should conclude, comparably.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Connected; the reply was this many bytes.
    Connected(usize),
    Reply(u8),
    Protocol(SocksProblem),
    /// The proxy closed before a complete reply.
    Eof,
}

/// How far the exchange got: 1 greeting sent, 2 authentication sent, 3 CONNECT sent.
type Stage = usize;

/// RFC 1928 + RFC 1929 + Tor, as the client must read it.
fn model(r: &[u8]) -> (Outcome, Stage) {
    use Outcome::*;
    let need = |n: usize| r.len() >= n;
    if !need(2) {
        return (Eof, 1);
    }
    if r[0] != 5 {
        return (Protocol(SocksProblem::BadVersion(r[0])), 1);
    }
    if r[1] != 2 {
        return (Protocol(SocksProblem::NoAcceptableMethod), 1);
    }
    if !need(4) {
        return (Eof, 2);
    }
    if r[2] != 1 {
        return (Protocol(SocksProblem::BadVersion(r[2])), 2);
    }
    if r[3] != 0 {
        return (Protocol(SocksProblem::AuthRejected), 2);
    }
    if !need(8) {
        return (Eof, 3);
    }
    if r[4] != 5 {
        return (Protocol(SocksProblem::BadVersion(r[4])), 3);
    }
    if r[5] != 0 {
        return (Reply(r[5]), 3);
    }
    let total = match r[7] {
        1 => 8 + 4 + 2,
        4 => 8 + 16 + 2,
        3 => {
            if !need(9) {
                return (Eof, 3);
            }
            9 + usize::from(r[8]) + 2
        }
        other => return (Protocol(SocksProblem::BadAddressType(other)), 3),
    };
    if !need(total) {
        return (Eof, 3);
    }
    (Connected(total), 3)
}

const PORT: u16 = 9878;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let onion = torv3::Identity::from_seed(&[9; 32]).onion();
    let host = format!("{}.onion", onion.as_str());
    let key = IsolationKey::new(format!("conn-{}", first >> 5));
    let (user, pass) = socks_credentials(&key);

    let mut proxy = Proxy {
        input,
        pos: 0,
        piece: usize::from(first & 0x0f) + 1,
        stall: first & 0x10 != 0,
        polls: 0,
        written: Vec::new(),
    };
    let result = {
        let mut fut = pin!(socks_connect(&mut proxy, &host, PORT, &user, pass));
        let mut cx = Context::from_waker(Waker::noop());
        let mut polls = 0u32;
        loop {
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                break r;
            }
            // Nothing here blocks: a future that keeps pending is a bug.
            polls += 1;
            assert!(polls < 10_000, "the SOCKS client does not finish");
        }
    };

    let got = match &result {
        Ok(()) => Outcome::Connected(proxy.pos),
        Err(SocksFailure::Reply(code)) => Outcome::Reply(*code),
        Err(SocksFailure::Protocol(p)) => Outcome::Protocol(*p),
        Err(SocksFailure::Io(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            Outcome::Eof
        }
    };
    let (want, stage) = model(input);
    assert_eq!(got, want);

    // Exactly the messages of the stages reached, nothing else.
    let mut expected = vec![5, 1, 2];
    if stage >= 2 {
        expected.extend_from_slice(&[1, u8::try_from(user.len()).expect("short")]);
        expected.extend_from_slice(&user);
        expected.push(u8::try_from(pass.len()).expect("short"));
        expected.extend_from_slice(pass);
    }
    if stage >= 3 {
        expected.extend_from_slice(&[5, 1, 0, 3, u8::try_from(host.len()).expect("short")]);
        expected.extend_from_slice(host.as_bytes());
        expected.extend_from_slice(&PORT.to_be_bytes());
    }
    assert_eq!(proxy.written, expected);

    if let Err(failure) = result {
        let retryable = match &failure {
            SocksFailure::Reply(code) => retry_helps(*code),
            _ => false,
        };
        let error = failure_error(failure, &onion, PORT);
        if retryable {
            assert!(error.is_retryable(), "{error}");
        }
        let _ = error.to_string();
    }
});
