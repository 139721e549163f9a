//! The fault-injection run (issue 16): the two-node shared-storage cluster of
//! tests/common/sanbed.rs (storage host with hydra tgtd; node 1 and node 2 with corosync
//! `two_node`, hydra dlm_controld fencing through fence_scsi, the node daemon's map
//! `mpatha` over two paths, an ext4 on the map) driven through seeded faults while a
//! worker on each node writes to the shared filesystem under `hydra mount`.
//!
//! - Workers (tests/fixtures/fault_worker.sh, run in each node's namespaces): `hydra
//!   mount -o lockwait=N`, then numbered records (node, sequence, payload, POSIX cksum)
//!   appended to one file, each fsynced and logged once acknowledged (outside the shared
//!   disk); on a write error, after a seeded number of records, or when told to pause,
//!   `hydra umount` (lazily if need be). A fenced node runs `hydra fence_scsi -o on`
//!   only after the driver, as the operator, restarted its stack.
//! - One fault per round, chosen by the seed: a node's cluster link cut and healed; one
//!   storage path of a node cut or both, then healed; kill -9 of corosync, dlm_controld
//!   or the node daemon of a node, or of tgtd (each restarted); a node stopped entirely
//!   (every daemon and its worker, as a power loss) and booted again in the classic
//!   order (corosync, node daemon and login, dlm_controld which unfences).
//! - After each fault the driver repairs what an operator would (restarts dead daemons;
//!   restarts the stack of a fenced node: its worker unmounted, dlm_controld killed, its
//!   `dlm_controld.locks` removed as a reboot would, dlm_controld started, which
//!   unfences) and waits until the cluster settles: every daemon running, both nodes
//!   members, neither fenced, records acknowledged again.
//! - Checks after every round (workers paused, so both nodes unmounted) and at the
//!   end: every acknowledged record in the file exactly once and in order per node (the
//!   file read from the LUN's backing file with debugfs), no two nodes acknowledging
//!   records during one mount of either (overlapping writers, from the records' times),
//!   `fsck.ext4 -n -f` clean; at the end every daemon running and nothing of the bed
//!   left (namespaces, links, mounts, loop devices). The refusals of fenced nodes'
//!   writes are counted from the node daemons' logs (the target keeps no count).
//!
//! `HYDRA_FAULT_SEED=S[,S...]` and `HYDRA_FAULT_ROUNDS=N` choose the seeds and rounds
//! (default: the CI set below); a failing seed prints the line that replays it.
//! scripts/faults.sh runs the long form and prints the `fault-stat` lines as a table.

mod common;

/// The driver's log lines, stamped with the wall clock (the daemons' logs are too).
macro_rules! say {
    ($($a:tt)*) => {
        eprintln!("[{}] {}", wall(), format!($($a)*))
    };
}

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mpbed::tail;
use common::netns::{detach_loop, loops_by_devno};
use common::sanbed::{check_nothing_left, Net, SanBed, MAP};
use common::{hydra, run, text};

/// The worker script, written into the bed's directory.
const WORKER: &str = include_str!("fixtures/fault_worker.sh");

/// The CI set: a few seeds of a few rounds. These three cover every kind of fault in
/// their three rounds: 7 kill-corosync, kill-tgtd, cut-both-paths; 8 stop-node,
/// kill-iscsid, cut-one-path; 12 cut-cluster, kill-dlm_controld, kill-iscsid (the
/// sequence that lost a record before hydra mount checked its device after the grant).
const CI_SEEDS: &[u64] = &[7, 8, 12];
const CI_ROUNDS: u32 = 3;

/// How long the cluster may take to settle after a fault (a fence, DLM recovery, a
/// stack restart, a journal replay) on a loaded 2-core machine.
const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// How long a worker may take to let go of the filesystem when told to pause.
const PAUSE_LIMIT: Duration = Duration::from_secs(90);
/// `-o lockwait=` of the workers' mounts.
const LOCKWAIT: u32 = 10;
/// `--dlm-timeout` of the workers' mounts and umounts.
const DLM_TIMEOUT: u32 = 10;

/// The wall clock as UTC `HH:MM:SS.mmm`.
fn wall() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = t.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_millis()
    )
}

// ---- the seed ----

/// splitmix64: small, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn node(&mut self) -> usize {
        self.range(1, 2) as usize
    }
}

// ---- faults ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Corosync,
    Dlm,
    Iscsid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The node's cluster link down for `secs`, then up.
    CutCluster { node: usize, secs: u64 },
    /// Storage paths of the node down for `secs` (net A, net B, or both), then up.
    CutPaths {
        node: usize,
        a: bool,
        b: bool,
        secs: u64,
    },
    /// kill -9 of a daemon of the node (restarted by the repair).
    Kill { node: usize, daemon: Daemon },
    /// kill -9 of tgtd on the storage host (restarted by the repair).
    KillTarget,
    /// Every daemon of the node and its worker killed, down for `secs`, booted again.
    StopNode { node: usize, secs: u64 },
}

/// The kinds, in the table's order.
const KINDS: &[&str] = &[
    "cut-cluster",
    "cut-one-path",
    "cut-both-paths",
    "kill-corosync",
    "kill-dlm_controld",
    "kill-iscsid",
    "kill-tgtd",
    "stop-node",
];

