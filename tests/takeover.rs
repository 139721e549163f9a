//! The takeover (issue 15 §3): a shared LUN, two nodes, one cut off the cluster network
//! while its storage paths stay up. The survivor's dlm_controld fences it through
//! `hydra fence_scsi` (PREEMPT AND ABORT of its key on the LUN) before the survivor's
//! queued mount lock is granted; the survivor mounts the ext4 (its journal replayed)
//! and finds every record the cut node had fsynced; the cut node's later writes fail at
//! once and none of them reaches the disk; the cut node must unfence before it mounts
//! again; fsck finds the filesystem clean. Plus the three-node variant, where the cut
//! node loses quorum and the two-node majority fences it.
//!
//! The bed is tests/common/sanbed.rs: a storage host running hydra tgtd, nodes each
//! with corosync, the node daemon (map `mpatha` over two paths, a kernel device) and
//! hydra dlm_controld fencing through fence_scsi on that map. Every step is asserted on
//! what the real daemons and the real disk say.
//!
//! Mounting is `hydra mount` (lockspace `hydra_mount`, resource the filesystem UUID,
//! EX, a PERSISTENT lock left as an orphan of the node) and `hydra umount`.
//!
//! `HYDRA_TAKEOVER_FIGURES=1` prints the timings scripts/bench-takeover.sh gathers.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::TOKEN_MS;
use common::mpbed::tail;
use common::sanbed::{check_nothing_left, loop_devices, SanBed, MAP};
use common::{hydra, run, text};

/// The lockspace of `hydra mount` (MOUNT-PLAN.md).
const LOCKSPACE: &str = "hydra_mount";

/// A generous bound for anything that must not hang: a fenced node's fsync, the
/// takeover itself on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// One bed at a time in this process: two beds of corosync clusters with 1 s tokens on
/// two loaded cores would make each other's membership flap.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the mount lock: hydra mount ----

/// `hydra mount` / `hydra umount` of the shared filesystem in a node.
struct Fs<'a> {
    bed: &'a SanBed,
}

