//! The connection's framing and demultiplexing against a scripted peer on a socket pair.
//! The peer only speaks frames in the orders the daemon may produce them; the lock
//! manager's behaviour is tested against the real daemon elsewhere.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::*;
use crate::api::{Callback, DaemonFrame};
use crate::wire::{put_frame, take_frame, CLIENT_PROTOCOL};

/// The daemon's end of the socket.
struct Peer {
    s: UnixStream,
    buf: Vec<u8>,
    /// The client's Hello was read (and checked).
    heard_hello: bool,
}

impl Peer {
    async fn recv(&mut self) -> ClientFrame {
        loop {
            if let Some((f, n)) = take_frame::<ClientFrame>(&self.buf).expect("client frame") {
                self.buf.drain(..n);
                if !self.heard_hello {
                    assert_eq!(
                        f,
                        ClientFrame::Hello {
                            protocol: CLIENT_PROTOCOL
                        },
                        "the client's first frame"
                    );
                    self.heard_hello = true;
                    continue;
                }
                return f;
            }
            let n = self.s.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "client closed the connection");
        }
    }

    /// The next frame must be a lock call; its req and request.
    async fn recv_call(&mut self) -> (u64, Request) {
        match self.recv().await {
            ClientFrame::Call { req, request } => (req, request),
            f => panic!("expected a call, got {f:?}"),
        }
    }

    async fn send(&mut self, frames: &[DaemonFrame]) {
        let mut b = Vec::new();
        for f in frames {
            put_frame(f, &mut b);
        }
        self.s.write_all(&b).await.expect("write");
    }

    /// True once the client closed its end.
    async fn eof(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await,
            Ok(Ok(0))
        )
    }
}

/// A client and a scripted daemon that has said its Hello.
fn pair() -> (Client, Peer) {
    let (c, p) = pair_unsaid();
    let mut hello = Vec::new();
    put_frame(
        &DaemonFrame::Hello {
            protocol: CLIENT_PROTOCOL,
        },
        &mut hello,
    );
    // An empty socket buffer takes a few bytes at once.
    assert_eq!(p.s.try_write(&hello).expect("write Hello"), hello.len());
    (c, p)
}

/// A client and a scripted daemon that has said nothing.
fn pair_unsaid() -> (Client, Peer) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (
        Client::from_stream(a, PathBuf::from("/test/hydra-dlm.sock")).expect("client"),
        Peer {
            s: b,
            buf: Vec::new(),
            heard_hello: false,
        },
    )
}

fn reply(req: u64, lkid: u32) -> DaemonFrame {
    DaemonFrame::Reply {
        req,
        result: Ok(lkid),
    }
}

fn cast(ls: &str, lkid: u32, status: Status, mode: Option<Mode>) -> DaemonFrame {
    DaemonFrame::Callback {
        ls: ls.into(),
        cb: Callback::Completion {
            lkid,
            status,
            mode,
            sbflags: 0,
            lvb: None,
        },
    }
}

fn counts(c: &Client) -> (usize, usize, usize) {
    c.inner.shared.demux().counts()
}