impl Fault {
    fn pick(rng: &mut Rng) -> Fault {
        let node = rng.node();
        match rng.range(0, KINDS.len() as u64 - 1) {
            0 => Fault::CutCluster {
                node,
                secs: rng.range(1, 6),
            },
            1 => {
                let a = rng.range(0, 1) == 0;
                Fault::CutPaths {
                    node,
                    a,
                    b: !a,
                    secs: rng.range(1, 6),
                }
            }
            2 => Fault::CutPaths {
                node,
                a: true,
                b: true,
                secs: rng.range(1, 6),
            },
            3 => Fault::Kill {
                node,
                daemon: Daemon::Corosync,
            },
            4 => Fault::Kill {
                node,
                daemon: Daemon::Dlm,
            },
            5 => Fault::Kill {
                node,
                daemon: Daemon::Iscsid,
            },
            6 => Fault::KillTarget,
            _ => Fault::StopNode {
                node,
                secs: rng.range(1, 5),
            },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Fault::CutCluster { .. } => KINDS[0],
            Fault::CutPaths {
                a: true, b: true, ..
            } => KINDS[2],
            Fault::CutPaths { .. } => KINDS[1],
            Fault::Kill {
                daemon: Daemon::Corosync,
                ..
            } => KINDS[3],
            Fault::Kill {
                daemon: Daemon::Dlm,
                ..
            } => KINDS[4],
            Fault::Kill {
                daemon: Daemon::Iscsid,
                ..
            } => KINDS[5],
            Fault::KillTarget => KINDS[6],
            Fault::StopNode { .. } => KINDS[7],
        }
    }
}

// ---- the workers ----

struct Workers {
    script: PathBuf,
    /// Node `i`'s worker at `i - 1` (a process group leader).
    children: Vec<Option<Child>>,
    /// Records per hold, per node.
    hold: Vec<u64>,
}

impl Workers {
    fn new(bed: &SanBed, rng: &mut Rng) -> Workers {
        let script = bed.dir().join("fault_worker.sh");
        std::fs::write(&script, WORKER).expect("worker script");
        for i in 1..=bed.nodes() {
            std::fs::create_dir_all(dir(bed, i).join("mount-state")).expect("worker dir");
        }
        Workers {
            script,
            children: (0..bed.nodes()).map(|_| None).collect(),
            hold: (0..bed.nodes()).map(|_| rng.range(10, 40)).collect(),
        }
    }

