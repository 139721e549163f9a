//! `hydra dlm_controld` end to end on one node: a real corosync in a network namespace
//! (tests/common/cluster.rs), the daemon started in it with `-f`, and clients speaking
//! the socket protocol with raw frames (hydra_dlm::wire): join, EX lock granted, a
//! second client's EX with NOQUEUE refused with EAGAIN, unlock; a client sending garbage
//! is disconnected and nobody else notices; a client that goes away loses its locks (and
//! a request queued behind them, marked to be answered with its completion, gets its
//! reply only with the grant);
//! dlm_tool's queries answer; a second daemon on the same run directory is refused;
//! SIGTERM is ignored while a lockspace exists and ends the daemon once none does,
//! answering what its clients had sent first and removing its socket and pid file.
//!
//! Every wait has a time limit and fails with the daemon's output.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::{DlmDaemon, LIMIT};
use common::{hydra, signal, text};
use hydra_dlm::api::{Callback, ClientFrame, DaemonFrame, Errno, Query, Request};
use hydra_dlm::flags::{Flags, Status};
use hydra_dlm::mode::Mode;
use hydra_dlm::wire::{put_frame, take_frame, CLIENT_PROTOCOL, REPLY_WITH_COMPLETION};

const LS: &str = "test";

#[test]
fn one_node_locks_over_the_socket() {
    let cluster = Cluster::start(1);
    let dir = cluster.dir(1).to_path_buf();
    let run = dir.join("run");
    let conf = dir.join("dlm.conf");
    std::fs::write(&conf, "# one node: nothing to fence\nport=21064\n").unwrap();
    let mut daemon = DlmDaemon::start(&cluster, 1, &conf);
    assert_eq!(daemon.run_dir(), run);

    // Join, then an EX lock: its completion and the call's reply.
    let mut a = connect(&daemon);
    assert_eq!(a.call(1, Request::Join { ls: LS.into() }), Ok(0));
    let lk_a = a.call(2, lock(b"res", Mode::EX, 0)).expect("lock accepted");
    a.expect_completion(lk_a, Status::Granted, Some(Mode::EX));

    // Another client: EX with NOQUEUE cannot be granted now.
    let mut b = connect(&daemon);
    let lk_b = b
        .call(1, lock(b"res", Mode::EX, Flags::NOQUEUE))
        .expect("lock accepted");
    b.expect_completion(lk_b, Status::Again, None);

    // A client sending garbage is closed; the others carry on.
    let mut c = connect(&daemon);
    c.stream.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    c.expect_closed();
    // A client of another protocol version hears the daemon's and is refused by name;
    // so is one that calls before its Hello (a client older than the Hello).
    let mut v = connect_unsaid(&daemon);
    v.send(&ClientFrame::Hello {
        protocol: CLIENT_PROTOCOL + 98,
    });
    let said = v.wait("the daemon's Hello", |f| match f {
        DaemonFrame::Hello { protocol } => Some(*protocol),
        _ => None,
    });
    assert_eq!(said, CLIENT_PROTOCOL);
    v.expect_closed();
    let mut o = connect_unsaid(&daemon);
    o.send(&ClientFrame::Query {
        req: 1,
        query: Query::Dump,
    });
    o.expect_closed();
    let dump = a.query(90, Query::Dump);
    let want = format!(
        "speaks client protocol {}, this dlm_controld {CLIENT_PROTOCOL}",
        CLIENT_PROTOCOL + 98
    );
    assert!(dump.contains(&want), "{dump}");
    assert!(dump.contains("called before saying Hello"), "{dump}");
    assert_eq!(a.call(3, unlock(lk_a)), Ok(lk_a));
    a.expect_completion(lk_a, Status::Unlock, None);
    let ls = b.query(
        2,
        Query::Ls {
            name: None,
            nodes: true,
        },
    );
    assert!(ls.contains("name          test\n"), "{ls}");
    assert!(ls.contains("members       1 \n"), "{ls}");
    assert!(ls.contains("nodeid 1 member 1 failed 0 start 1"), "{ls}");

    // B takes the lock now; lockdump shows it with B's pid (this process).
    let lk_b = b.call(3, lock(b"res", Mode::EX, 0)).expect("lock accepted");
    b.expect_completion(lk_b, Status::Granted, Some(Mode::EX));
    let dump = b.query(
        4,
        Query::Lockdump {
            ls: LS.into(),
            master_copies: true,
        },
    );
    assert_eq!(
        dump,
        format!(
            "id {lk_b:08x} gr EX rq IV pid {} master 0 \"res\"\n",
            std::process::id()
        )
    );
    let debug = b.query(5, Query::Lockdebug { ls: LS.into() });
    assert!(
        debug.contains("Resource len  3  \"res\"\nMaster "),
        "{debug}"
    );
    let status = b.query(6, Query::Status { verbose: false });
    assert!(
        status.starts_with("cluster nodeid 1 quorate 1 ring seq "),
        "{status}"
    );
    assert!(status.contains("\nnode 1 M add "), "{status}");
    let config = b.query(7, Query::DumpConfig);
    assert!(config.contains("port=21064 (dlm.conf)\n"), "{config}");
    assert_eq!(
        b.call_err(
            8,
            Request::Lock {
                ls: "nope".into(),
                name: b"x".to_vec(),
                mode: Mode::NL,
                flags: Flags(0),
                lvb: None,
                bast: false,
                lkid: 0,
            }
        ),
        2,
        "ENOENT for an unknown lockspace"
    );

    // B goes away: its lock goes with it, and A's EX, queued behind it, is granted. A
    // asks for the reply with the completion (REPLY_WITH_COMPLETION): while the request
    // waits behind B's lock nothing is answered, then both come together.
    let req = 4 | REPLY_WITH_COMPLETION;
    a.send(&ClientFrame::Call {
        req,
        request: lock(b"res", Mode::EX, 0),
    });
    assert!(a.pump(), "the daemon closed A's connection");
    assert!(
        a.frames.is_empty(),
        "answered before the grant: {:?}",
        a.frames
    );
    drop(b);
    let lk_a = a
        .wait("reply", |f| match f {
            DaemonFrame::Reply { req: r, result } if *r == req => Some(result.clone()),
            _ => None,
        })
        .expect("lock accepted");
    a.expect_completion(lk_a, Status::Granted, Some(Mode::EX));

    // SIGTERM is ignored while a lockspace exists, as dlm_controld does.
    signal(daemon.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.running(), "the daemon stopped");
    let log = a.query(5, Query::Dump);
    assert!(
        log.contains("SIGTERM: shutdown ignored, active lockspaces: test"),
        "{log}"
    );

    // A second daemon on the same run directory is refused.
    let second = cluster
        .command(1, hydra())
        .args(["dlm_controld", "-f", "--run-dir"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        text(&second).contains("dlm_controld is already running"),
        "{}",
        text(&second)
    );

    // The debug log: stamped lines for the membership, the bad client and recovery.
    let log = a.query(6, Query::Dump);
    for needle in [
        "confchg dlm:controld members [1] joined [1] left []",
        "quorum: quorate 1",
        "confchg dlm:ls:test members [1] joined [1] left []",
        "test: dlm_recover generation",
    ] {
        assert!(log.contains(needle), "no '{needle}' in the dump:\n{log}");
    }
    let stamped = |l: &str| {
        let (stamp, _) = l.split_once(' ').unwrap_or(("", ""));
        let (s, ms) = stamp.split_once('.').unwrap_or(("", ""));
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && ms.len() == 3
    };
    assert!(log.lines().all(stamped), "{log}");
    assert!(
        log.lines()
            .any(|l| l.split_once(' ').unwrap().1.starts_with("client ")),
        "the bad client is logged:\n{log}"
    );

    // Leave (with the lock: EBUSY; after unlocking: done), then SIGTERM ends it.
    assert_eq!(
        a.call_err(
            7,
            Request::Leave {
                ls: LS.into(),
                force: false
            }
        ),
        16
    );
    assert_eq!(a.call(8, unlock(lk_a)), Ok(lk_a));
    a.expect_completion(lk_a, Status::Unlock, None);
    assert_eq!(
        a.call(
            9,
            Request::Leave {
                ls: LS.into(),
                force: false
            }
        ),
        Ok(0)
    );
    // SIGTERM drains: a query the client sent before it is still answered, then the
    // connection ends; the socket takes no new clients meanwhile.
    // A client that says its Hello together with a query just before the SIGTERM is
    // answered too (its frames may be read by the drain).
    let mut e = connect_unsaid(&daemon);
    e.wait("the daemon's Hello", |f| match f {
        DaemonFrame::Hello { .. } => Some(()),
        _ => None,
    });
    let mut hello_and_query = Vec::new();
    put_frame(
        &ClientFrame::Hello {
            protocol: CLIENT_PROTOCOL,
        },
        &mut hello_and_query,
    );
    put_frame(
        &ClientFrame::Query {
            req: 1,
            query: Query::Dump,
        },
        &mut hello_and_query,
    );
    a.send(&ClientFrame::Query {
        req: 10,
        query: Query::Status { verbose: false },
    });
    e.stream.write_all(&hello_and_query).unwrap();
    signal(daemon.pid(), "TERM");
    let status_text = a.wait("the status sent before SIGTERM", |f| match f {
        DaemonFrame::Text { req: 10, result } => Some(result.clone()),
        _ => None,
    });
    assert!(status_text.is_ok(), "{status_text:?}");
    let dump = e.wait("the dump asked with the Hello", |f| match f {
        DaemonFrame::Text { req: 1, result } => Some(result.clone()),
        _ => None,
    });
    assert!(dump.is_ok(), "{dump:?}");
    a.expect_closed();
    e.expect_closed();
    let status = daemon.wait_gone(LIMIT);
    assert!(
        status.success(),
        "exit status {status}: {}",
        daemon.output()
    );
    assert!(!run.join("hydra-dlm.sock").exists());
    assert!(!run.join("dlm_controld.pid").exists());
}

/// Without corosync the daemon does not start (and says why); a bad dlm.conf stops it
/// before anything (naming file, line and directive). No cluster needed.
#[test]
fn refuses_to_start_with_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dlm.conf");
    std::fs::write(&conf, "enable_fencing=1\nport=70000\n").unwrap();
    let out = std::process::Command::new(hydra())
        .args(["dlm_controld", "-f", "--config"])
        .arg(&conf)
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&format!("{}:2: port", conf.display())),
        "{said}"
    );
    assert!(!dir.path().join("run").exists(), "nothing started");
    let missing = std::process::Command::new(hydra())
        .args(["dlm_controld", "-f", "--config", "/nonexistent/dlm.conf"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("--config /nonexistent/dlm.conf"),
        "{}",
        text(&missing)
    );
}