impl<'a> Fs<'a> {
    fn new(bed: &'a SanBed) -> Fs<'a> {
        Fs { bed }
    }

    /// `hydra mount` in node `i` with its path options; `opts` for `-o`.
    fn mount_cmd(&self, i: usize, opts: &str) -> Command {
        let b = self.bed;
        let mut c = b.command(i, hydra());
        c.arg("mount").args(["-t", "ext4"]);
        if !opts.is_empty() {
            c.args(["-o", opts]);
        }
        path_options(&mut c, b, i);
        c.arg(b.map_dev(i)).arg(b.mnt(i));
        c
    }

    /// `hydra umount` in node `i` with its path options and `extra` options.
    fn umount_cmd(&self, i: usize, extra: &[&str]) -> Command {
        let b = self.bed;
        let mut c = b.command(i, hydra());
        c.arg("umount");
        path_options(&mut c, b, i);
        c.args(extra).arg(b.mnt(i));
        c
    }

    fn is_mounted(&self, i: usize) -> bool {
        let mnt = self.bed.mnt(i);
        self.bed
            .mounts(i)
            .iter()
            .any(|(at, t)| *at == mnt && t == "ext4")
    }

    /// Mount in node `i`, which must succeed (the lock is free).
    fn mount(&self, i: usize) {
        let o = run(&mut self.mount_cmd(i, ""), LIMIT);
        assert!(o.status.success(), "node {i}: hydra mount: {}", text(&o));
        assert!(self.is_mounted(i), "node {i}: not mounted");
    }

    /// Mount in node `i`, which must be refused; the refusal's text.
    fn mount_refused(&self, i: usize) -> String {
        let o = run(&mut self.mount_cmd(i, ""), LIMIT);
        assert_eq!(
            o.status.code(),
            Some(1),
            "node {i}: the mount was not refused: {}",
            text(&o)
        );
        assert!(!self.is_mounted(i), "node {i}: mounted after a refusal");
        text(&o)
    }

    /// Queue node `i`'s mount for the lock (`-o lockwait`); the running process.
    fn mount_lockwait(&self, i: usize) -> Queued {
        let child = self
            .mount_cmd(i, "lockwait")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hydra mount -o lockwait");
        Queued(Some(child))
    }

    /// Wait until the queued mount of node `i` has exited 0 with the filesystem
    /// mounted.
    fn wait_mounted(&self, i: usize, queued: &mut Queued) {
        let start = Instant::now();
        loop {
            let child = queued.0.as_mut().expect("a queued mount");
            if let Some(st) = child.try_wait().unwrap() {
                let o = queued.0.take().unwrap().wait_with_output().expect("output");
                assert!(
                    st.success(),
                    "node {i}: the queued mount failed: {}",
                    text(&o)
                );
                assert!(
                    self.is_mounted(i),
                    "node {i}: hydra mount exited 0, not mounted"
                );
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "node {i}: not mounted within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmount in node `i` and release the lock.
    fn umount(&self, i: usize) {
        let o = run(&mut self.umount_cmd(i, &[]), LIMIT);
        assert!(o.status.success(), "node {i}: hydra umount: {}", text(&o));
        assert!(!self.is_mounted(i), "node {i}: still mounted");
    }

    /// Unmount in node `i` while it is cut off, with a short lock manager timeout (the
    /// lock cannot be released while the node's lockspace is stopped); not asserted.
    fn umount_cut_off(&self, i: usize) -> Output {
        run(&mut self.umount_cmd(i, &["--dlm-timeout", "5"]), LIMIT)
    }
}

/// A `hydra mount -o lockwait` in the background; killed by pid on drop if it still
/// runs (a failing test).
struct Queued(Option<Child>);

impl Queued {
    fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// hydra mount's PATH OPTIONS for node `i` (MOUNT-PLAN.md).
fn path_options(c: &mut Command, b: &SanBed, i: usize) {
    c.arg("--dlm-run-dir")
        .arg(b.dlm_run_dir(i))
        .arg("--run-dir")
        .arg(b.run_dir(i))
        .arg("--dev-dir")
        .arg(b.dev_dir(i))
        .arg("--store-path")
        .arg(b.store_path(i))
        .arg("--state-dir")
        .arg(b.node_dir(i).join("mount-state"));
}

// ---- the cut node's writes ----

/// One numbered record: 128 bytes, its number and the run's nonce.
fn record(k: u64, nonce: u64) -> Vec<u8> {
    let mut r = format!("record {k:08} run {nonce:016x} ").into_bytes();
    r.resize(127, b'.');
    r.push(b'\n');
    r
}

/// What node 1's writer saw.
#[derive(Debug, Default)]
struct Writes {
    /// Records whose fsync succeeded (acknowledged), in order.
    acked: Vec<u64>,
    /// Failed records: (number, error, when the write started and how long the
    /// write+fsync took, both from the writer's start).
    failed: Vec<(u64, String, Duration, Duration)>,
    /// The longest write+fsync.
    longest: Duration,
}

/// Node 1's writer: appends a record to `file`, fsyncs, again, until `stop`; logs what
/// was acknowledged. After the first failure it goes on (every later record must fail
/// too), a little slower.
fn writer(
    file: PathBuf,
    nonce: u64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Writes>>,
) {
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let res = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| {
                f.write_all(&record(k, nonce))?;
                f.sync_all()
            });
        let took = t.elapsed();
        let mut w = log.lock().unwrap();
        w.longest = w.longest.max(took);
        match res {
            Ok(()) => w.acked.push(k),
            Err(e) => w
                .failed
                .push((k, e.to_string(), t.duration_since(epoch), took)),
        }
        let failing = !w.failed.is_empty();
        drop(w);
        k += 1;
        if failing {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `f` on a thread of its own; its result, or None when it has not returned within
/// `limit` (a hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Whether `needle` occurs in the file (read in chunks, overlapping by its length).
fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    let keep = needle.len() - 1;
    loop {
        let n = f.read_at(&mut buf, off).expect("read the backing file");
        if n == 0 {
            return false;
        }
        if buf[..n].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        if n <= keep {
            return false;
        }
        off += (n - keep) as u64;
    }
}

// ---- the DLM's own account ----

/// `(stamp, line)` of a `dlm_tool dump`.
fn dump_lines(dump: &str) -> Vec<(f64, String)> {
    dump.lines()
        .filter_map(|l| {
            let (s, rest) = l.split_once(' ')?;
            Some((s.parse().ok()?, rest.to_string()))
        })
        .collect()
}

// ---- the kernel's account (ext4's journal replay) ----

/// Write a line into the kernel log (/dev/kmsg); whether it could.
fn kmsg_mark(line: &str) -> bool {
    OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .is_ok()
}

/// The kernel log's records as `(usec, text)` (/dev/kmsg: "prio,seq,usec,flags;text",
/// one record per read; the usec clock is the kernel's monotonic one).
fn kmsg_records() -> Vec<(u64, String)> {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match std::io::Read::read(&mut &f, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                let Some((head, text)) = rec.split_once(';') else {
                    continue;
                };
                if let Some(usec) = head.split(',').nth(2).and_then(|u| u.parse().ok()) {
                    out.push((usec, text.lines().next().unwrap_or("").to_string()));
                }
            }
            // EPIPE: records overwritten since the last read; go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}

/// When ext4 on `dev` (`loop3`) finished its journal replay (`EXT4-fs (loop3): recovery
/// complete`) after the kernel-log line `mark`, relative to it. (Not its "mounted
/// filesystem" line: the kernel rate-limits those, and other mounts on the machine can
/// use the allowance up.)
fn ext4_replayed_after(mark: &str, dev: &str) -> Option<Duration> {
    let recs = kmsg_records();
    let i = recs.iter().rposition(|(_, t)| t.contains(mark))?;
    let t0 = recs[i].0;
    let needle = format!("EXT4-fs ({dev}): recovery complete");
    recs[i..]
        .iter()
        .find(|(_, t)| t.starts_with(&needle))
        .map(|(u, _)| Duration::from_micros(u - t0))
}

// ---- the scenario ----

/// What a takeover measured, for the bench.
#[derive(Debug)]
struct Timings {
    /// cut → node 2 mounted, on this process's clock.
    mounted: Duration,
    /// From the survivor's dlm_controld log, relative to the cut (daemon stamps put on
    /// this process's clock by a calibration join just before the cut).
    detected: Duration,
    fenced: Duration,
    recovered: Duration,
    /// From the kernel log (None where /dev/kmsg cannot be written): ext4 on node 2's
    /// device finished replaying the journal.
    replayed: Option<Duration>,
}

fn mkfs_and_uuid(bed: &SanBed) -> String {
    let dev = bed.map_dev(1);
    let dev = dev.to_str().unwrap();
    bed.exec_ok(1, &["mkfs.ext4", "-q", "-F", dev]);
    let uuid = bed.exec_ok(1, &["blkid", "-p", "-s", "UUID", "-o", "value", dev]);
    let uuid = uuid.trim().to_string();
    assert_eq!(uuid.len(), 36, "blkid: '{uuid}'");
    uuid
}

/// Both (all) nodes unfenced: `list-status` says ON for each, and the LUN carries one
/// Write Exclusive – Registrants Only reservation (mpathpersist through the node daemon).
fn assert_unfenced(bed: &SanBed) {
    let o = bed.fence_agent(1, &["-o", "list-status"]);
    assert_eq!(o.status.code(), Some(0), "list-status: {}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    for i in 1..=bed.nodes() {
        let line = format!("{},,ON", bed.cluster_addr(i));
        assert!(listing.lines().any(|l| l == line), "{line} in\n{listing}");
    }
    let keys = bed.node_tool_ok(1, "mpathpersist", &["--in", "-k", MAP]);
    let res = bed.node_tool_ok(1, "mpathpersist", &["--in", "-r", MAP]);
    eprintln!("registered keys:\n{keys}reservation:\n{res}");
    // Each node's key on both of its paths.
    let n = keys.lines().filter(|l| l.trim().starts_with("0x")).count();
    assert_eq!(n, 2 * bed.nodes(), "two registrations per node:\n{keys}");
    assert!(
        res.to_ascii_lowercase()
            .contains("write exclusive, registrants only"),
        "a WERO reservation:\n{res}"
    );
}

/// The scenario on a bed of `n` nodes (node 1 is cut, node 2 takes over).
fn takeover(n: usize) -> Timings {
    let _one = serial();
    let bed = SanBed::start(n);

    // 1. Both unfenced by their dlm_controld; WERO on the LUN.
    assert_unfenced(&bed);

    // Node 1 makes the filesystem and mounts it under the lock.
    let uuid = mkfs_and_uuid(&bed);
    let fs = Fs::new(&bed);
    fs.mount(1);

    // Node 1 writes and fsyncs numbered records, logging what was acknowledged.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let records = bed.node_path(1, bed.mnt(1).join("records"));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Writes::default()));
    let epoch = Instant::now();
    let writer_thread = {
        let (records, stop, writes) = (records.clone(), stop.clone(), writes.clone());
        std::thread::spawn(move || writer(records, nonce, epoch, stop, writes))
    };
    let t = Instant::now();
    while writes.lock().unwrap().acked.len() < 20 {
        let w = writes.lock().unwrap();
        assert!(
            w.failed.is_empty(),
            "node 1's records fail before the cut: {w:?}"
        );
        drop(w);
        assert!(t.elapsed() < LIMIT, "node 1's records are not acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Node 2's mount is refused while node 1 holds the lock, naming node 1.
    let refusal = fs.mount_refused(2);
    eprintln!("node 2's mount refused: {}", refusal.trim());
    assert!(
        refusal.contains(&format!("{uuid} is mounted by node 1")),
        "the refusal names node 1: {refusal}"
    );
    // Then queued with lockwait: waiting in the DLM, not mounted.
    let mut queued = fs.mount_lockwait(2);
    bed.wait_for("node 2's lock request queued", || {
        let o = bed.dlm_tool(2, &["lockdebug", LOCKSPACE]);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.split_once("Waiting\n")
            .is_some_and(|(_, w)| w.lines().next().is_some_and(|l| !l.trim().is_empty()))
    });
    assert!(queued.running(), "the queued mount ended");
    assert!(
        !fs.is_mounted(2),
        "node 2 mounted while node 1 holds the lock"
    );

    // Calibration: node 2's daemon logs `cpg_join dlm:ls:<name>` as it takes a join;
    // its dump stamps are then put on this process's clock.
    let before = Instant::now();
    let o = bed.dlm_tool(2, &["join", "takeover-clock"]);
    assert!(o.status.success(), "join: {}", text(&o));
    let dump = String::from_utf8_lossy(&bed.dlm_tool(2, &["dump"]).stdout).into_owned();
    let joined_at = dump_lines(&dump)
        .into_iter()
        .find(|(_, l)| l.contains("cpg_join dlm:ls:takeover-clock"))
        .map(|(s, _)| s)
        .unwrap_or_else(|| panic!("no calibration line in node 2's dump:\n{dump}"));

    // 2. Node 1's cluster link is cut; its storage paths stay up.
    let mark = format!("{}: takeover test: cut node 1", bed.name());
    let marked = kmsg_mark(&mark);
    let cut = Instant::now();
    bed.cut(1);

    // 3. Node 2 is granted the lock only after node 1 is fenced, and mounts.
    fs.wait_mounted(2, &mut queued);
    let mounted = cut.elapsed();
    eprintln!("node 2 mounted {mounted:?} after the cut");

    let dump = String::from_utf8_lossy(&bed.dlm_tool(2, &["dump"]).stdout).into_owned();
    let lines = dump_lines(&dump);
    let since_cut = |s: f64| {
        (before + Duration::from_secs_f64((s - joined_at).max(0.0))).saturating_duration_since(cut)
    };
    let find = |from: f64, pred: &dyn Fn(&str) -> bool, what: &str| {
        lines
            .iter()
            .find(|(s, l)| *s >= from && pred(l))
            .map(|(s, _)| *s)
            .unwrap_or_else(|| panic!("no {what} in node 2's dump:\n{dump}"))
    };
    let seen = find(
        joined_at,
        &|l| l.contains("left [1 nodedown]"),
        "node 1's loss",
    );
    let fenced = find(
        seen,
        &|l| l.contains("fence result 1 success"),
        "fencing of node 1",
    );
    // The lockspace's recovery without node 1, after which the queued request is granted
    // (the lockspace is stopped until then: locking resumes only when recovery is done).
    let recover_done = |l: &str| {
        l.starts_with(&format!("{LOCKSPACE}: dlm_recover generation")) && l.contains(" done")
    };
    let recovered = find(seen, &recover_done, "hydra_mount's recovery");
    assert!(
        fenced <= recovered,
        "node 2's lockspace recovered (and granted) at {recovered} before node 1 was fenced at {fenced}:\n{dump}"
    );
    // No recovery of the lockspace at all between the loss and the fence result.
    assert!(
        !lines
            .iter()
            .any(|(s, l)| *s >= seen && *s < fenced && recover_done(l)),
        "hydra_mount recovered before fencing completed:\n{dump}"
    );
    let status = String::from_utf8_lossy(&bed.dlm_tool(2, &["status"]).stdout).into_owned();
    eprintln!("node 2's dlm_tool status:\n{status}");
    // `node 1 X add A rem R fail F fence T at 2 WALLTIME`: not a member, fenced (T >= F)
    // by node 2.
    let line = status
        .lines()
        .find(|l| l.starts_with("node 1 "))
        .unwrap_or_else(|| panic!("no node 1 in dlm_tool status:\n{status}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = |k: &str| {
        w.iter()
            .position(|x| *x == k)
            .and_then(|i| w.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {k} in '{line}'"))
    };
    assert_eq!(w[2], "X", "node 1 not a member: {line}");
    assert!(num("fence") >= num("fail") && num("fail") > 0, "{line}");
    assert_eq!(num("at"), 2, "fenced by node 2: {line}");
    let o = bed.fence_agent(2, &["-o", "list-status"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        listing
            .lines()
            .any(|l| l == format!("{},,OFF", bed.cluster_addr(1))),
        "node 1 fenced:\n{listing}"
    );
    // ext4 replayed node 1's journal on node 2 (the kernel says so).
    let loop2 = std::fs::canonicalize(bed.map_dev(2)).expect("node 2's device");
    let loop2 = loop2.file_name().unwrap().to_str().unwrap().to_string();
    let replayed = marked.then(|| ext4_replayed_after(&mark, &loop2)).flatten();
    if marked {
        assert!(
            replayed.is_some(),
            "no 'EXT4-fs ({loop2}): recovery complete' after the cut in the kernel log"
        );
    } else {
        eprintln!("/dev/kmsg not writable here: journal replay not checked in the kernel log");
    }
    let timings = Timings {
        mounted,
        detected: since_cut(seen),
        fenced: since_cut(fenced),
        recovered: since_cut(recovered),
        replayed,
    };

    // 4. Node 1's writer hits the fence: its fsyncs fail, none hangs.
    let t = Instant::now();
    while writes.lock().unwrap().failed.is_empty() {
        assert!(t.elapsed() < LIMIT, "node 1's fsyncs do not fail (or hang)");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let joined = within(LIMIT, move || writer_thread.join().is_ok());
    assert_eq!(joined, Some(true), "node 1's writer hangs");
    let w = std::mem::take(&mut *writes.lock().unwrap());
    eprintln!(
        "node 1: {} records acknowledged, {} failed, longest write+fsync {:?}; the cut \
         {:?} after the writer's start; failures (record, error, start, took): {:?}",
        w.acked.len(),
        w.failed.len(),
        w.longest,
        cut.duration_since(epoch),
        w.failed
    );
    eprintln!(
        "--- node 1's iscsid log (tail) ---\n{}",
        tail(&bed.node_log(1), 25)
    );
    assert!(w.longest < LIMIT, "a write+fsync took {:?}", w.longest);
    // The fence costs node 1 its writes, not its paths: a write running at the target
    // when it was preempted ends with TASK ABORTED (TAS = 1) and is refused on retry,
    // rather than timing out (30 s) and failing a healthy path. The node daemon says
    // once that its key is gone.
    let log1 = bed.node_log(1);
    assert!(
        !log1.contains("failing path"),
        "the fence failed a path of node 1:\n{}",
        tail(&log1, 40)
    );
    assert!(
        log1.contains("it has been fenced"),
        "node 1's daemon does not say it is fenced:\n{}",
        tail(&log1, 40)
    );
    let first_fail = w.failed[0].0;
    assert!(
        w.acked.iter().all(|k| *k < first_fail),
        "node 1 had a record acknowledged after a failed one: {w:?}"
    );

    // Node 2 sees every record node 1 had acknowledged (the journal replayed).
    let seen_by_2 = std::fs::read(bed.node_path(2, bed.mnt(2).join("records")))
        .expect("node 2 reads the records");
    for k in &w.acked {
        let r = record(*k, nonce);
        assert!(
            seen_by_2.chunks(128).any(|c| c == r.as_slice()),
            "acknowledged record {k} missing on node 2 ({} bytes read)",
            seen_by_2.len()
        );
    }
    eprintln!("node 2 sees all {} acknowledged records", w.acked.len());

    // Node 1 keeps writing unique markers with fsync (through its filesystem, and
    // straight to the map with O_DIRECT): every one fails, none hangs.
    let marker = format!("HSN-FENCED-MARKER-{nonce:016x}");
    let files: Vec<PathBuf> = (0..8)
        .map(|m| bed.node_path(1, bed.mnt(1).join(format!("marker-{m}"))))
        .collect();
    let dev = bed.map_dev(1);
    let m2 = marker.clone();
    let results = within(LIMIT, move || {
        let mut res = Vec::new();
        for f in &files {
            let r = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(f)
                .and_then(|mut f| {
                    f.write_all(m2.repeat(4096 / m2.len() + 1).as_bytes())?;
                    f.sync_all()
                });
            res.push(r.map_err(|e| e.to_string()));
        }
        // The last 4 KiB of the map, O_DIRECT.
        let r = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&dev)
            .and_then(|f| {
                let mut buf = AlignedBlock::new();
                buf.fill(m2.as_bytes());
                // A block device's size: seek to its end.
                let size = std::io::Seek::seek(&mut &f, std::io::SeekFrom::End(0))?;
                f.write_at(buf.get(), size.saturating_sub(4096))?;
                f.sync_all()
            });
        res.push(r.map_err(|e| e.to_string()));
        res
    })
    .expect("node 1's marker writes hang");
    eprintln!("node 1's marker writes: {results:?}");
    // A reservation conflict reaches the application as EBADE ("Invalid exchange":
    // the block layer's BLK_STS_NEXUS, what sd gives for RESERVATION CONFLICT too), or
    // as EIO / EROFS once ext4 has aborted its journal.
    assert!(
        results.iter().all(|r| r.as_ref().is_err_and(|e| {
            ["os error 52)", "os error 5)", "os error 30)"]
                .iter()
                .any(|c| e.ends_with(c))
        })),
        "a fenced node's write did not fail as refused: {results:?}"
    );
    let img = bed.backing_file();
    assert!(
        !file_contains(&img, marker.as_bytes()),
        "a marker of the fenced node is on the disk"
    );

    // Node 1 unmounts (ext4 may refuse: then lazily); still no marker on the disk.
    // hydra umount unmounts, then cannot release the lock: node 1's lockspace is
    // stopped (it waits to fence node 2) — the record stays for a later `hydra umount`.
    let mnt1 = bed.mnt(1);
    let o = fs.umount_cut_off(1);
    eprintln!("node 1's umount: {} {}", o.status, text(&o).trim());
    if fs.is_mounted(1) {
        bed.exec_ok(1, &["umount", "-l", mnt1.to_str().unwrap()]);
    }
    assert!(!fs.is_mounted(1), "node 1 still mounted");
    assert!(
        !file_contains(&img, marker.as_bytes()),
        "a marker of the fenced node reached the disk at its umount"
    );
    let o = bed.fence_agent(1, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(2), "node 1's status: {}", text(&o));

    // 5. Node 1 comes back.
    come_back(&bed, &fs, &img, &marker);
    timings
}

/// Node 1 is healed onto the cluster network: node 2 removes it from the cluster (its
/// corosync exits), recovers without it, and node 1 "reboots" its cluster stack. Then
/// node 1's mount is refused while node 2 holds the lock; node 2 unmounts; fsck -n is
/// clean; node 1's mount is refused because it is fenced; `hydra fence_scsi -o on`
/// unfences it; it mounts and finds the records.
fn come_back(bed: &SanBed, fs: &Fs, img: &Path, marker: &str) {
    let n = bed.nodes();
    bed.heal(1);
    // Node 1's dlm_controld ran the lockspace apart from node 2's: back on the ring it
    // is a stateful merge, which node 2 answers as dlm_controld does
    // (kick_node_from_cluster): corosync_cfg_kill_node makes node 1's corosync exit,
    // and it is fenced (again: "Already OFF"). No lockspace could recover with node 1
    // in it, and node 1's daemon would never leave by itself: with two nodes it still
    // waits to fence node 2, which it may not (its own key is gone).
    bed.wait_for("node 2 removing node 1 from the cluster", || {
        bed.dlm_output(2)
            .contains("stateful merge: removing node 1 from the cluster")
    });
    let t = Instant::now();
    while bed.corosync_running(1) {
        assert!(
            t.elapsed() < LIMIT,
            "node 1's corosync did not exit\n--- node 2's dlm_controld (tail) ---\n{}\n{}",
            tail(&bed.dlm_output(2), 40),
            (1..=n)
                .map(|i| format!(
                    "--- node {i}'s corosync.log (tail) ---\n{}\n",
                    tail(
                        &std::fs::read_to_string(bed.node_dir(i).join("corosync.log"))
                            .unwrap_or_default(),
                        25
                    )
                ))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in [1, 2] {
        let s = bed.dlm_tool(i, &["status"]);
        let l = bed.dlm_tool(i, &["ls"]);
        eprintln!(
            "--- node {i} after the heal: dlm_tool status ---\n{}--- dlm_tool ls ---\n{}",
            text(&s),
            text(&l)
        );
    }
    eprintln!(
        "--- node 1's dlm_controld (tail) ---\n{}",
        tail(&bed.dlm_output(1), 40)
    );
    eprintln!(
        "--- node 2's dlm_controld (tail) ---\n{}",
        tail(&bed.dlm_output(2), 40)
    );
    // Node 2 keeps its key whatever node 1's daemon tried: with two nodes, node 1's
    // daemon (quorate alone under two_node) tried to fence node 2 since the cut, and
    // failed, as its own key is gone.
    let o = bed.fence_agent(2, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "node 2's status: {}", text(&o));
    if n == 2 {
        let out = bed.dlm_output(1);
        assert!(
            out.contains("this node has been fenced and may not fence others"),
            "node 1's daemon lost the fence race:\n{}",
            tail(&out, 40)
        );
    }
    // Node 2's lockspace recovers without node 1, by itself.
    bed.wait_for("node 2's mount lockspace recovered without node 1", || {
        let o = bed.dlm_tool(2, &["ls", LOCKSPACE]);
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        let members = s.lines().find_map(|l| l.strip_prefix("members"));
        members.is_some_and(|m| !m.split_whitespace().any(|w| w == "1"))
            && !s.contains("new status")
    });

    // Node 1's cluster stack restarts, as after a reboot. Its dlm_controld ended with
    // corosync, holding lockspaces: it refuses to start again while the file saying so
    // is there (its clients might still be in their critical sections); with node 1's
    // filesystem unmounted and its lock holders gone, the operator (this test) removes
    // it, as a reboot would (the run directory is a tmpfs).
    bed.kill_dlm(1);
    let locks = bed.dlm_run_dir(1).join("dlm_controld.locks");
    assert!(
        locks.exists(),
        "{} after a stop holding locks",
        locks.display()
    );
    std::fs::remove_file(&locks).unwrap();
    // hydra mount's record of node 1's mount goes too: with no lock manager running,
    // its locks went with it (`hydra umount` says so and removes the record).
    let o = run(&mut fs.umount_cmd(1, &[]), LIMIT);
    eprintln!("node 1's second hydra umount: {}", text(&o).trim());
    assert!(o.status.success(), "hydra umount: {}", text(&o));
    bed.start_corosync(1);
    bed.wait_members(1, n);
    bed.wait_members(2, n);
    // It comes back without unfencing at start (no `unfence` line), so that node 1 is
    // still fenced and its refusal can be seen; with the line, the start itself would
    // unfence it, as a rebooted node's does.
    let conf = bed.dlm_conf_path(1);
    let text_conf = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text_conf.replace("unfence scsi\n", "")).unwrap();
    bed.restart_dlm(1);
    let o = bed.fence_agent(1, &["-o", "status"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "node 1 still fenced: {}",
        text(&o)
    );

    // Refused while node 2 holds the lock.
    let refusal = fs.mount_refused(1);
    eprintln!("node 1's mount refused: {}", refusal.trim());
    assert!(
        refusal.contains("is mounted by node 2"),
        "names node 2: {refusal}"
    );
    let o = bed.fence_agent(2, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "node 2's status: {}", text(&o));

    // Node 2 unmounts; the filesystem is clean.
    fs.umount(2);
    let dev2 = bed.map_dev(2);
    let dev2 = dev2.to_str().unwrap();
    bed.exec_ok(2, &["blockdev", "--flushbufs", dev2]);
    let o = bed.exec(2, &["fsck.ext4", "-n", "-f", dev2]);
    eprintln!("fsck.ext4 -n -f: {}\n{}", o.status, text(&o));
    assert_eq!(o.status.code(), Some(0), "fsck -n: {}", text(&o));
    assert!(
        !file_contains(img, marker.as_bytes()),
        "a marker on the disk"
    );

    // Node 1: refused as fenced until it unfences.
    let refusal = fs.mount_refused(1);
    eprintln!("node 1's mount refused: {}", refusal.trim());
    assert!(
        refusal.contains("this node is fenced"),
        "refused as fenced: {refusal}"
    );
    let o = bed.fence_agent(1, &["-o", "on", "-n", &bed.cluster_addr(1).to_string()]);
    assert_eq!(o.status.code(), Some(0), "node 1 unfences: {}", text(&o));
    let o = bed.fence_agent(1, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "node 1's status: {}", text(&o));
    fs.mount(1);
    let recs = std::fs::read(bed.node_path(1, bed.mnt(1).join("records"))).unwrap();
    assert!(
        !recs.is_empty() && recs.len().is_multiple_of(128),
        "{} bytes",
        recs.len()
    );
    fs.umount(1);
}

/// A 4 KiB buffer aligned for O_DIRECT.
struct AlignedBlock {
    buf: Vec<u8>,
    off: usize,
}

impl AlignedBlock {
    fn new() -> AlignedBlock {
        let buf = vec![0u8; 8192];
        let off = (4096 - buf.as_ptr() as usize % 4096) % 4096;
        AlignedBlock { buf, off }
    }

    fn fill(&mut self, pat: &[u8]) {
        for (i, b) in self.buf[self.off..self.off + 4096].iter_mut().enumerate() {
            *b = pat[i % pat.len()];
        }
    }

    fn get(&self) -> &[u8] {
        &self.buf[self.off..self.off + 4096]
    }
}

fn print_figures(t: &Timings) {
    if std::env::var_os("HYDRA_TAKEOVER_FIGURES").is_none() {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let figure = |k: &str, d: Duration| println!("figure {k} {:.1}", ms(d));
    figure("takeover_ms", t.mounted);
    figure("detection_ms", t.detected);
    figure("fencing_ms", t.fenced.saturating_sub(t.detected));
    figure("dlm_recovery_ms", t.recovered.saturating_sub(t.fenced));
    if let Some(replayed) = t.replayed {
        // The grant, hydra mount's probe and key check and mount(2) up to the end of
        // ext4's journal replay; then the rest of the mount, hydra mount's record and
        // exit, until the test saw it.
        figure("grant_and_replay_ms", replayed.saturating_sub(t.recovered));
        figure("mount_rest_ms", t.mounted.saturating_sub(replayed));
    }
    // corosync's consensus defaults to 1.2 × token (corosync.conf(5)).
    let bound = TOKEN_MS as f64 * 2.2 + 1000.0;
    println!("figure bound_ms {bound:.1}");
}

#[test]
fn two_nodes_cut_node_is_fenced_before_the_survivor_mounts() {
    let t = takeover(2);
    eprintln!("{t:?}");
    print_figures(&t);
}

#[test]
fn three_nodes_the_majority_fences_the_cut_node() {
    let t = takeover(3);
    eprintln!("{t:?}");
}

/// For scripts/bench-takeover.sh: `hydra fence_scsi -o off` alone, node 2 fencing node
/// 1 through its map as dlm_controld runs it (then node 1 unfences again), on a
/// two-node bed; HYDRA_BENCH_RUNS times (default 10), one `figure fence_off_ms` each.
#[test]
#[ignore = "a benchmark: scripts/bench-takeover.sh runs it"]
fn bench_fence_scsi_off() {
    let _one = serial();
    let runs: usize = std::env::var("HYDRA_BENCH_RUNS")
        .ok()
        .map(|r| r.parse().expect("HYDRA_BENCH_RUNS: a count"))
        .unwrap_or(10);
    let bed = SanBed::start(2);
    let victim = bed.cluster_addr(1).to_string();
    for _ in 0..runs {
        let t = Instant::now();
        let o = bed.fence_agent(2, &["-o", "off", "-n", &victim]);
        let took = t.elapsed();
        assert_eq!(o.status.code(), Some(0), "off: {}", text(&o));
        assert!(text(&o).contains("Success: Powered OFF"), "{}", text(&o));
        println!("figure fence_off_ms {:.1}", took.as_secs_f64() * 1000.0);
        let o = bed.fence_agent(1, &["-o", "status"]);
        assert_eq!(o.status.code(), Some(2), "victim's status: {}", text(&o));
        let o = bed.fence_agent(1, &["-o", "on", "-n", &victim]);
        assert_eq!(o.status.code(), Some(0), "on: {}", text(&o));
    }
}

/// The bed leaves nothing behind: no link or namespace of its name, no loop device on
/// its files, no mount on its directories; also when the test using it panics.
#[test]
fn bed_cleans_up_after_itself() {
    let _one = serial();
    // A bed with a mounted filesystem, dropped normally.
    let (name, dir) = {
        let bed = SanBed::start(2);
        mkfs_and_uuid(&bed);
        Fs::new(&bed).mount(1);
        std::fs::write(bed.node_path(1, bed.mnt(1).join("f")), b"x").unwrap();
        let loops = loop_devices();
        assert!(
            loops
                .iter()
                .any(|(_, b)| b.starts_with(bed.dir().to_str().unwrap())),
            "the maps are loop devices: {loops:?}"
        );
        (bed.name().to_string(), bed.dir().to_path_buf())
    };
    check_nothing_left(&name, &dir);
    // And when the test panics with the filesystem mounted.
    let (tx, rx) = mpsc::channel();
    let r = std::thread::spawn(move || {
        let bed = SanBed::start(2);
        tx.send((bed.name().to_string(), bed.dir().to_path_buf()))
            .unwrap();
        let dev = bed.map_dev(2);
        bed.exec_ok(2, &["mkfs.ext4", "-q", "-F", dev.to_str().unwrap()]);
        bed.exec_ok(
            2,
            &["mount", dev.to_str().unwrap(), bed.mnt(2).to_str().unwrap()],
        );
        panic!("a test fails with a filesystem mounted");
    })
    .join();
    assert!(r.is_err());
    let (name, dir) = rx.recv().unwrap();
    check_nothing_left(&name, &dir);
}