    /// Start node `i`'s worker (again, after a node stop: it resumes its numbering).
    fn start(&mut self, b: &SanBed, i: usize) {
        let d = dir(b, i);
        for f in ["stop", "pause", "paused", "fenced"] {
            let _ = std::fs::remove_file(d.join(f));
        }
        let pathopts = format!(
            "--dlm-run-dir {} --run-dir {} --dev-dir {} --store-path {} --state-dir {} --dlm-timeout {DLM_TIMEOUT}",
            b.dlm_run_dir(i).display(),
            b.run_dir(i).display(),
            b.dev_dir(i).display(),
            b.store_path(i).display(),
            d.join("mount-state").display(),
        );
        let fence = format!(
            "{} --store-path {} --run-dir {} --dev-dir {} -d /dev/mapper/{MAP}",
            b.fence_scsi().display(),
            b.store_path(i).display(),
            b.run_dir(i).display(),
            b.dev_dir(i).display(),
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("worker.out"))
            .expect("worker.out");
        let child = b
            .command(i, "bash")
            .arg(&self.script)
            .env("H", hydra())
            .env("N", i.to_string())
            .env("LOGDIR", &d)
            .env("DEV", b.map_dev(i))
            .env("MNT", b.mnt(i))
            .env("LOCKWAIT", LOCKWAIT.to_string())
            .env("HOLD", self.hold[i - 1].to_string())
            .env("PATHOPTS", pathopts)
            .env("FENCE", fence)
            .env("PLUG", b.cluster_addr(i).to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn the worker");
        self.children[i - 1] = Some(child);
    }

    /// SIGKILL node `i`'s worker and whatever it runs (its process group).
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i - 1].take() {
            // SAFETY: kill(2) of the worker's process group; no memory involved.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    fn running(&mut self, i: usize) -> bool {
        self.children[i - 1]
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn set(&self, bed: &SanBed, i: usize, name: &str, on: bool) {
        let f = dir(bed, i).join(name);
        if on {
            std::fs::write(&f, b"").expect("control file");
        } else {
            let _ = std::fs::remove_file(&f);
        }
    }

    /// Tell node `i`'s worker to let go of the filesystem; wait until it has (its
    /// `paused` file). A worker that cannot unmount fails the run.
    fn pause(&mut self, bed: &SanBed, i: usize) {
        self.set(bed, i, "pause", true);
        let paused = dir(bed, i).join("paused");
        let t = Instant::now();
        while !paused.exists() {
            assert!(self.running(i), "node {i}: the worker died");
            assert!(
                t.elapsed() < PAUSE_LIMIT,
                "node {i}: the worker did not let go of the filesystem within {PAUSE_LIMIT:?}:\n{}",
                worker_tail(bed, i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn resume(&self, bed: &SanBed, i: usize) {
        self.set(bed, i, "pause", false);
    }

    /// Stop every worker (each unmounts first).
    fn stop_all(&mut self, bed: &SanBed) {
        for i in 1..=bed.nodes() {
            self.set(bed, i, "stop", true);
        }
        for i in 1..=bed.nodes() {
            let t = Instant::now();
            while self.running(i) {
                assert!(
                    t.elapsed() < PAUSE_LIMIT,
                    "node {i}: the worker did not stop within {PAUSE_LIMIT:?}:\n{}",
                    worker_tail(bed, i)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            self.children[i - 1] = None;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for i in 1..=self.children.len() {
            self.kill(i);
        }
    }
}

/// Node `i`'s worker directory (logs, control files, hydra mount's state).
fn dir(bed: &SanBed, i: usize) -> PathBuf {
    bed.node_dir(i).join("worker")
}

fn worker_tail(bed: &SanBed, i: usize) -> String {
    let d = dir(bed, i);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    format!(
        "--- node {i}: worker events (tail) ---\n{}\n--- node {i}: worker.err (tail) ---\n{}\n--- node {i}: worker.out (tail) ---\n{}",
        tail(&read("events"), 20),
        tail(&read("worker.err"), 20),
        tail(&read("worker.out"), 10)
    )
}

// ---- what the workers logged ----

/// Node `i`'s acknowledged records: (sequence, time).
fn acked(bed: &SanBed, i: usize) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir(bed, i).join("acked"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let _node = w.next()?;
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect()
}

/// Node `i`'s worker events: (time, what).
fn events(bed: &SanBed, i: usize) -> Vec<(f64, String)> {
    std::fs::read_to_string(dir(bed, i).join("events"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, what) = l.split_once(' ')?;
            Some((t.parse().ok()?, what.to_string()))
        })
        .collect()
}

fn total_acked(bed: &SanBed) -> usize {
    (1..=bed.nodes()).map(|i| acked(bed, i).len()).sum()
}

// ---- the records on the disk ----

/// POSIX cksum(1): CRC-32 (polynomial 0x04C11DB7, MSB first) over the data and then
/// its length (least significant byte first, as many bytes as it takes), inverted.
fn posix_cksum(data: &[u8]) -> u32 {
    fn feed(crc: &mut u32, b: u8) {
        *crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            *crc = if *crc & 0x8000_0000 != 0 {
                (*crc << 1) ^ 0x04C1_1DB7
            } else {
                *crc << 1
            };
        }
    }
    let mut crc = 0u32;
    for &b in data {
        feed(&mut crc, b);
    }
    let mut len = data.len();
    while len > 0 {
        feed(&mut crc, (len & 0xff) as u8);
        len >>= 8;
    }
    !crc
}

/// The records file: every well-formed record as (node, sequence) in file order, and
/// how many pieces did not parse or check (torn records of failed writes).
fn parse_records(data: &[u8]) -> (Vec<(usize, u64)>, usize) {
    let mut recs = Vec::new();
    let mut bad = 0;
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        // A torn record (zeros, half a line) may precede a good one on the same line.
        let start = line.windows(3).rposition(|w| w == b"@@ ");
        let Some(start) = start else {
            bad += 1;
            continue;
        };
        if start > 0 {
            bad += 1;
        }
        let rec = String::from_utf8_lossy(&line[start + 3..]).into_owned();
        let parsed = rec.rsplit_once(' ').and_then(|(body, sum)| {
            let sum: u32 = sum.parse().ok()?;
            if posix_cksum(body.as_bytes()) != sum {
                return None;
            }
            let mut w = body.split(' ');
            let node: usize = w.next()?.parse().ok()?;
            let seq: u64 = w.next()?.parse().ok()?;
            let payload = w.next()?;
            payload
                .starts_with(&format!("{node}.{seq}."))
                .then_some((node, seq))
        });
        match parsed {
            Some(r) => recs.push(r),
            None => bad += 1,
        }
    }
    (recs, bad)
}

/// The records file as the LUN holds it (both nodes unmounted): debugfs reads it from
/// the backing file, no mount needed. Empty when the file is not there yet.
fn read_records(bed: &SanBed) -> Vec<u8> {
    // A node fenced with its last transactions only in the journal (acknowledged by
    // fsync, not yet checkpointed) leaves them for the next mount to replay; both nodes
    // are unmounted here, so replay it as that mount would (debugfs reads what is in
    // place). Seed 23 round 9 read three such records as lost.
    let r = run(
        Command::new("e2fsck")
            .args(["-p", "-E", "journal_only"])
            .arg(bed.backing_file()),
        Duration::from_secs(60),
    );
    assert!(
        matches!(r.status.code(), Some(0 | 1)),
        "e2fsck -E journal_only: {}",
        text(&r)
    );
    let o = run(
        Command::new("debugfs")
            .args(["-R", "cat /records"])
            .arg(bed.backing_file()),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "debugfs: {}", text(&o));
    o.stdout
}

/// Counters of one seed's run.
#[derive(Debug, Default)]
struct Stats {
    rounds: u32,
    faults: BTreeMap<&'static str, u32>,
    acked: usize,
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
    overlaps: usize,
    torn: usize,
    conflicts: usize,
    restarts: BTreeMap<&'static str, u32>,
    settle_max: Duration,
    /// The most a node's /dev/shm held at a round's check (libqb's IPC rings), KiB.
    shm_max_kib: u64,
}

/// The checks on the quiet disk (both nodes unmounted): every acknowledged record
/// exactly once and in order per node; no overlapping writers; fsck clean. Panics
/// with what failed; fills `stats`.
fn check_disk(bed: &SanBed, stats: &mut Stats, when: &str) {
    let data = read_records(bed);
    let (recs, torn) = parse_records(&data);
    let mut failures = Vec::new();
    stats.torn = torn;
    stats.acked = 0;
    stats.lost = 0;
    stats.duplicated = 0;
    stats.out_of_order = 0;
    for i in 1..=bed.nodes() {
        let acks = acked(bed, i);
        stats.acked += acks.len();
        let on_disk: Vec<u64> = recs
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, s)| *s)
            .collect();
        let mut count: BTreeMap<u64, usize> = BTreeMap::new();
        for s in &on_disk {
            *count.entry(*s).or_default() += 1;
        }
        let dups: Vec<u64> = count
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|(s, _)| *s)
            .collect();
        let disorder = on_disk.windows(2).filter(|w| w[0] >= w[1]).count();
        let lost: Vec<u64> = acks
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| !count.contains_key(s))
            .collect();
        stats.lost += lost.len();
        stats.duplicated += dups.len();
        stats.out_of_order += disorder;
        if !lost.is_empty() {
            failures.push(format!(
                "node {i}: {} acknowledged records are not on the disk: {:?}",
                lost.len(),
                &lost[..lost.len().min(20)]
            ));
        }
        if !dups.is_empty() {
            failures.push(format!("node {i}: records more than once: {dups:?}"));
        }
        if disorder > 0 {
            failures.push(format!(
                "node {i}: {disorder} records out of order on the disk"
            ));
        }
    }
    let overlaps = overlapping_writers(bed);
    stats.overlaps = overlaps.len();
    if !overlaps.is_empty() {
        failures.push(format!(
            "overlapping writers: {}",
            overlaps[..overlaps.len().min(10)].join("; ")
        ));
    }
    let o = run(
        Command::new("fsck.ext4")
            .args(["-n", "-f"])
            .arg(bed.backing_file()),
        Duration::from_secs(120),
    );
    if o.status.code() != Some(0) {
        failures.push(format!("fsck.ext4 -n -f: {}\n{}", o.status, text(&o)));
    }
    assert!(
        failures.is_empty(),
        "{when}: {}\n{} records on the disk, {torn} torn",
        failures.join("\n"),
        recs.len()
    );
    say!(
        "{when}: {} records acknowledged, all on the disk once and in order ({} on the disk, {torn} torn); no overlapping writers; fsck clean",
        stats.acked,
        recs.len()
    );
}

/// One mount of a node, from its worker's events.
#[derive(Debug)]
struct Session {
    node: usize,
    /// `mounted` (after hydra mount returned).
    start: f64,
    /// When the filesystem was last seen going: `umounting` (before hydra umount) or
    /// `umount-lazy`, else `umounted` / `off` (the node stopped) / `exit`; infinity
    /// while mounted.
    end: f64,
    /// A write failed during it: the node lost the disk (fenced, its device gone).
    lost_disk: bool,
}

fn sessions(bed: &SanBed, i: usize) -> Vec<Session> {
    let mut out = Vec::new();
    let mut cur: Option<Session> = None;
    let mut going: Option<f64> = None;
    for (t, what) in events(bed, i) {
        let what = what.split(' ').next().unwrap_or("").to_string();
        match what.as_str() {
            "mounted" => {
                if let Some(s) = cur.take() {
                    out.push(s);
                }
                cur = Some(Session {
                    node: i,
                    start: t,
                    end: f64::INFINITY,
                    lost_disk: false,
                });
                going = None;
            }
            "umounting" | "umount-lazy" => going = Some(t),
            "write-failed" => {
                if let Some(s) = cur.as_mut() {
                    s.lost_disk = true;
                }
            }
            "umounted" | "off" | "exit" => {
                if let Some(mut s) = cur.take() {
                    s.end = going.unwrap_or(t);
                    out.push(s);
                }
                going = None;
            }
            _ => {}
        }
    }
    out.extend(cur);
    out
}

/// Two nodes with the filesystem mounted at once, from the workers' events: a mount
/// that began while another node's mount had not gone yet, unless that node had lost
/// the disk (its writes failed: fenced before the other's lock was granted, which the
/// acknowledged records then show). Plus every acknowledgement of one node that falls
/// inside another node's span of acknowledged records.
fn overlapping_writers(bed: &SanBed) -> Vec<String> {
    let all: Vec<Session> = (1..=bed.nodes()).flat_map(|i| sessions(bed, i)).collect();
    let mut out = Vec::new();
    for a in &all {
        for b in &all {
            if a.node != b.node && a.start < b.start && b.start < a.end && !a.lost_disk {
                out.push(format!(
                    "node {} mounted at {:.3} while node {} had it mounted ({:.3}..{:.3}) and could write",
                    b.node, b.start, a.node, a.start, a.end
                ));
            }
        }
    }
    out.extend(overlapping_acks(bed));
    out
}

/// Every acknowledgement of one node that falls inside a mount of the other node,
/// between that mount's first and last acknowledged record: two writers at once.
fn overlapping_acks(bed: &SanBed) -> Vec<String> {
    // Per node: the spans [first ack, last ack] of each mount (a mount starts at a
    // `mounted` event).
    let spans: Vec<Vec<(f64, f64)>> = (1..=bed.nodes())
        .map(|i| {
            let mounts: Vec<f64> = events(bed, i)
                .into_iter()
                .filter(|(_, w)| w == "mounted")
                .map(|(t, _)| t)
                .collect();
            let mut spans: Vec<(f64, f64)> = Vec::new();
            let mut cur: Option<(usize, f64, f64)> = None;
            for (_, t) in acked(bed, i) {
                let m = mounts.iter().rposition(|m| *m <= t).unwrap_or(usize::MAX);
                match cur {
                    Some((cm, a, _)) if cm == m => cur = Some((cm, a, t)),
                    _ => {
                        if let Some((_, a, z)) = cur {
                            spans.push((a, z));
                        }
                        cur = Some((m, t, t));
                    }
                }
            }
            if let Some((_, a, z)) = cur {
                spans.push((a, z));
            }
            spans
        })
        .collect();
    let mut out = Vec::new();
    for i in 1..=bed.nodes() {
        for j in 1..=bed.nodes() {
            if i == j {
                continue;
            }
            for (s, t) in acked(bed, j) {
                if let Some((a, z)) = spans[i - 1].iter().find(|(a, z)| *a < t && t < *z) {
                    out.push(format!(
                        "node {j} acknowledged record {s} at {t:.3} while node {i} wrote ({a:.3}..{z:.3})"
                    ));
                }
            }
        }
    }
    out
}

/// Refusals of fenced nodes' writes the node daemons reported (each logs the first
/// RESERVATION CONFLICT after its key was set).
fn conflicts(bed: &SanBed) -> usize {
    (1..=bed.nodes())
        .map(|i| {
            bed.node_log(i)
                .lines()
                .filter(|l| l.contains("RESERVATION CONFLICT: this node's key"))
                .count()
        })
        .sum()
}

// ---- the driver ----

struct Run {
    bed: SanBed,
    seed: u64,
    rng: Rng,
    stats: Stats,
    /// Device numbers of the nodes' hydra FUSE mounts seen so far (see
    /// [`Run::check_no_leaked_loops`]).
    fuse_seen: std::collections::BTreeSet<String>,
}

/// corosync's member count on node `i` (None: corosync does not answer).
fn members(bed: &SanBed, i: usize) -> Option<usize> {
    let o = bed.exec(i, &["corosync-quorumtool", "-s"]);
    text(&o)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Nodes:"))
        .and_then(|n| n.trim().parse().ok())
}

/// A node's /dev/shm is a 64 MiB tmpfs (tests/common/sanbed.rs); a settled node's
/// clients (libqb rings of dlm_controld's corosync connections and the probes) hold
/// about 17 MiB of it (seed 2: at most 17,568 KiB).
const SHM_SIZE_KIB: u64 = 64 * 1024;
const SHM_LIMIT_KIB: u64 = SHM_SIZE_KIB * 3 / 4;

/// KiB used in node `i`'s /dev/shm.
fn shm_used_kib(bed: &SanBed, i: usize) -> u64 {
    let o = bed.exec(i, &["df", "-k", "--output=used", "/dev/shm"]);
    text(&o)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("node {i}: df /dev/shm: {}", text(&o)))
}