/// Wait until the reader has taken in what the peer sent.
async fn settle(c: &Client, want: (usize, usize, usize)) {
    for _ in 0..500 {
        if counts(c) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("demux counts {:?}, want {want:?}", counts(c));
}

#[tokio::test]
async fn a_completion_before_its_reply_reaches_the_lock() {
    let (c, mut p) = pair();
    let c2 = c.clone();
    let t =
        tokio::spawn(async move { c2.lock("ls1", b"res", Mode::EX, Flags(0), None, None).await });
    let (req, r) = p.recv_call().await;
    assert!(
        matches!(r, Request::Lock { ref name, mode: Mode::EX, lkid: 0, bast: false, .. } if name == b"res")
    );
    // The daemon's order for an immediate grant: the callback, then the reply.
    p.send(&[
        cast("ls1", 7, Status::Granted, Some(Mode::EX)),
        reply(req, 7),
    ])
    .await;
    let mut l = t.await.unwrap().expect("accepted");
    assert_eq!(l.lkid(), 7);
    let g = l.completion().await.unwrap();
    assert!(g.granted() && g.mode == Some(Mode::EX));
    assert_eq!(l.mode(), Some(Mode::EX));

    // Unlock: reply first this time, then the final completion.
    let c3 = c.clone();
    let u = tokio::spawn(async move {
        let r = l.unlock_wait(None).await;
        (l, r)
    });
    let (req, r) = p.recv_call().await;
    assert_eq!(
        r,
        Request::Unlock {
            ls: "ls1".into(),
            lkid: 7,
            flags: Flags(0),
            lvb: None
        }
    );
    p.send(&[reply(req, 7), cast("ls1", 7, Status::Unlock, None)])
        .await;
    let (mut l, r) = u.await.unwrap();
    assert_eq!(r.unwrap().status, Status::Unlock);
    assert!(l.ended());
    assert_eq!(l.completion().await.unwrap_err().code, ENOENT);
    drop(l);
    // Nothing pending, no route, nothing buffered; an ended lock sends nothing on drop.
    settle(&c3, (0, 0, 0)).await;
    let q = tokio::spawn(async move { c3.query(Query::Dump).await });
    assert!(matches!(
        p.recv().await,
        ClientFrame::Query {
            query: Query::Dump,
            ..
        }
    ));
    drop(q);
}

#[tokio::test]
async fn many_tasks_with_replies_in_any_order() {
    let (c, mut p) = pair();
    const N: usize = 64;
    let mut tasks = Vec::new();
    for i in 0..N {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("r{i}");
            let (l, g) = c
                .lock_wait("ls", name.as_bytes(), Mode::PR, Flags(0), None, None)
                .await
                .unwrap();
            // The peer puts the resource name into the value block: the completion
            // must be this lock's.
            let lvb = g.lvb.expect("lvb");
            assert_eq!(&lvb[..name.len()], name.as_bytes());
            l.detach()
        }));
    }
    let mut calls = Vec::new();
    for _ in 0..N {
        let (req, r) = p.recv_call().await;
        let Request::Lock { name, .. } = r else {
            panic!("{r:?}")
        };
        calls.push((req, name));
    }
    // Answer in reverse order; even ones callback-first, odd ones reply-first, and a
    // few blocking callbacks nobody asked for in between.
    let mut frames = Vec::new();
    for (k, (req, name)) in calls.iter().enumerate().rev() {
        let lkid = 100 + k as u32;
        let mut lvb = [0u8; 32];
        lvb[..name.len()].copy_from_slice(name);
        let cb = DaemonFrame::Callback {
            ls: "ls".into(),
            cb: Callback::Completion {
                lkid,
                status: Status::Granted,
                mode: Some(Mode::PR),
                sbflags: 0,
                lvb: Some(lvb),
            },
        };
        if k % 2 == 0 {
            frames.push(cb);
            frames.push(reply(*req, lkid));
        } else {
            frames.push(reply(*req, lkid));
            frames.push(cb);
        }
    }
    p.send(&frames).await;
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (100..100 + N as u32).collect::<Vec<_>>());
    // Detached locks keep a route (to drop their callbacks) until they end.
    settle(&c, (0, N, 0)).await;
}

