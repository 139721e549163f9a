//! The lock manager on three hosts (network namespaces, each with its own corosync and
//! `hydra dlm_controld`), as the multi-host test asks:
//!
//! 1. Host 1 takes EX on `res` and writes its value block; host 3 holds NL (VALBLK) on
//!    it, host 3 holds PR (VALBLK) on `res2` (mastered by host 1 too); host 2 asks EX on
//!    `res` and waits.
//! 2. Host 1's link is cut. Hosts 2 and 3 stay quorate; the test fence agent runs
//!    exactly once for node 1 (it kills host 1's daemon, as a power switch would), and
//!    only after it finished (its time stamp) is host 2 granted. The value blocks follow the rules: `res`'s survives
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
//! Then issue 13's two failures, each on three hosts of its own: hosts that boot one
//! after another (nobody fenced), and a daemon killed with SIGKILL while its corosync
//! stays up (fenced once, and only then is its lock handed on).
//!
//! Every namespace, link and process goes when the test ends (Cluster and DlmDaemon
//! drops), also when it fails.

mod common;

use std::path::{Path, PathBuf};
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

fn agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fence_test")
}

/// dlm.conf for every host: the test agent kills a fenced host's daemon by its pid
/// file (nodes 1 and 2; node 1's a second after the agent starts, so that a grant made
/// before fencing finished would show) and fails for node 3; every run is logged, and
/// every finished power-off stamped in `done`.
fn dlm_conf(cluster: &Cluster, log: &Path, done: &Path) -> String {
    let pid = |i: usize| cluster.dir(i).join("run/dlm_controld.pid");
    format!(
        "# hydra's multi-host test\n\
         post_join_delay=10\n\
         device t {} log={} done={}\n\
         connect t node=1 pidfile={} sleep=1\n\
         connect t node=2 pidfile={}\n\
         connect t node=3 fail=1\n",
        agent().display(),
        log.display(),
        done.display(),
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

/// When the agent finished powering `node` off (fence_test's `done=` stamps, Unix
/// seconds), one entry per power-off.
fn fenced_at(done: &Path, node: u32) -> Vec<f64> {
    std::fs::read_to_string(done)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("node={node} ")))
        .map(|t| t.parse().expect("a time stamp"))
        .collect()
}

/// Now, in Unix seconds (the clock fence_test's `date +%s.%N` reads).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A grant seen at `seen` (Unix seconds) came after `node`'s only power-off finished.
fn granted_after_fencing(done: &Path, node: u32, seen: f64) {
    let stamps = fenced_at(done, node);
    assert_eq!(stamps.len(), 1, "power-offs of node {node}: {stamps:?}");
    assert!(
        stamps[0] < seen,
        "granted at {seen:.3}, before node {node} was off at {:.3}",
        stamps[0]
    );
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
    let done = work.path().join("fence.done");
    let conf = work.path().join("dlm.conf");
    std::fs::write(&conf, dlm_conf(&cluster, &log, &done)).unwrap();
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
    let seen = unix_now();
    let waited = cut_at.elapsed();
    // The agent ran once, and the grant came after it had killed host 1's daemon.
    assert_eq!(fence_runs(&log, 1), 1, "{}", text_of(&log));
    granted_after_fencing(&done, 1, seen);
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
    // As if the host rebooted: its /run (pid file, lock-state file) is empty.
    std::fs::remove_dir_all(d1.run_dir()).ok();
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

/// post_join_delay for the boot and daemon-crash tests: short, so that a wrong startup
/// fencing shows within seconds.
const SHORT_DELAY: u64 = 4;

/// Between the power-ons of the booting hosts.
const GAP: Duration = Duration::from_millis(700);

/// dlm.conf where fencing node `i` kills everything listed in `power.pids` of its host
/// directory (the test writes corosync's and the daemon's pids there): the host loses
/// power. Every run is logged, every finished power-off stamped in `done`.
fn power_conf(cluster: &Cluster, hosts: usize, log: &Path, done: &Path) -> String {
    let mut conf = format!(
        "post_join_delay={SHORT_DELAY}\ndevice t {} log={} done={}\n",
        agent().display(),
        log.display(),
        done.display()
    );
    for i in 1..=hosts {
        let pids = cluster.dir(i).join("power.pids");
        // A second between the agent's start and the power-off, so that a lock handed
        // on before fencing finished would show.
        conf.push_str(&format!(
            "connect t node={i} pidfile={} sleep=1\n",
            pids.display()
        ));
    }
    conf
}

/// A work directory with [`power_conf`]'s dlm.conf for three hosts: the directory (kept
/// while the test runs), the fence log, the power-off stamps and the dlm.conf.
fn power_files(cluster: &Cluster) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("fence.log");
    let done = work.path().join("fence.done");
    let conf = work.path().join("dlm.conf");
    std::fs::write(&conf, power_conf(cluster, 3, &log, &done)).unwrap();
    (work, log, done, conf)
}

/// What the fence agent kills when it powers host `i` off.
fn write_power_pids(cluster: &Cluster, i: usize, d: &DlmDaemon) {
    let corosync = cluster.corosync_pid(i).expect("corosync started");
    std::fs::write(
        cluster.dir(i).join("power.pids"),
        format!("{corosync}\n{}\n", d.pid()),
    )
    .unwrap();
}