/// `fence_scsi -o status` of node `i` as itself: Some(true) when its key is gone.
fn fenced(bed: &SanBed, i: usize) -> Option<bool> {
    match bed.fence_agent(i, &["-o", "status"]).status.code() {
        Some(0) => Some(false),
        Some(2) => Some(true),
        _ => None,
    }
}

fn ext4_mounted(bed: &SanBed, i: usize) -> bool {
    let mnt = bed.mnt(i);
    bed.mounts(i)
        .iter()
        .any(|(at, t)| *at == mnt && t == "ext4")
}

/// Every process under `pid` (children, their children, ...), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // stat: "pid (comm) state ppid ...": comm may hold blanks, so after the last ')'.
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|x| x.parse().ok());
        if let Some(pp) = ppid {
            parent.push((p, pp));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(q) = todo.pop() {
        for (c, _) in parent.iter().filter(|(_, pp)| *pp == q) {
            out.push(*c);
            todo.push(*c);
        }
    }
    out
}

/// Node `i`'s hydra FUSE mounts (the node daemon's map files, live or left dead by a
/// killed daemon): (MAJ:MIN, mount point, whether it answers). A loop device on one of
/// them is the node's: its backing file's path cannot always tell (from the test's
/// mount namespace a detached one reads `/<map>`), its BACK-MAJ:MIN can.
fn fuse_mounts(bed: &SanBed, i: usize) -> Vec<(String, String, bool)> {
    let o = bed.exec(
        i,
        &[
            "findmnt",
            "--noheadings",
            "--raw",
            "--types",
            "fuse",
            "--output",
            "MAJ:MIN,SOURCE,TARGET",
        ],
    );
    text(&o)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (devno, source, target) = (f.next()?, f.next()?, f.next()?);
            source
                .starts_with(hydra_multipath::export::fuse::SOURCE_PREFIX)
                .then(|| {
                    // statfs always asks the server (attributes are cached); a dead FUSE
                    // mount answers ENOTCONN.
                    let alive = bed
                        .exec(i, &["stat", "-f", "-c", "%t", target])
                        .status
                        .success();
                    (devno.to_string(), target.to_string(), alive)
                })
        })
        .collect()
}