fn lock(name: &[u8], mode: Mode, flags: u32) -> Request {
    Request::Lock {
        ls: LS.into(),
        name: name.to_vec(),
        mode,
        flags: Flags(flags),
        lvb: None,
        bast: true,
        lkid: 0,
    }
}

fn unlock(lkid: u32) -> Request {
    Request::Unlock {
        ls: LS.into(),
        lkid,
        flags: Flags(0),
        lvb: None,
    }
}

/// A client speaking raw frames to `d`, Hellos said.
fn connect(d: &DlmDaemon) -> Client {
    let mut c = connect_unsaid(d);
    c.send(&ClientFrame::Hello {
        protocol: CLIENT_PROTOCOL,
    });
    let said = c.wait("the daemon's Hello", |f| match f {
        DaemonFrame::Hello { protocol } => Some(*protocol),
        _ => None,
    });
    assert_eq!(said, CLIENT_PROTOCOL);
    c
}

/// A client connected to `d` that has said nothing yet.
fn connect_unsaid(d: &DlmDaemon) -> Client {
    let stream =
        UnixStream::connect(d.socket()).unwrap_or_else(|e| panic!("connect: {e}\n{}", d.output()));
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    Client {
        stream,
        buf: Vec::new(),
        frames: Vec::new(),
    }
}

