//! The lock manager on three hosts (network namespaces, each with its own corosync and
//! `hydra dlm_controld`), as the multi-host test asks:
//!
//! 1. Host 1 takes EX on `res` and writes its value block; host 3 holds NL (VALBLK) on
//!    it, host 3 holds PR (VALBLK) on `res2` (mastered by host 1 too); host 2 asks EX on
//!    `res` and waits.
//! 2. Host 1's link is cut. Hosts 2 and 3 stay quorate; the test fence agent runs
//!    exactly once for node 1 (it kills host 1's daemon, as a power switch would), and
//!    only then is host 2 granted. The value blocks follow the rules: `res`'s survives
//!    in host 3's NL copy but is marked not valid (only NL/CR holders were left);
//!    `res2`'s survives valid in host 3's PR copy.
//! 3. Host 1 comes back and its daemon restarts: it rejoins cleanly (no new fencing)
//!    and locks again.
//! 4. Host 3 is cut off alone: its fence agent fails, so hosts 1 and 2 wait for fencing;
//!    host 3 (no quorum) grants nothing. `dlm_tool fence_ack 3` on host 1 releases the
//!    survivors, who lock `res3`, which host 3 still waits for.
//!
//! Before that, garbage, a forged Hello and a Hello of another protocol version on host
//! 1's peer port are dropped with a log line each.
//!
//! Every namespace, link and process goes when the test ends (Cluster and DlmDaemon
//! drops), also when it fails.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::{DlmDaemon, LIMIT};
use common::{hydra, text};
use hydra_dlm::api::Query;
use hydra_dlm::client::{Client, Completion, Lock};
use hydra_dlm::flags::{Flags, Status, SBF_VALNOTVALID};
use hydra_dlm::mode::Mode;
use hydra_dlm::resource::Lvb;
use hydra_dlm::wire::{put_frame, PeerFrame, PROTOCOL};
use tokio::runtime::Runtime;

const LS: &str = "shared";

fn value(text: &str) -> Lvb {
    let mut v = [0u8; 32];
    v[..text.len()].copy_from_slice(text.as_bytes());
    v
}

/// dlm.conf for every host: the test agent kills a fenced host's daemon by its pid
/// file (nodes 1 and 2) and fails for node 3; every run is logged.
fn dlm_conf(cluster: &Cluster, log: &Path) -> String {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fence_test");
    let pid = |i: usize| cluster.dir(i).join("run/dlm_controld.pid");
    format!(
        "# hydra's multi-host test\n\
         post_join_delay=10\n\
         device t {} log={}\n\
         connect t node=1 pidfile={}\n\
         connect t node=2 pidfile={}\n\
         connect t node=3 fail=1\n",
        agent.display(),
        log.display(),
        pid(1).display(),
        pid(2).display(),
    )
}

fn fence_runs(log: &Path, node: u32) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').any(|w| w == format!("node={node}")))
        .count()
}

/// The lock's next completion within `limit`, or `None`.
fn completion_within(rt: &Runtime, lock: &mut Lock, limit: Duration) -> Option<Completion> {
    rt.block_on(async { tokio::time::timeout(limit, lock.completion()).await })
        .ok()
        .map(|c| c.expect("the daemon answers"))
}

fn connect(rt: &Runtime, d: &DlmDaemon) -> Client {
    let c = rt
        .block_on(Client::connect(d.socket()))
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", d.output()));
    rt.block_on(async { tokio::time::timeout(LIMIT, c.join(LS)).await })
        .expect("join within the limit")
        .expect("join");
    c
}

fn lock(rt: &Runtime, c: &Client, name: &str, mode: Mode, lvb: Option<Lvb>) -> Lock {
    rt.block_on(c.lock(LS, name.as_bytes(), mode, Flags(Flags::VALBLK), lvb, None))
        .expect("lock accepted")
}

fn granted(rt: &Runtime, lock: &mut Lock, mode: Mode) -> Completion {
    let c = completion_within(rt, lock, LIMIT).expect("granted within the limit");
    assert_eq!((c.status, c.mode), (Status::Granted, Some(mode)), "{c:?}");
    c
}