impl Drop for Run {
    /// On a failure: every log of the bed (daemons, workers) kept in
    /// /var/tmp/hydra-faults-SEED-PID before the bed goes.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let keep = PathBuf::from(format!(
            "/var/tmp/hydra-faults-{}-{}",
            self.seed,
            std::process::id()
        ));
        let _ = std::fs::create_dir_all(&keep);
        let copy = |from: PathBuf, to: &str| {
            let _ = std::fs::copy(&from, keep.join(to));
        };
        copy(self.bed.storage_dir().join("target.log"), "target.log");
        for i in 1..=self.bed.nodes() {
            let n = self.bed.node_dir(i).to_path_buf();
            for f in ["iscsid.log", "corosync.log", "corosync.out", "dlm.conf"] {
                copy(n.join(f), &format!("node{i}-{f}"));
            }
            copy(
                n.join("dlm/dlm_controld.out"),
                &format!("node{i}-dlm_controld.out"),
            );
            for f in ["events", "acked", "worker.err", "worker.out"] {
                copy(n.join("worker").join(f), &format!("node{i}-worker-{f}"));
            }
        }
        // Not read_records: nothing here may panic again.
        if let Ok(o) = Command::new("debugfs")
            .args(["-R", "cat /records"])
            .arg(self.bed.backing_file())
            .output()
        {
            let _ = std::fs::write(keep.join("records"), o.stdout);
        }
        eprintln!("the bed's logs are kept in {}", keep.display());
    }
}

impl Run {
    fn restarted(&mut self, what: &'static str) {
        *self.stats.restarts.entry(what).or_default() += 1;
    }

    /// Node `i`'s node daemon again: its map over both paths. A killed daemon's dead
    /// FUSE mount and loop device are the new daemon's to remove (checked each round).
    fn restart_node_daemon(&mut self, i: usize) {
        self.bed.start_node_daemon(i);
        self.bed.login(i);
        self.bed.wait_map(i);
        self.restarted("iscsid");
    }