/// A client speaking raw frames; frames that came but were not asked for yet are kept.
struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    frames: Vec<DaemonFrame>,
}

impl Client {
    fn send(&mut self, frame: &ClientFrame) {
        let mut bytes = Vec::new();
        put_frame(frame, &mut bytes);
        self.stream.write_all(&bytes).unwrap();
    }

    /// Read whatever has arrived (up to 200 ms); false once the daemon closed it.
    fn pump(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
            Err(e) => panic!("read: {e}"),
        }
        while let Some((f, used)) = take_frame::<DaemonFrame>(&self.buf).expect("a good frame") {
            self.buf.drain(..used);
            self.frames.push(f);
        }
        true
    }

    /// The first frame `pick` accepts, waiting for it.
    fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&DaemonFrame) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(i) = self.frames.iter().position(|f| pick(f).is_some()) {
                let f = self.frames.remove(i);
                return pick(&f).expect("picked");
            }
            assert!(
                start.elapsed() < LIMIT,
                "no {what} within {LIMIT:?}; got {:?}",
                self.frames
            );
            assert!(
                self.pump(),
                "the daemon closed the connection waiting for {what}"
            );
        }
    }

    fn call(&mut self, req: u64, request: Request) -> Result<u32, Errno> {
        self.send(&ClientFrame::Call { req, request });
        self.wait("reply", |f| match f {
            DaemonFrame::Reply { req: r, result } if *r == req => Some(result.clone()),
            _ => None,
        })
    }

    fn call_err(&mut self, req: u64, request: Request) -> i32 {
        match self.call(req, request) {
            Ok(v) => panic!("call {req} succeeded ({v})"),
            Err(e) => e.code,
        }
    }

    fn query(&mut self, req: u64, query: Query) -> String {
        self.send(&ClientFrame::Query { req, query });
        self.wait("text", |f| match f {
            DaemonFrame::Text { req: r, result } if *r == req => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("query {req}: {e:?}"))
    }

    fn expect_completion(&mut self, lkid: u32, status: Status, mode: Option<Mode>) {
        let got = self.wait("completion", |f| match f {
            DaemonFrame::Callback {
                cb:
                    Callback::Completion {
                        lkid: l,
                        status,
                        mode,
                        ..
                    },
                ..
            } if *l == lkid => Some((*status, *mode)),
            _ => None,
        });
        assert_eq!(got, (status, mode), "lock {lkid:#x}");
    }

    /// The daemon closes this connection (without a reply; its Hello aside).
    fn expect_closed(&mut self) {
        let start = Instant::now();
        while self.pump() {
            assert!(start.elapsed() < LIMIT, "the connection stays open");
        }
        self.frames
            .retain(|f| !matches!(f, DaemonFrame::Hello { .. }));
        assert!(
            self.frames.is_empty(),
            "nothing is answered: {:?}",
            self.frames
        );
    }
}