#[test]
fn three_hosts_fence_before_handing_on_and_refuse_without_quorum() {
    let rt = Runtime::new().unwrap();
    let cluster = Cluster::start(3);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("fence.log");
    let conf = work.path().join("dlm.conf");
    std::fs::write(&conf, dlm_conf(&cluster, &log)).unwrap();
    let mut d1 = DlmDaemon::start(&cluster, 1, &conf);
    let d2 = DlmDaemon::start(&cluster, 2, &conf);
    let d3 = DlmDaemon::start(&cluster, 3, &conf);
    let (c1, c2, c3) = (connect(&rt, &d1), connect(&rt, &d2), connect(&rt, &d3));

    // 0. Strangers on host 1's peer port, from host 2's address: garbage, a Hello forged
    // as node 3, and one of another protocol version. Each is dropped with a log line;
    // nothing else changes.
    let port = format!("/dev/tcp/{}/21064", cluster.addr(1));
    let mut forged = Vec::new();
    put_frame(
        &PeerFrame::Hello {
            node: 3,
            protocol: PROTOCOL,
        },
        &mut forged,
    );
    // Host 2 as itself, but speaking another protocol version.
    let mut future = Vec::new();
    put_frame(
        &PeerFrame::Hello {
            node: 2,
            protocol: PROTOCOL + 1,
        },
        &mut future,
    );
    for bytes in [vec![0, 0, 0, 3, 0xff, 0xff, 0xff], forged, future] {
        let esc: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
        let sent = cluster.exec(2, &["bash", "-c", &format!("printf '{esc}' > {port}")]);
        assert!(sent.status.success(), "{}", text(&sent));
    }
    let from = format!("connection from {}:", cluster.addr(2));
    let start = Instant::now();
    loop {
        let dump = rt.block_on(c1.query(Query::Dump)).expect("dump");
        let dropped: Vec<&str> = dump
            .lines()
            .filter(|l| l.contains(&from) && l.ends_with("dropped"))
            .collect();
        if dropped.len() == 3 {
            assert!(dropped[1].contains("Hello names node 3"), "{dropped:?}");
            assert!(
                dropped[2].contains(&format!("speaks peer protocol {}", PROTOCOL + 1)),
                "{dropped:?}"
            );
            break;
        }
        assert!(start.elapsed() < LIMIT, "strangers not logged:\n{dump}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 1. Host 1: EX on res, value "one" written by a down-conversion to NL, EX again.
    let mut x = lock(&rt, &c1, "res", Mode::EX, None);
    granted(&rt, &mut x, Mode::EX);
    let valblk = Flags(Flags::VALBLK);
    rt.block_on(x.convert(Mode::NL, valblk, Some(value("one"))))
        .unwrap();
    granted(&rt, &mut x, Mode::NL);
    rt.block_on(x.convert(Mode::EX, valblk, None)).unwrap();
    assert_eq!(granted(&rt, &mut x, Mode::EX).lvb, Some(value("one")));
    // Host 3 holds NL on res; it read "one".
    let mut y = lock(&rt, &c3, "res", Mode::NL, None);
    assert_eq!(granted(&rt, &mut y, Mode::NL).lvb, Some(value("one")));
    // res2: host 1 masters it and stores "two"; host 3 reads it under PR.
    let mut r2 = lock(&rt, &c1, "res2", Mode::EX, None);
    granted(&rt, &mut r2, Mode::EX);
    rt.block_on(r2.unlock_wait(Some(value("two")))).unwrap();
    let mut p3 = lock(&rt, &c3, "res2", Mode::PR, None);
    assert_eq!(granted(&rt, &mut p3, Mode::PR).lvb, Some(value("two")));
    // Host 2 asks EX on res and waits.
    let mut z = lock(&rt, &c2, "res", Mode::EX, None);
    assert!(
        completion_within(&rt, &mut z, Duration::from_secs(2)).is_none(),
        "host 2 granted while host 1 holds EX"
    );
    assert_eq!(fence_runs(&log, 1), 0);

    // 2. Cut host 1 off: fenced once, and only then is host 2 granted.
    let cut_at = Instant::now();
    cluster.cut(1);
    let got = granted(&rt, &mut z, Mode::EX);
    let waited = cut_at.elapsed();
    // The agent logged its run and sent SIGKILL before it reported success.
    assert_eq!(fence_runs(&log, 1), 1, "{}", text_of(&log));
    d1.wait_gone(Duration::from_secs(5));
    // Only NL was left holding res's value: it survives, marked not valid.
    assert_eq!(got.lvb, Some(value("one")));
    assert_ne!(got.sbflags & SBF_VALNOTVALID, 0, "{got:?}");
    // res2's PR copy on host 3 survives valid.
    let mut p2 = lock(&rt, &c2, "res2", Mode::PR, None);
    let read = granted(&rt, &mut p2, Mode::PR);
    assert_eq!(read.lvb, Some(value("two")));
    assert_eq!(read.sbflags & SBF_VALNOTVALID, 0, "{read:?}");
    eprintln!("host 1 cut: host 2 granted after {waited:?}");

    // 3. Host 1 comes back; its daemon restarts and rejoins cleanly.
    drop(x);
    drop(r2);
    drop(c1);
    cluster.heal(1);
    cluster.wait_members(1, 3);
    cluster.wait_members(2, 3);
    std::fs::remove_file(d1.pid_file()).ok();
    drop(d1);
    let d1 = DlmDaemon::start(&cluster, 1, &conf);
    let c1 = connect(&rt, &d1);
    let mut w = lock(&rt, &c1, "res", Mode::NL, None);
    granted(&rt, &mut w, Mode::NL);
    assert_eq!(fence_runs(&log, 1), 1, "a clean rejoin is not fenced again");

    // 4. Host 3 alone: no quorum there, no fencing success for it here.
    cluster.cut(3);
    let mut alone = lock(&rt, &c3, "res3", Mode::EX, None);
    let start = Instant::now();
    while fence_runs(&log, 3) == 0 {
        assert!(start.elapsed() < LIMIT, "node 3 never fenced");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ls = rt.block_on(c2.query(Query::Ls {
        name: Some(LS.into()),
        nodes: false,
    }));
    let ls = ls.expect("dlm_tool ls");
    assert!(ls.contains("wait fencing"), "{ls}");
    assert!(
        completion_within(&rt, &mut alone, Duration::from_secs(3)).is_none(),
        "host 3 granted without quorum"
    );
    // An admin says node 3 is down: the survivors recover and lock res3.
    let ack = cluster.exec(
        1,
        &[
            hydra().to_str().unwrap(),
            "dlm_tool",
            "--run-dir",
            cluster.dir(1).join("run").to_str().unwrap(),
            "fence_ack",
            "3",
        ],
    );
    assert!(ack.status.success(), "{}", text(&ack));
    let mut s2 = lock(&rt, &c2, "res3", Mode::EX, None);
    granted(&rt, &mut s2, Mode::EX);
    assert!(
        completion_within(&rt, &mut alone, Duration::from_secs(1)).is_none(),
        "host 3 granted without quorum"
    );
    drop((d2, d3));
}

fn text_of(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