    /// A fenced node's (or a crashed dlm_controld's) stack, as the operator restarts it:
    /// the worker lets go of the filesystem, dlm_controld is stopped, the file saying
    /// it ended holding lockspaces removed (a reboot's tmpfs would not keep it),
    /// dlm_controld started, which unfences the node; the worker may then unfence too.
    fn restart_stack(&mut self, i: usize, workers: &mut Workers) {
        if workers.running(i) {
            workers.pause(&self.bed, i);
        }
        self.kill_dlm_and_agents(i);
        let _ = std::fs::remove_file(self.bed.dlm_run_dir(i).join("dlm_controld.locks"));
        // The whole cluster stack restarts, as after a reboot: corosync too. A fenced
        // node that merged back is removed from the cluster by the other node's
        // dlm_controld (corosync_cfg_kill_node) a moment after the merge; a daemon
        // started on the old corosync would die with it.
        self.bed.kill_corosync(i);
        self.bed.start_corosync(i);
        self.bed.wait_members(i, 2);
        self.bed.wait_members(3 - i, 2);
        self.bed.start_dlm(i);
        self.bed.wait_unfenced(i);
        workers.set(&self.bed, i, "unfence", true);
        workers.resume(&self.bed, i);
        self.restarted("dlm_controld");
    }

    /// Stop node `i`'s dlm_controld as a reboot would: with the fence agents it runs.
    /// Killing the daemon alone leaves a running agent behind, which still fences its
    /// victim after the daemon is gone (even after a new daemon unfenced this node:
    /// the agent's "this node has been fenced" check then passes) — seen with seed 3.
    fn kill_dlm_and_agents(&mut self, i: usize) {
        let kids = self.bed.dlm_pid(i).map(descendants).unwrap_or_default();
        self.bed.kill_dlm(i);
        for p in kids {
            // SAFETY: kill(2) of a pid read from /proc; no memory involved.
            unsafe {
                libc::kill(p as i32, libc::SIGKILL);
            }
        }
    }