/// Callers woken by one read make their next calls while the connection is corked
/// (io.rs): every one of those calls reaches the daemon without anything more from it.
#[tokio::test]
async fn calls_made_by_callers_one_read_woke_are_all_sent() {
    let (c, mut p) = pair();
    // Fewer calls than the cork writes on its own (CORK_BYTES): only the uncork sends them.
    const N: usize = 4;
    let mut tasks = Vec::new();
    for i in 0..N {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (l, _) = c
                .lock_wait(
                    "ls",
                    format!("r{i}").as_bytes(),
                    Mode::EX,
                    Flags(0),
                    None,
                    None,
                )
                .await
                .unwrap();
            l.unlock(None).await.unwrap();
            l.detach();
        }));
    }
    let mut frames = Vec::new();
    for k in 0..N {
        let (req, _) = p.recv_call().await;
        let lkid = 1 + k as u32;
        frames.push(cast("ls", lkid, Status::Granted, Some(Mode::EX)));
        frames.push(reply(req, lkid));
    }
    p.send(&frames).await; // one write: one read wakes all N callers
    let mut unlocks = Vec::new();
    for _ in 0..N {
        let call = tokio::time::timeout(Duration::from_secs(5), p.recv_call())
            .await
            .expect("an unlock call held back by the cork");
        let (req, Request::Unlock { lkid, .. }) = call else {
            panic!("{call:?}")
        };
        unlocks.push(lkid);
        p.send(&[reply(req, 0)]).await;
    }
    unlocks.sort_unstable();
    assert_eq!(unlocks, (1..=N as u32).collect::<Vec<_>>());
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn blocking_callbacks_go_to_the_given_channel_only_when_asked() {
    let (c, mut p) = pair();
    let (btx, mut brx) = mpsc::unbounded_channel();
    let c2 = c.clone();
    let t = tokio::spawn(async move {
        c2.lock_wait("a", b"x", Mode::EX, Flags(0), None, Some(btx))
            .await
    });
    let (req, r) = p.recv_call().await;
    assert!(matches!(r, Request::Lock { bast: true, .. }));
    p.send(&[reply(req, 3), cast("a", 3, Status::Granted, Some(Mode::EX))])
        .await;
    let (l, _) = t.await.unwrap().unwrap();
    p.send(&[DaemonFrame::Callback {
        ls: "a".into(),
        cb: Callback::Blocking {
            lkid: 3,
            mode: Mode::PR,
        },
    }])
    .await;
    assert_eq!(
        brx.recv().await,
        Some(Blocked {
            ls: "a".into(),
            lkid: 3,
            mode: Mode::PR
        })
    );
    // A conversion keeps asking for blocking callbacks.
    let c3 = c.clone();
    let conv = tokio::spawn(async move {
        let r = l.convert(Mode::NL, Flags(0), None).await;
        (l, r)
    });
    let (req, r) = p.recv_call().await;
    assert!(
        matches!(
            r,
            Request::Lock {
                lkid: 3,
                bast: true,
                mode: Mode::NL,
                ..
            }
        ) && matches!(r, Request::Lock { flags, .. } if flags.has(Flags::CONVERT))
    );
    p.send(&[cast("a", 3, Status::Granted, Some(Mode::NL)), reply(req, 3)])
        .await;
    let (mut l, r) = conv.await.unwrap();
    r.unwrap();
    assert_eq!(l.completion().await.unwrap().mode, Some(Mode::NL));

    // Without a channel the request says so.
    let t = tokio::spawn(async move { c3.lock("a", b"y", Mode::EX, Flags(0), None, None).await });
    let (req, r) = p.recv_call().await;
    assert!(matches!(r, Request::Lock { bast: false, .. }));
    p.send(&[DaemonFrame::Reply {
        req,
        result: Err(Errno::new(22, "bad")),
    }])
    .await;
    let e = t.await.unwrap().unwrap_err();
    assert_eq!((e.code, e.detail.as_str()), (22, "bad"));
    l.detach();
}

#[tokio::test]
async fn noqueue_refusal_ends_the_lock_at_its_first_completion() {
    let (c, mut p) = pair();
    let c2 = c.clone();
    let t = tokio::spawn(async move {
        c2.lock_wait("a", b"x", Mode::EX, Flags(Flags::NOQUEUE), None, None)
            .await
    });
    let (req, _) = p.recv_call().await;
    p.send(&[cast("a", 5, Status::Again, None), reply(req, 5)])
        .await;
    let (l, g) = t.await.unwrap().unwrap();
    assert_eq!((g.status, g.mode), (Status::Again, None));
    assert!(l.ended());
    drop(l); // ended: sends no unlock
    settle(&c, (0, 0, 0)).await;
}

#[tokio::test]
async fn a_dropped_handle_releases_its_lock_and_a_detached_one_does_not() {
    let (c, mut p) = pair();
    for (lkid, detach) in [(11u32, false), (12, true)] {
        let c2 = c.clone();
        let t = tokio::spawn(async move {
            c2.lock_wait("a", b"x", Mode::EX, Flags(0), None, None)
                .await
        });
        let (req, _) = p.recv_call().await;
        p.send(&[
            reply(req, lkid),
            cast("a", lkid, Status::Granted, Some(Mode::EX)),
        ])
        .await;
        let (l, _) = t.await.unwrap().unwrap();
        if detach {
            assert_eq!(l.detach(), 12);
        } else {
            drop(l);
            let (req, r) = p.recv_call().await;
            assert_eq!(
                r,
                Request::Unlock {
                    ls: "a".into(),
                    lkid: 11,
                    flags: Flags(Flags::FORCEUNLOCK),
                    lvb: None
                }
            );
            // Its reply and completion go nowhere, and the route goes with the end.
            p.send(&[reply(req, 11), cast("a", 11, Status::Unlock, None)])
                .await;
        }
    }
    // The detached lock sent nothing: the next frame is this query.
    let c2 = c.clone();
    let q = tokio::spawn(async move { c2.query(Query::Status { verbose: true }).await });
    let ClientFrame::Query { req, query } = p.recv().await else {
        panic!("expected the query")
    };
    assert_eq!(query, Query::Status { verbose: true });
    p.send(&[DaemonFrame::Text {
        req,
        result: Ok("cluster nodeid 1 quorate 1\n".into()),
    }])
    .await;
    assert_eq!(q.await.unwrap().unwrap(), "cluster nodeid 1 quorate 1\n");
    settle(&c, (0, 1, 0)).await; // the detached lock's route
}