/// Issue 13's first failure: hosts that boot one after another. Each starts corosync,
/// then the daemon 1.5 s later, then a client that joins the lockspace at once (as a
/// GFS2 mount at boot does). Each daemon may join `dlm:controld` while its corosync
/// still forms a ring of its own; the rings merge later. Every daemon joins the group
/// with no lockspace state before post_join_delay ends, so nobody is fenced, and the
/// lockspace works once all three are in.
#[test]
fn hosts_booting_one_after_another_fence_nobody() {
    let rt = Runtime::new().unwrap();
    let mut cluster = Cluster::build(3);
    let (_work, log, done, conf) = power_files(&cluster);
    let mut daemons = Vec::new();
    let mut joins = Vec::new();
    // Host i powers on at (i - 1) × GAP: corosync at once, the daemon 1.5 s later.
    let mut boot: Vec<(Duration, usize, bool)> = (1..=3)
        .flat_map(|i| {
            let on = GAP * (i as u32 - 1);
            [(on, i, false), (on + Duration::from_millis(1500), i, true)]
        })
        .collect();
    boot.sort();
    let t0 = Instant::now();
    for (at, i, daemon) in boot {
        if let Some(wait) = at.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        if !daemon {
            cluster.restart(i);
            continue;
        }
        let d = DlmDaemon::start(&cluster, i, &conf);
        write_power_pids(&cluster, i, &d);
        let c = rt
            .block_on(Client::connect(d.socket()))
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", d.output()));
        joins.push(rt.spawn(async move {
            let joined = c.join(LS).await;
            joined.map(|()| c)
        }));
        daemons.push(d);
    }
    let last_start = Instant::now();
    let mut clients = Vec::new();
    for (i, join) in joins.into_iter().enumerate() {
        let joined = rt.block_on(async { tokio::time::timeout(LIMIT, join).await });
        let c = joined
            .unwrap_or_else(|_| panic!("host {} never joined:\n{}", i + 1, daemons[i].output()))
            .unwrap()
            .unwrap_or_else(|e| panic!("host {} join: {e:?}", i + 1));
        clients.push(c);
    }
    // Past post_join_delay from the last daemon's start, with a margin: nobody fenced.
    let past = Duration::from_secs(SHORT_DELAY + 3);
    if let Some(left) = past.checked_sub(last_start.elapsed()) {
        std::thread::sleep(left);
    }
    assert_eq!(text_of(&log), "", "fenced during a normal boot");
    assert_eq!(text_of(&done), "", "powered off during a normal boot");
    for (i, d) in daemons.iter_mut().enumerate() {
        assert!(d.running(), "host {} daemon gone:\n{}", i + 1, d.output());
    }
    // And the lockspace works across the three: host 3 waits for host 1's EX.
    let mut x = lock(&rt, &clients[0], "boot", Mode::EX, None);
    granted(&rt, &mut x, Mode::EX);
    let mut y = lock(&rt, &clients[2], "boot", Mode::EX, None);
    assert!(
        completion_within(&rt, &mut y, Duration::from_secs(1)).is_none(),
        "host 3 granted while host 1 holds EX"
    );
    rt.block_on(x.unlock_wait(None)).unwrap();
    granted(&rt, &mut y, Mode::EX);
    assert_eq!(text_of(&log), "", "fenced during a normal boot");
}

/// Issue 13's second failure: dlm_controld killed (SIGKILL) on host 3 while its
/// corosync stays up. The others see it leave its groups (procdown): host 3 is fenced,
/// exactly once, and only after it is off does host 1's waiting client get the lock
/// host 3's client held. Host 3's client loses its lock at once, with an error.
#[test]
fn a_killed_daemon_is_fenced_once_before_its_lock_moves_on() {
    let rt = Runtime::new().unwrap();
    let cluster = Cluster::start(3);
    let (_work, log, done, conf) = power_files(&cluster);
    let daemons: Vec<DlmDaemon> = (1..=3)
        .map(|i| {
            let d = DlmDaemon::start(&cluster, i, &conf);
            write_power_pids(&cluster, i, &d);
            d
        })
        .collect();
    let clients: Vec<Client> = daemons.iter().map(|d| connect(&rt, d)).collect();
    let mut held = lock(&rt, &clients[2], "res", Mode::EX, None);
    granted(&rt, &mut held, Mode::EX);
    let mut waiting = lock(&rt, &clients[0], "res", Mode::EX, None);
    assert!(
        completion_within(&rt, &mut waiting, Duration::from_secs(1)).is_none(),
        "host 1 granted while host 3 holds EX"
    );

    // SIGKILL host 3's daemon; its corosync stays.
    // SAFETY: kill(2) on the daemon this test started; no memory involved.
    assert_eq!(
        unsafe { libc::kill(daemons[2].pid() as i32, libc::SIGKILL) },
        0
    );
    let lost = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), held.completion()).await });
    assert!(
        matches!(lost, Ok(Err(_))),
        "host 3's client did not lose its lock at once: {lost:?}"
    );

    let got = granted(&rt, &mut waiting, Mode::EX);
    let seen = unix_now();
    assert_eq!(got.status, Status::Granted);
    assert_eq!(fence_runs(&log, 3), 1, "{}", text_of(&log));
    granted_after_fencing(&done, 3, seen);
    // Host 3 is off (corosync gone), and nothing fences it again.
    cluster.wait_members(1, 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fence_runs(&log, 3), 1, "{}", text_of(&log));
    assert_eq!(text_of(&log).lines().count(), 1, "{}", text_of(&log));
    drop(daemons);
}