    fn inject(&mut self, fault: Fault, workers: &mut Workers) {
        self.note_fuse_mounts();
        let bed = &mut self.bed;
        match fault {
            Fault::CutCluster { node, secs } => {
                bed.cut(node);
                std::thread::sleep(Duration::from_secs(secs));
                bed.heal(node);
            }
            Fault::CutPaths { node, a, b, secs } => {
                for (net, on) in [(Net::A, a), (Net::B, b)] {
                    if on {
                        bed.set_link(node, net, false);
                    }
                }
                std::thread::sleep(Duration::from_secs(secs));
                for net in [Net::A, Net::B] {
                    bed.set_link(node, net, true);
                }
            }
            Fault::Kill { node, daemon } => match daemon {
                Daemon::Corosync => bed.kill_corosync(node),
                Daemon::Dlm => bed.kill_dlm(node),
                Daemon::Iscsid => bed.kill_node_daemon(node),
            },
            Fault::KillTarget => bed.kill_target(),
            Fault::StopNode { node, secs } => {
                // Power off: everything of the node at once.
                workers.kill(node);
                let off = format!(
                    "{:.9} off\n",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64()
                );
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(dir(&self.bed, node).join("events"))
                    .and_then(|mut f| std::io::Write::write_all(&mut f, off.as_bytes()));
                self.kill_dlm_and_agents(node);
                let bed = &mut self.bed;
                bed.kill_node_daemon(node);
                bed.kill_corosync(node);
                // What a reboot forgets: the node's mounts, hydra mount's records and
                // dlm_controld's file (tmpfs on a real machine), its loop devices.
                let devnos: Vec<String> = fuse_mounts(bed, node).into_iter().map(|m| m.0).collect();
                for (dev, back) in loops_by_devno() {
                    if devnos.contains(&back) {
                        say!("node {node} off: detaching loop device {dev}");
                        detach_loop(&dev);
                    }
                }
                for (at, t) in bed.mounts(node).into_iter().rev() {
                    let at = at.to_str().expect("utf-8 path").to_string();
                    let o = bed.exec(node, &["umount", "-l", &at]);
                    say!("node {node} off: {t} on {at} detached: {}", o.status);
                }
                for e in std::fs::read_dir(dir(bed, node).join("mount-state"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let _ = std::fs::remove_file(e.path());
                }
                let _ = std::fs::remove_file(bed.dlm_run_dir(node).join("dlm_controld.locks"));
                std::thread::sleep(Duration::from_secs(secs));
                // The other node fences it (unless it was too quick to notice).
                let other = 3 - node;
                let plug = bed.cluster_addr(node).to_string();
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(60) {
                    let o = bed.fence_agent(other, &["-o", "status", "-n", &plug]);
                    if o.status.code() == Some(2) {
                        say!(
                            "node {node} off: fenced by node {other} after {:?}",
                            t.elapsed()
                        );
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                // Boot in the classic order.
                bed.start_corosync(node);
                bed.wait_members(node, 2);
                bed.start_node_daemon(node);
                bed.login(node);
                bed.wait_map(node);
                bed.start_dlm(node);
                bed.wait_unfenced(node);
                workers.set(bed, node, "unfence", true);
                workers.start(bed, node);
                self.restarted("node boot");
            }
        }
    }

    /// Repair what is broken and wait until the cluster settles: every daemon running,
    /// both nodes members, neither fenced, a node holding the filesystem and writing.
    fn settle(&mut self, workers: &mut Workers) {
        let start = Instant::now();
        let mut base = total_acked(&self.bed);
        let mut last_state = String::new();
        loop {
            let mut repaired = false;
            if !self.bed.target_running() {
                self.bed.restart_target();
                self.restarted("tgtd");
                repaired = true;
            }
            for i in 1..=2 {
                if !self.bed.corosync_running(i) {
                    self.bed.start_corosync(i);
                    self.restarted("corosync");
                    repaired = true;
                }
            }
            for i in 1..=2 {
                if !self.bed.node_daemon_running(i) {
                    self.restart_node_daemon(i);
                    repaired = true;
                }
            }
            let m = [members(&self.bed, 1), members(&self.bed, 2)];
            let all_members = m.iter().all(|m| *m == Some(2));
            let mut f = [None, None];
            if all_members {
                for i in 1..=2 {
                    f[i - 1] = fenced(&self.bed, i);
                    if !self.bed.dlm_running(i) || f[i - 1] == Some(true) {
                        say!(
                            "node {i}: {}: restarting its stack",
                            if f[i - 1] == Some(true) {
                                "fenced"
                            } else {
                                "dlm_controld is not running"
                            }
                        );
                        self.restart_stack(i, workers);
                        repaired = true;
                    }
                }
            }
            if repaired {
                base = total_acked(&self.bed);
            }
            let now = total_acked(&self.bed);
            let holder: Vec<usize> = (1..=2).filter(|i| ext4_mounted(&self.bed, *i)).collect();
            let state = format!(
                "members {m:?}, fenced {f:?}, mounted on {holder:?}, {} records since the last repair",
                now - base
            );
            if !repaired
                && all_members
                && f.iter().all(|f| *f == Some(false))
                && !holder.is_empty()
                && now >= base + 3
            {
                let took = start.elapsed();
                self.stats.settle_max = self.stats.settle_max.max(took);
                say!("settled after {took:?}: {state}");
                return;
            }
            if state != last_state {
                say!("settling ({:?}): {state}", start.elapsed());
                last_state = state.clone();
            }
            if start.elapsed() > SETTLE_LIMIT {
                for i in 1..=2 {
                    say!("{}", worker_tail(&self.bed, i));
                }
                panic!(
                    "seed {}: the cluster did not settle within {SETTLE_LIMIT:?}: {state}",
                    self.seed
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Both nodes' hydra FUSE mounts now ([`fuse_mounts`]), their device numbers
    /// remembered.
    fn note_fuse_mounts(&mut self) -> Vec<(String, String, bool)> {
        let now: Vec<_> = (1..=2).flat_map(|i| fuse_mounts(&self.bed, i)).collect();
        self.fuse_seen.extend(now.iter().map(|m| m.0.clone()));
        now
    }

    /// What a node daemon killed with -9 leaves unless the next one removes it: a dead
    /// FUSE mount, and loop devices on a FUSE file that is not served any more. Neither
    /// may be left once the daemons run again and the workers let go (a loop device a
    /// mount still held goes at that unmount). Every device number seen is remembered
    /// until no loop device is on it.
    fn check_no_leaked_loops(&mut self, when: &str) {
        let start = Instant::now();
        loop {
            let now = self.note_fuse_mounts();
            let dead: Vec<&String> = now.iter().filter(|m| !m.2).map(|m| &m.1).collect();
            let live: Vec<&String> = now.iter().filter(|m| m.2).map(|m| &m.0).collect();
            let loops = loops_by_devno();
            let leaked: Vec<&(String, String)> = loops
                .iter()
                .filter(|(_, back)| self.fuse_seen.contains(back) && !live.contains(&back))
                .collect();
            if leaked.is_empty() && dead.is_empty() {
                self.fuse_seen
                    .retain(|d| live.contains(&d) || loops.iter().any(|(_, b)| b == d));
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{when}: left by a node daemon that died: dead FUSE mounts {dead:?}, loop \
                 devices on unserved FUSE files (name, backing MAJ:MIN) {leaked:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Both workers let go; the disk is checked; they go on.
    fn check_round(&mut self, workers: &mut Workers, when: &str) {
        for i in 1..=2 {
            workers.pause(&self.bed, i);
        }
        for i in 1..=2 {
            assert!(
                !ext4_mounted(&self.bed, i),
                "{when}: node {i} has the filesystem mounted while paused"
            );
        }
        self.check_no_leaked_loops(when);
        check_disk(&self.bed, &mut self.stats, when);
        for i in 1..=2 {
            let used = shm_used_kib(&self.bed, i);
            self.stats.shm_max_kib = self.stats.shm_max_kib.max(used);
            assert!(
                used < SHM_LIMIT_KIB,
                "{when}: node {i}'s /dev/shm holds {used} KiB of {SHM_SIZE_KIB}: corosync IPC \
                 rings are leaking (the next client would be refused with ENOSPC)"
            );
        }
        for i in 1..=2 {
            workers.resume(&self.bed, i);
        }
    }
}

/// Prints the line that replays a seed when its run fails.
struct Replay {
    seed: u64,
    rounds: u32,
}

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            say!(
                "\nFAILED: replay with\n  HYDRA_FAULT_SEED={} HYDRA_FAULT_ROUNDS={} cargo test --release --test faults\n",
                self.seed, self.rounds
            );
        }
    }
}

/// One seed: a fresh bed, `rounds` faults, the checks; the counters.
fn run_seed(seed: u64, rounds: u32) -> Stats {
    let _replay = Replay { seed, rounds };
    let mut rng = Rng(seed);
    let bed = SanBed::start(2);
    let (name, root) = (bed.name().to_string(), bed.dir().to_path_buf());
    let dev = bed.map_dev(1);
    bed.exec_ok(
        1,
        &["mkfs.ext4", "-q", "-F", dev.to_str().expect("utf-8 path")],
    );
    let mut r = Run {
        bed,
        seed,
        rng: Rng(rng.next()),
        stats: Stats::default(),
        fuse_seen: Default::default(),
    };
    let mut workers = Workers::new(&r.bed, &mut rng);
    for i in 1..=2 {
        workers.start(&r.bed, i);
    }
    let t = Instant::now();
    while total_acked(&r.bed) < 5 {
        assert!(
            t.elapsed() < SETTLE_LIMIT,
            "seed {seed}: no records acknowledged at the start:\n{}\n{}",
            worker_tail(&r.bed, 1),
            worker_tail(&r.bed, 2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for round in 1..=rounds {
        // Let the writers run a little, so that the fault lands mid-write.
        std::thread::sleep(Duration::from_millis(r.rng.range(200, 2000)));
        let fault = Fault::pick(&mut r.rng);
        say!(
            "=== seed {seed} round {round}/{rounds}: {fault:?} ({} records so far)",
            total_acked(&r.bed)
        );
        *r.stats.faults.entry(fault.kind()).or_default() += 1;
        r.inject(fault, &mut workers);
        r.settle(&mut workers);
        r.stats.rounds = round;
        r.check_round(&mut workers, &format!("seed {seed} round {round}"));
    }
    workers.stop_all(&r.bed);
    drop(workers);
    for i in 1..=2 {
        assert!(!ext4_mounted(&r.bed, i), "node {i} still mounted");
    }
    check_disk(&r.bed, &mut r.stats, &format!("seed {seed} end"));
    assert!(r.bed.target_running(), "tgtd is not running at the end");
    for i in 1..=2 {
        assert!(
            r.bed.corosync_running(i),
            "node {i}: corosync is not running"
        );
        assert!(
            r.bed.node_daemon_running(i),
            "node {i}: iscsid is not running"
        );
        assert!(
            r.bed.dlm_running(i),
            "node {i}: dlm_controld is not running"
        );
    }
    r.stats.conflicts = conflicts(&r.bed);
    let stats = std::mem::take(&mut r.stats);
    drop(r);
    check_nothing_left(&name, &root);
    stats
}

fn seeds_and_rounds() -> (Vec<u64>, u32) {
    let seeds = match std::env::var("HYDRA_FAULT_SEED") {
        Ok(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("HYDRA_FAULT_SEED: '{x}' is not a number"))
            })
            .collect(),
        Err(_) => CI_SEEDS.to_vec(),
    };
    let rounds = match std::env::var("HYDRA_FAULT_ROUNDS") {
        Ok(r) => r
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HYDRA_FAULT_ROUNDS: '{r}' is not a number")),
        Err(_) => CI_ROUNDS,
    };
    (seeds, rounds)
}

#[test]
fn seeded_faults_lose_no_acknowledged_record() {
    let (seeds, rounds) = seeds_and_rounds();
    let mut total = Stats::default();
    for seed in seeds {
        let t = Instant::now();
        let s = run_seed(seed, rounds);
        say!("seed {seed}: {rounds} rounds in {:?}: {s:?}", t.elapsed());
        total.rounds += s.rounds;
        total.acked += s.acked;
        total.lost += s.lost;
        total.duplicated += s.duplicated;
        total.out_of_order += s.out_of_order;
        total.overlaps += s.overlaps;
        total.torn += s.torn;
        total.conflicts += s.conflicts;
        total.settle_max = total.settle_max.max(s.settle_max);
        total.shm_max_kib = total.shm_max_kib.max(s.shm_max_kib);
        for (k, v) in s.faults {
            *total.faults.entry(k).or_default() += v;
        }
        for (k, v) in s.restarts {
            *total.restarts.entry(k).or_default() += v;
        }
    }
    // For scripts/faults.sh.
    println!("fault-stat rounds {}", total.rounds);
    for k in KINDS {
        println!(
            "fault-stat fault:{k} {}",
            total.faults.get(k).copied().unwrap_or(0)
        );
    }
    println!("fault-stat records-acknowledged {}", total.acked);
    println!("fault-stat records-lost {}", total.lost);
    println!("fault-stat records-duplicated {}", total.duplicated);
    println!("fault-stat records-out-of-order {}", total.out_of_order);
    println!("fault-stat overlapping-writers {}", total.overlaps);
    println!("fault-stat torn-unacknowledged {}", total.torn);
    println!("fault-stat fenced-write-refusals {}", total.conflicts);
    for (k, v) in &total.restarts {
        println!("fault-stat restart:{} {v}", k.replace(' ', "-"));
    }
    println!(
        "fault-stat longest-settle-ms {}",
        total.settle_max.as_millis()
    );
    println!("fault-stat most-dev-shm-kib {}", total.shm_max_kib);
}

#[test]
fn cksum_matches_posix_cksum() {
    // `printf abc | cksum` and `printf '' | cksum`.
    assert_eq!(posix_cksum(b"abc"), 1_219_131_554);
    assert_eq!(posix_cksum(b""), 4_294_967_295);
}

#[test]
fn records_parse_with_torn_pieces() {
    let rec = |n: usize, s: u64| {
        let body = format!("{n} {s} {n}.{s}.123.abc");
        format!("@@ {body} {}\n", posix_cksum(body.as_bytes()))
    };
    let mut data = rec(1, 0).into_bytes();
    data.extend_from_slice(&[0u8; 40]);
    data.extend_from_slice(rec(2, 0).as_bytes());
    data.extend_from_slice(b"@@ 1 1 1.1.9.abc 12345\n");
    data.extend_from_slice(rec(1, 2).as_bytes());
    let (recs, bad) = parse_records(&data);
    assert_eq!(recs, vec![(1, 0), (2, 0), (1, 2)]);
    assert_eq!(bad, 2);
}