#[tokio::test]
async fn a_lock_call_given_up_before_its_reply_releases_the_lock() {
    let (c, mut p) = pair();
    // The caller's future dropped while the request is in flight.
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.lock("a", b"x", Mode::EX, Flags(0), None, None).await });
    let (req, _) = p.recv_call().await;
    t.abort();
    let _ = t.await;
    p.send(&[reply(req, 21)]).await;
    let (_, r) = p.recv_call().await;
    assert!(matches!(r, Request::Unlock { lkid: 21, flags, .. } if flags.has(Flags::FORCEUNLOCK)));

    // The reply already delivered, but the future dropped before it was polled again.
    // Boxed, not pinned on the stack, so that `drop` below really drops it.
    let mut fut = Box::pin(c.lock("a", b"y", Mode::EX, Flags(0), None, None));
    assert!(tokio::time::timeout(Duration::from_millis(1), &mut fut)
        .await
        .is_err());
    let (req, _) = p.recv_call().await;
    p.send(&[reply(req, 22)]).await;
    // Wait until the reader delivered it: only the release of 21 remains pending.
    settle(&c, (1, 2, 0)).await;
    drop(fut);
    let (_, r) = p.recv_call().await;
    assert!(matches!(r, Request::Unlock { lkid: 22, flags, .. } if flags.has(Flags::FORCEUNLOCK)));
}

#[tokio::test]
async fn callbacks_for_unknown_locks_are_not_kept() {
    let (c, mut p) = pair();
    // No lock call in flight: dropped at once.
    p.send(&[cast("a", 99, Status::Granted, Some(Mode::EX))])
        .await;
    // A call answered after it proves the reader has handled the callback.
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.fence_ack(2).await });
    let (req, _) = p.recv_call().await;
    p.send(&[reply(req, 0)]).await;
    t.await.unwrap().unwrap();
    settle(&c, (0, 0, 0)).await;
    // With one in flight, kept until its reply, then dropped with it.
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.lock("a", b"x", Mode::EX, Flags(0), None, None).await });
    let (req, _) = p.recv_call().await;
    p.send(&[cast("a", 98, Status::Granted, Some(Mode::EX))])
        .await;
    settle(&c, (1, 0, 1)).await;
    p.send(&[reply(req, 31)]).await;
    let l = t.await.unwrap().unwrap();
    settle(&c, (0, 1, 0)).await;
    l.detach();
}

#[tokio::test]
async fn when_the_daemon_goes_away_every_waiter_hears_why() {
    let (c, mut p) = pair();
    let c2 = c.clone();
    let t = tokio::spawn(async move {
        c2.lock_wait("a", b"x", Mode::EX, Flags(0), None, None)
            .await
    });
    let (req, _) = p.recv_call().await;
    p.send(&[reply(req, 41)]).await; // accepted, waiting for its grant
    let c3 = c.clone();
    let q = tokio::spawn(async move { c3.query(Query::Dump).await });
    let _ = p.recv().await;
    let c4 = c.clone();
    let watch = tokio::spawn(async move { c4.closed().await });
    drop(p);
    let e = t.await.unwrap().unwrap_err();
    assert_eq!(e.code, ENOTCONN);
    assert!(
        e.detail.contains("/test/hydra-dlm.sock") && e.detail.contains("closed the connection"),
        "{}",
        e.detail
    );
    assert_eq!(q.await.unwrap().unwrap_err().code, ENOTCONN);
    assert_eq!(watch.await.unwrap().code, ENOTCONN);
    // Later calls fail at once with the same reason.
    assert_eq!(c.join("a").await.unwrap_err(), e);
    assert_eq!(c.closed_reason(), Some(e));
    settle(&c, (0, 0, 0)).await;
}

#[tokio::test]
async fn a_frame_that_does_not_decode_ends_the_connection() {
    let (c, mut p) = pair();
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.join("a").await });
    let _ = p.recv_call().await;
    p.s.write_all(&[0, 0, 0, 1, 0xff]).await.unwrap();
    let e = t.await.unwrap().unwrap_err();
    assert_eq!(e.code, EPROTO, "{e:?}");
    assert!(e.detail.contains("bad frame"), "{}", e.detail);
    assert!(p.eof().await, "the client closes after a bad frame");
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_socket() {
    let (c, mut p) = pair();
    let c2 = c.clone();
    drop(c);
    // Still open while a clone lives: a call goes through.
    let t = tokio::spawn(async move {
        let r = c2.fence_ack(3).await;
        drop(c2);
        r
    });
    let (req, r) = p.recv_call().await;
    assert_eq!(r, Request::FenceAck { node: 3 });
    p.send(&[reply(req, 0)]).await;
    t.await.unwrap().unwrap();
    assert!(p.eof().await);
}

#[tokio::test]
async fn a_convert_flag_on_a_new_lock_is_refused_here() {
    let (c, _p) = pair();
    let e = c
        .lock("a", b"x", Mode::EX, Flags(Flags::CONVERT), None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code, 22);
}

#[tokio::test]
async fn names_too_long_for_the_wire_are_refused_before_sending() {
    let (c, mut p) = pair();
    let long = "l".repeat(65);
    let e = c.join(&long).await.unwrap_err();
    assert_eq!(e.code, 22);
    assert!(
        e.detail.contains("lockspace name is 65 bytes, at most 64"),
        "{e:?}"
    );
    let e = c
        .lock("a", &[b'r'; 65], Mode::EX, Flags(0), None, None)
        .await
        .unwrap_err();
    assert!(e.detail.contains("resource name is 65 bytes"), "{e:?}");
    // Nothing was sent, and the connection is still good.
    let c2 = c.clone();
    let t = tokio::spawn(async move { c2.join("a").await });
    let (req, r) = p.recv_call().await;
    assert_eq!(r, Request::Join { ls: "a".into() });
    p.send(&[reply(req, 0)]).await;
    t.await.unwrap().unwrap();
}

#[test]
fn errnos_read_well() {
    assert_eq!(
        describe(&Errno::new(16, "lockspace \"a\" has locks")),
        "EBUSY: lockspace \"a\" has locks"
    );
    assert_eq!(describe(&Errno::new(2, "")), "ENOENT");
    assert_eq!(describe(&Errno::new(4242, "x")), "errno 4242: x");
}

/// Every call on `c` fails with EPROTO and a message containing `want`.
async fn refused_with(c: &Client, want: &str) {
    let e = tokio::time::timeout(Duration::from_secs(5), c.query(Query::Dump))
        .await
        .expect("answered in time")
        .expect_err("refused");
    assert_eq!(e.code, EPROTO, "{e:?}");
    assert!(e.detail.contains(want), "{}", e.detail);
}

#[tokio::test]
async fn a_daemon_of_another_protocol_version_is_refused_by_name() {
    let (c, mut p) = pair_unsaid();
    p.send(&[DaemonFrame::Hello {
        protocol: CLIENT_PROTOCOL + 1,
    }])
    .await;
    refused_with(
        &c,
        &format!(
            "dlm_controld at /test/hydra-dlm.sock: it speaks client protocol {}, this hydra {CLIENT_PROTOCOL}",
            CLIENT_PROTOCOL + 1
        ),
    )
    .await;
}

#[tokio::test]
async fn a_daemon_that_answers_before_its_hello_is_refused() {
    let (c, mut p) = pair_unsaid();
    let query = c.query(Query::Dump);
    let daemon = async {
        let ClientFrame::Query { req, .. } = p.recv().await else {
            panic!("expected the query");
        };
        p.send(&[DaemonFrame::Text {
            req,
            result: Ok("old".into()),
        }])
        .await;
    };
    let (e, ()) = tokio::join!(query, daemon);
    let e = e.expect_err("refused");
    assert!(
        e.detail.contains("answered before saying Hello"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn a_daemon_that_closes_before_its_hello_is_named_as_perhaps_older() {
    let (c, mut p) = pair_unsaid();
    // As a daemon older than the Hello does: it reads the client's first frames,
    // refuses the Hello as an unknown frame and closes the connection.
    let query = c.query(Query::Dump);
    let daemon = async move {
        let _query = p.recv().await;
        drop(p);
    };
    let (e, ()) = tokio::join!(query, daemon);
    let e = e.expect_err("refused");
    assert!(
        e.detail
            .contains("closed the connection before saying Hello"),
        "{}",
        e.detail
    );
}
