//! Multipath end to end (issue 14, "Network namespaces"): a storage host serving one LUN
//! through two portals on two networks, a node host running `hydra iscsid` (sessions,
//! maps, devices) in its own mount namespace; discovery over both portals, login, one
//! map `mpatha` with two paths, served as a kernel block device
//! (`<dev-dir>/mapper/mpatha`). What a user of the classic setup would do, checked by
//! its real outcomes:
//!
//! - ext4 on the map, a data set written and fsynced (buffered and O_DIRECT, and `dd
//!   oflag=direct`) while each link in turn is cut silently and restored: no error at the
//!   application, every byte read back after a remount, and `multipath -ll` showing the
//!   cut path failed, then active again;
//! - a partition (`mpathap1` with `partition_delimiter p`), ext4 on it;
//! - no path left: `no_path_retry queue` holds a write until a link returns,
//!   `no_path_retry 2` fails it with EIO;
//! - ALUA: I/O on the active/optimized portal group, staying there while the other
//!   group is put in standby, moving when `tgtadm --mode portal --op update` swaps the
//!   states (counted in bytes on each network), also with the group in standby already
//!   at login (its path joins the map as a ghost though READ CAPACITY is refused there);
//! - a map over Debian's tgtd;
//! - `mpathpersist --out --register` registers on both I_T nexuses (READ FULL STATUS,
//!   also read by a session of its own).
//!
//! Node records use `noop_out_interval = noop_out_timeout = 1` (iscsid.conf), so that a
//! silent cut fails a path within about 2 s; multipath.conf sets `polling_interval 1`.
//! The beds are built by tests/common/mpbed.rs.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mpbed::{tail, Bed, Host, Link, MapView, Topology, SETTLE};
use common::{sparse, text};

const IQN: &str = "iqn.2026-12.org.hydra:mp";
/// tgt's NAA designator of LUN 1 of tid 1 (reference §2.6): the same from both targets.
const WWID: &str = "360000000000000000e00000000010001";
const LUN_SIZE: u64 = 256 << 20;
const MAP: &str = "mpatha";

/// What new node records start with: NOP-Out every second, 1 s to answer.
const ISCSID_CONF: &str = "\
node.startup = manual
node.conn[0].timeo.noop_out_interval = 1
node.conn[0].timeo.noop_out_timeout = 1
";

/// multipath.conf of the node host: friendly names from a bindings file of its own,
/// every path multipathed, checks every second; `overrides` (above the built-in `devices`
/// entry for IET/VIRTUAL-DISK, reference §2.1) as given.
fn mp_conf(overrides: &str) -> String {
    format!(
        "\
defaults {{
    user_friendly_names yes
    find_multipaths no
    polling_interval 1
    partition_delimiter p
    bindings_file \"@DIR@/bindings\"
    wwids_file \"@DIR@/wwids\"
}}
overrides {{
{overrides}}}
"
    )
}

fn target_conf(portal_groups: &str) -> String {
    format!("{portal_groups}<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n")
}

/// A bed with hydra tgtd serving one 256 MiB LUN, the node daemon started with
/// `overrides`, logged in over both networks; the sessions (sid, network).
fn hydra_bed(portal_groups: &str, overrides: &str) -> (Bed, Vec<(u32, Link)>) {
    let mut bed = Bed::new();
    bed.start_hydra_tgtd(&target_conf(portal_groups), |d| {
        sparse(&d.join("lun.img"), LUN_SIZE)
    });
    bed.start_node(ISCSID_CONF, &mp_conf(overrides));
    let sessions = bed.discover_and_login();
    (bed, sessions)
}

fn sid_of(sessions: &[(u32, Link)], l: Link) -> u32 {
    sessions
        .iter()
        .find(|(_, x)| *x == l)
        .map(|(s, _)| *s)
        .expect("a session per network")
}

/// The map's two paths are the two sessions' LUN 1.
fn assert_paths_are_sessions(m: &MapView, sessions: &[(u32, Link)]) {
    let mut sids: Vec<u32> = m.paths().iter().filter_map(|p| p.sid()).collect();
    sids.sort_unstable();
    let mut want: Vec<u32> = sessions.iter().map(|(s, _)| *s).collect();
    want.sort_unstable();
    assert_eq!(sids, want, "{m:#?}");
}

// ---- data ----

const FILES: usize = 64;
const FILE_SIZE: usize = 1 << 20;

/// The content of data file `file` at generation `gen` (xorshift64*: cheap, and every
/// generation differs from the last, so a stale block cannot pass for a new one).
fn pattern(file: u64, gen: u64, buf: &mut [u8]) {
    let mut x = (file << 32 | gen) ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A buffer aligned for O_DIRECT.
struct Aligned {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let buf = vec![0u8; len + 4096];
        let off = (4096 - buf.as_ptr() as usize % 4096) % 4096;
        Aligned { buf, off, len }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

fn direct(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write && !path.starts_with("/dev"))
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// A write load on a mounted filesystem: data file after data file (every fourth with
/// O_DIRECT), each fsynced, round after round, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<LoadReport>,
}

struct LoadReport {
    errors: Vec<String>,
    /// Per file, the generation last written (0: never).
    gens: Vec<u64>,
    /// The longest time between two completed files.
    longest_pause: Duration,
}

impl Load {
    fn start(dir: PathBuf) -> Load {
        std::fs::create_dir_all(&dir).expect("data dir");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let handle = std::thread::spawn(move || {
            let mut r = LoadReport {
                errors: Vec::new(),
                gens: vec![0; FILES],
                longest_pause: Duration::ZERO,
            };
            let mut buf = Aligned::new(FILE_SIZE);
            let mut last = Instant::now();
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) && r.errors.len() < 10 {
                let file = (n % FILES as u64) as usize;
                let gen = n / FILES as u64 + 1;
                pattern(file as u64, gen, buf.get());
                let path = dir.join(format!("f{file:02}"));
                let res = if file % 4 == 3 {
                    direct(&path, true).and_then(|f| {
                        f.write_all_at(buf.get(), 0)?;
                        f.sync_all()
                    })
                } else {
                    File::create(&path).and_then(|mut f| {
                        f.write_all(buf.get())?;
                        f.sync_all()
                    })
                };
                match res {
                    Ok(()) => {
                        r.gens[file] = gen;
                        r.longest_pause = r.longest_pause.max(last.elapsed());
                        last = Instant::now();
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        r.errors.push(format!("{}: {e}", path.display()));
                        r.gens[file] = u64::MAX;
                    }
                }
                n += 1;
            }
            r
        });
        Load { stop, done, handle }
    }

    /// Wait until `n` more files are written; on a stall, what the map shows.
    fn wait_progress(&self, bed: &Bed, n: u64, what: &str) {
        let from = self.done.load(Ordering::Relaxed);
        let start = Instant::now();
        while self.done.load(Ordering::Relaxed) < from + n {
            if self.handle.is_finished() {
                panic!("{what}: the writer stopped (errors)");
            }
            if start.elapsed() > SETTLE {
                let o = bed.node_tool("multipath", &["-ll"]);
                panic!(
                    "{what}: {n} files not written within {SETTLE:?}\n{}\n--- iscsid log ---\n{}",
                    text(&o),
                    tail(&bed.node_log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread")
    }
}

/// Every file written is read back (through the page cache of a fresh mount: from the
/// device) and compared byte for byte.
fn verify_files(dir: &Path, gens: &[u64]) -> usize {
    let mut want = vec![0u8; FILE_SIZE];
    let mut got = Vec::with_capacity(FILE_SIZE);
    let mut n = 0;
    for (file, gen) in gens.iter().enumerate() {
        if *gen == 0 {
            continue;
        }
        let path = dir.join(format!("f{file:02}"));
        pattern(file as u64, *gen, &mut want);
        got.clear();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut got))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            got == want,
            "{}: generation {gen} not read back (first difference at byte {:?})",
            path.display(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
        n += 1;
    }
    n
}

/// `len` bytes of pattern `seed` written at `offset` of a device with O_DIRECT, in
/// 1 MiB writes, then fdatasync.
fn write_direct(dev: &Path, offset: u64, len: usize, seed: u64) -> std::io::Result<()> {
    let f = direct(dev, true)?;
    let mut buf = Aligned::new(FILE_SIZE);
    for (i, at) in (0..len).step_by(FILE_SIZE).enumerate() {
        pattern(seed, i as u64, buf.get());
        f.write_all_at(buf.get(), offset + at as u64)?;
    }
    f.sync_data()
}

/// Read back what [`write_direct`] wrote (O_DIRECT) and compare.
fn check_direct(dev: &Path, offset: u64, len: usize, seed: u64) {
    let f = direct(dev, false).unwrap_or_else(|e| panic!("{}: {e}", dev.display()));
    let mut buf = Aligned::new(FILE_SIZE);
    let mut want = vec![0u8; FILE_SIZE];
    for (i, at) in (0..len).step_by(FILE_SIZE).enumerate() {
        pattern(seed, i as u64, &mut want);
        f.read_exact_at(buf.get(), offset + at as u64)
            .unwrap_or_else(|e| panic!("{}: read at {}: {e}", dev.display(), offset + at as u64));
        assert!(
            buf.get() == &want[..],
            "{}: the MiB at {} differs from what was written",
            dev.display(),
            offset + at as u64
        );
    }
}

/// The same bytes in a plain file (the target's backing file).
fn check_file(file: &Path, offset: u64, len: usize, seed: u64) {
    let f = File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut got = vec![0u8; FILE_SIZE];
    let mut want = vec![0u8; FILE_SIZE];
    for (i, at) in (0..len).step_by(FILE_SIZE).enumerate() {
        pattern(seed, i as u64, &mut want);
        f.read_exact_at(&mut got, offset + at as u64).unwrap();
        assert!(
            got == want,
            "{}: the MiB at {} is not what the node wrote",
            file.display(),
            offset + at as u64
        );
    }
}

/// Run `f` on a thread; its result, or None if it is still running after `limit`
/// (the thread is left to finish on its own).
fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (std::sync::mpsc::Receiver<T>, Option<T>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let r = rx.recv_timeout(limit).ok();
    (rx, r)
}

fn mkfs(bed: &Bed, dev: &Path) {
    bed.exec_ok(
        Host::Node,
        &["mkfs.ext4", "-q", "-F", dev.to_str().expect("UTF-8")],
    );
}

// ---- the tests ----

/// The heart of it: ext4 on /dev/mapper/mpatha keeps taking writes while each link in
/// turn is cut silently and restored; nothing fails at the application and every byte
/// comes back.
#[test]
fn ext4_on_the_map_survives_silent_cuts_of_each_link() {
    let (mut bed, sessions) = hydra_bed("", "    no_path_retry queue\n");
    // The node records carry the NOP settings of iscsid.conf.
    let rec = bed.node_tool_ok(
        "iscsiadm",
        &["-m", "node", "-T", IQN, "-p", &bed.portal(Link::A)],
    );
    for want in [
        "node.conn[0].timeo.noop_out_interval = 1\n",
        "node.conn[0].timeo.noop_out_timeout = 1\n",
    ] {
        assert!(rec.contains(want), "{want:?} missing in\n{rec}");
    }

    let m = bed.wait_all_active(MAP, 2);
    assert_eq!(m.wwid, WWID, "{}", m.line);
    assert!(m.vendor_product.starts_with("IET"), "{}", m.line);
    assert_paths_are_sessions(&m, &sessions);
    let bindings = std::fs::read_to_string(bed.node_file("bindings")).expect("bindings file");
    assert!(
        bindings
            .lines()
            .any(|l| l.split_whitespace().eq([MAP, WWID])),
        "{bindings}"
    );
    let wwids = std::fs::read_to_string(bed.node_file("wwids")).expect("wwids file");
    assert!(wwids.contains(&format!("/{WWID}/")), "{wwids}");

    // The device: mapper/mpatha and disk/by-id name the one the map line names.
    let dev = bed.resolve(&format!("mapper/{MAP}"));
    assert_eq!(
        m.dev,
        dev.file_name().unwrap().to_str().unwrap(),
        "{}",
        m.line
    );
    assert_eq!(
        bed.resolve(&format!("disk/by-id/dm-uuid-mpath-{WWID}")),
        dev
    );
    let size = bed.exec_ok(
        Host::Node,
        &["blockdev", "--getsize64", dev.to_str().unwrap()],
    );
    assert_eq!(size.trim(), LUN_SIZE.to_string());

    mkfs(&bed, &bed.dev(&format!("mapper/{MAP}")));
    let mnt = bed.node_file("mnt");
    bed.mount(&bed.dev(&format!("mapper/{MAP}")), &mnt);
    let data = bed.node_path(mnt.join("data"));
    // dd's source: a plain file outside the map.
    let src = bed.node_file("dd-src");
    let mut block = vec![0u8; 16 << 20];
    pattern(1000, 1, &mut block);
    std::fs::write(&src, &block).unwrap();

    let load = Load::start(data.clone());
    load.wait_progress(&bed, 4, "before any cut");
    for l in Link::BOTH {
        let sid = sid_of(&sessions, l);
        bed.cut(l);
        let cut = Instant::now();
        // dd with O_DIRECT into the cut, beside the load.
        let out = bed.node_file(&format!("mnt/dd-{l:?}"));
        bed.exec_ok(
            Host::Node,
            &[
                "dd",
                &format!("if={}", src.display()),
                &format!("of={}", out.display()),
                "bs=1M",
                "oflag=direct",
                "conv=fsync",
                "status=none",
            ],
        );
        let failed = bed.wait_path_failed(MAP, sid);
        eprintln!(
            "link {l:?} cut: path of sid {sid} failed after {:?}: {failed:#?}",
            cut.elapsed()
        );
        load.wait_progress(&bed, 8, &format!("link {l:?} cut"));
        bed.heal(l);
        let back = bed.wait_all_active(MAP, 2);
        eprintln!("link {l:?} healed: active again after {:?}", cut.elapsed());
        assert_paths_are_sessions(&back, &sessions);
        load.wait_progress(&bed, 4, &format!("link {l:?} healed"));
    }
    let report = load.finish();
    eprintln!(
        "longest pause between two fsynced files: {:?}",
        report.longest_pause
    );
    assert!(
        report.errors.is_empty(),
        "errors at the application: {:#?}",
        report.errors
    );

    // From the device, not the page cache: a fresh mount.
    bed.umount(&mnt);
    bed.mount(&bed.dev(&format!("mapper/{MAP}")), &mnt);
    let n = verify_files(&data, &report.gens);
    for l in Link::BOTH {
        let got = std::fs::read(bed.node_path(mnt.join(format!("dd-{l:?}")))).unwrap();
        assert!(got == block, "dd's file written during the cut of {l:?}");
    }
    eprintln!("{n} files and 2 dd files verified");
    bed.umount(&mnt);
    assert!(bed.stop_node(), "the node daemon did not stop on SIGTERM");
    // Flushed on the way out: no device left.
    assert!(
        !bed.dev(&format!("mapper/{MAP}")).exists(),
        "mapper/{MAP} outlived the daemon"
    );
}

/// A partition table on the map: the daemon adds `mpathap1` (partition_delimiter p)
/// when the writer closes the device; ext4 on it, data back after a remount.
#[test]
fn partition_on_the_map_takes_a_filesystem() {
    let (mut bed, sessions) = hydra_bed("", "    no_path_retry queue\n");
    let m = bed.wait_all_active(MAP, 2);
    assert_paths_are_sessions(&m, &sessions);
    let disk = bed.dev(&format!("mapper/{MAP}"));
    let mut sf = bed
        .command(Host::Node, "sfdisk")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    sf.stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\n,,L\n")
        .unwrap();
    let o = sf.wait_with_output().unwrap();
    assert!(o.status.success(), "sfdisk: {}", text(&o));
    let part = bed.resolve(&format!("mapper/{MAP}p1"));
    let whole = bed.resolve(&format!("mapper/{MAP}"));
    assert!(
        part.to_str().unwrap().starts_with(whole.to_str().unwrap()),
        "{} is not a partition of {}",
        part.display(),
        whole.display()
    );
    assert!(!bed.dev(&format!("mapper/{MAP}1")).exists());
    let p1 = bed.dev(&format!("mapper/{MAP}p1"));
    mkfs(&bed, &p1);
    let mnt = bed.node_file("mnt");
    bed.mount(&p1, &mnt);
    let data = bed.node_path(mnt.join("data"));
    let load = Load::start(data.clone());
    load.wait_progress(&bed, 24, "writing on the partition");
    let report = load.finish();
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    bed.umount(&mnt);
    bed.mount(&p1, &mnt);
    let n = verify_files(&data, &report.gens);
    assert!(n >= 24, "{n}");
    bed.umount(&mnt);
}

/// Cut both links and wait for `multipath -ll` to show both paths failed.
fn cut_both(bed: &Bed, sessions: &[(u32, Link)]) {
    for l in Link::BOTH {
        bed.cut(l);
    }
    bed.wait_map(MAP, "with both paths failed", |m| {
        m.paths().len() == sessions.len() && m.paths().iter().all(|p| p.dm_state == "failed")
    });
}

/// No path left, `no_path_retry queue`: a write waits (it neither fails nor completes)
/// and completes once a link is back.
#[test]
fn no_path_queue_holds_a_write_until_a_link_returns() {
    let (bed, sessions) = hydra_bed("", "    no_path_retry queue\n");
    bed.wait_all_active(MAP, 2);
    let dev = bed.resolve(&format!("mapper/{MAP}"));
    cut_both(&bed, &sessions);
    let d = dev.clone();
    let started = Instant::now();
    // Three checker intervals with no path: the write must still be waiting.
    let (rx, early) = within(Duration::from_secs(4), move || {
        write_direct(&d, 8 << 20, 4 << 20, 7)
    });
    assert!(
        early.is_none(),
        "with no path and no_path_retry queue the write ended: {early:?}"
    );
    bed.heal(Link::A);
    let r = rx
        .recv_timeout(SETTLE)
        .expect("the held write did not complete after link A returned");
    r.expect("the held write failed");
    eprintln!(
        "held write completed {:?} after submission",
        started.elapsed()
    );
    check_direct(&dev, 8 << 20, 4 << 20, 7);
    check_file(
        &bed.host_dir(Host::Storage).join("lun.img"),
        8 << 20,
        4 << 20,
        7,
    );
    bed.heal(Link::B);
    bed.wait_all_active(MAP, 2);
}

/// No path left, `no_path_retry 2`: the write fails with EIO (after two checker
/// intervals of queueing), the log says why, and I/O works again once a path returns.
#[test]
fn no_path_retry_n_fails_a_write_with_eio() {
    let (bed, sessions) = hydra_bed("", "    no_path_retry 2\n");
    bed.wait_all_active(MAP, 2);
    let dev = bed.resolve(&format!("mapper/{MAP}"));
    cut_both(&bed, &sessions);
    let d = dev.clone();
    let started = Instant::now();
    let (_rx, r) = within(Duration::from_secs(60), move || {
        write_direct(&d, 0, 1 << 20, 3)
    });
    let r = r.expect("the write neither failed nor completed within 60 s");
    let took = started.elapsed();
    let err = r.expect_err("a write with no path succeeded");
    eprintln!("write failed after {took:?}: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let log = bed.node_log();
    assert!(
        log.contains("no_path_retry 2"),
        "no log line about queueing:\n{}",
        tail(&bed.node_log(), 40)
    );
    bed.heal(Link::A);
    bed.heal(Link::B);
    bed.wait_all_active(MAP, 2);
    write_direct(&dev, 0, 1 << 20, 4).expect("a write once the paths are back");
    check_direct(&dev, 0, 1 << 20, 4);
}

/// ALUA: portal group 2 (network B) in standby; group_by_prio with the alua
/// prioritizer puts the optimized group first and I/O goes there. Swap the states with
/// `hydra tgtadm --mode portal --op update`: the map switches and I/O moves.
#[test]
fn alua_standby_group_takes_over_when_states_switch() {
    alua_takeover("standby");
}

/// The same with group 2 active/non-optimized at login (both paths usable from the
/// start, the optimized group preferred), put in standby under the running map, then
/// made optimized while group 1 goes to standby: the standby group takes over.
#[test]
fn alua_non_optimized_group_takes_over_when_states_switch() {
    alua_takeover("active/non-optimized");
}

fn alua_takeover(b_state: &str) {
    let (bed, sessions) = hydra_bed(
        &format!("portal-group 1 @A@\nportal-group 2 @B@ {b_state}\n"),
        "    path_grouping_policy group_by_prio\n    prio alua\n    failback immediate\n    no_path_retry queue\n",
    );
    let (sa, sb) = (sid_of(&sessions, Link::A), sid_of(&sessions, Link::B));
    let prio = |m: &MapView, sid: u32| -> i64 {
        m.group_of(sid)
            .and_then(|g| g.prio.parse().ok())
            .unwrap_or(-1)
    };
    let serves = |m: &MapView, on: u32, off: u32| {
        m.groups.len() == 2
            && m.group_of(on).is_some_and(|g| g.status == "active")
            && prio(m, on) > prio(m, off)
            && m.path_of(on).is_some_and(|p| p.is_active_ready())
    };
    let m = bed.wait_map(MAP, "grouped by ALUA state, A first", |m| serves(m, sa, sb));
    eprintln!("{m:#?}");
    let dev = bed.resolve(&format!("mapper/{MAP}"));
    let img = bed.host_dir(Host::Storage).join("lun.img");

    let moved = |seed: u64| -> (u64, u64) {
        let before = [bed.bytes_to_storage(Link::A), bed.bytes_to_storage(Link::B)];
        write_direct(&dev, 0, 32 << 20, seed).expect("write through the map");
        (
            bed.bytes_to_storage(Link::A) - before[0],
            bed.bytes_to_storage(Link::B) - before[1],
        )
    };
    let (a, b) = moved(11);
    eprintln!("A optimized: {a} bytes on A, {b} on B");
    assert!(a >= 32 << 20 && b < 4 << 20, "A: {a}, B: {b}");
    check_file(&img, 0, 32 << 20, 11);

    if b_state != "standby" {
        // Group 2 goes to standby under the running map: its path stays in the map,
        // in the lower group, with the standby priority (1, reference §2.2 alua).
        let o = bed.hydra_tgtadm(&[
            "--mode",
            "portal",
            "--op",
            "update",
            "--param",
            "tpgt=2,state=standby",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let m = bed.wait_map(MAP, "with B's group in standby", |m| {
            serves(m, sa, sb)
                && prio(m, sb) == 1
                && m.path_of(sb).is_some_and(|p| p.checker == "ghost")
        });
        eprintln!("B standby: {m:#?}");
        let (a, b) = moved(13);
        assert!(a >= 32 << 20 && b < 4 << 20, "A: {a}, B: {b}");
    }

    for param in ["tpgt=2,state=active/optimized", "tpgt=1,state=standby"] {
        let o = bed.hydra_tgtadm(&["--mode", "portal", "--op", "update", "--param", param]);
        assert!(o.status.success(), "{param}: {}", text(&o));
    }
    let m = bed.wait_map(MAP, "switched to B's group", |m| serves(m, sb, sa));
    eprintln!("{m:#?}");
    let (a, b) = moved(12);
    eprintln!("B optimized: {a} bytes on A, {b} on B");
    assert!(b >= 32 << 20 && a < 4 << 20, "A: {a}, B: {b}");
    check_direct(&dev, 0, 32 << 20, 12);
    check_file(&img, 0, 32 << 20, 12);
}

/// Debian's tgtd with a portal on each network: the same WWID through both, one map
/// with two paths; writes land on its backing file, also across a cut of one link.
#[test]
fn map_over_debian_tgtd() {
    let mut bed = Bed::new();
    let img = bed.host_dir(Host::Storage).join("lun.img");
    sparse(&img, LUN_SIZE);
    bed.start_debian_tgtd(IQN, &img);
    bed.start_node(ISCSID_CONF, &mp_conf("    no_path_retry queue\n"));
    let sessions = bed.discover_and_login();
    let m = bed.wait_all_active(MAP, 2);
    assert_eq!(m.wwid, WWID, "{}", m.line);
    assert!(m.vendor_product.starts_with("IET"), "{}", m.line);
    assert_paths_are_sessions(&m, &sessions);
    let dev = bed.resolve(&format!("mapper/{MAP}"));
    write_direct(&dev, 0, 16 << 20, 21).expect("write through the map");
    bed.cut(Link::A);
    write_direct(&dev, 16 << 20, 16 << 20, 22).expect("write with link A cut");
    bed.wait_path_failed(MAP, sid_of(&sessions, Link::A));
    bed.heal(Link::A);
    bed.wait_all_active(MAP, 2);
    check_direct(&dev, 0, 16 << 20, 21);
    check_direct(&dev, 16 << 20, 16 << 20, 22);
    check_file(&img, 0, 16 << 20, 21);
    check_file(&img, 16 << 20, 16 << 20, 22);
}

/// `mpathpersist --out --register` on the map registers the key on each path's I_T
/// nexus: `--in -k` lists it twice, `--in -s` (READ FULL STATUS) shows two
/// registrations, and so does a session of its own asking the target.
#[test]
fn mpathpersist_register_lands_on_both_nexuses() {
    const KEY: u64 = 0x1234_abcd;
    let (bed, sessions) = hydra_bed("", "    no_path_retry queue\n");
    bed.wait_all_active(MAP, 2);
    bed.resolve(&format!("mapper/{MAP}"));
    let key = format!("0x{KEY:x}");
    bed.node_tool_ok(
        "mpathpersist",
        &["--out", "--register", &format!("--param-sark={key}"), MAP],
    );
    let keys = bed.node_tool_ok("mpathpersist", &["--in", "-k", MAP]);
    eprintln!("{keys}");
    assert_eq!(keys.matches(&key).count(), 2, "{keys}");
    let full = bed.node_tool_ok("mpathpersist", &["--in", "-s", MAP]);
    eprintln!("{full}");
    assert_eq!(full.matches(&key).count(), 2, "{full}");

    // The target's own answer, to a session of another initiator from the node host.
    let netns = bed.netns_path(Host::Node);
    let portal: std::net::SocketAddr = bed.portal(Link::A).parse().unwrap();
    let status = std::thread::spawn(move || {
        common::cluster::enter_net(&netns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cfg = hydra_initiator::login::LoginConfig {
                initiator_name: "iqn.2026-12.org.hydra:observer".into(),
                target_name: Some(IQN.into()),
                isid: [0x40, 0, 0x77, 0x77, 0, 1],
                tsih: 0,
                chap: None,
                params: Default::default(),
            };
            let s = hydra_initiator::Session::login(portal, cfg)
                .await
                .expect("observer login");
            // A new I_T nexus meets its unit attention (power on, reset) first.
            let mut tries = 0;
            let st = loop {
                match s.read_full_status(1).await.expect("READ FULL STATUS") {
                    Ok(st) => break st,
                    Err(f) if f.sense_key().is_some_and(|k| k.0 == 6) && tries < 5 => tries += 1,
                    Err(f) => panic!("READ FULL STATUS: {f:?}"),
                }
            };
            let _ = s.close().await;
            st
        })
    })
    .join()
    .expect("observer thread");
    let ours: Vec<_> = status.descriptors.iter().filter(|d| d.key == KEY).collect();
    eprintln!("{ours:#?}");
    assert_eq!(ours.len(), 2, "{status:#?}");
    let nexus = |d: &&hydra_proto::scsi::pr::StatusDescriptor| {
        (d.relative_target_port, d.transport_id.clone())
    };
    assert_ne!(nexus(&ours[0]), nexus(&ours[1]), "{ours:#?}");
    assert_eq!(sessions.len(), 2);
}

/// The `multipath -ll` parser of the bed, on the reference's examples (§2.3).
#[test]
fn topology_parser_reads_the_reference_layouts() {
    let t = Topology::parse(
        "mpatha (23446d5dc97d4401f) dm-3 Bigtera ,VirtualStor_Conv\n\
         size=100G features='0' hwhandler='0' wp=rw\n\
         |-+- policy='service-time 0' prio=0 status=enabled\n\
         | `- 10:0:0:1 sdc 8:32 failed faulty running\n\
         `-+- policy='service-time 0' prio=1 status=active\n\
         \x20 `- 9:0:0:1  sde 8:64 active ready running\n\
         360000000000000000e00000000010001 dm-0 IET,VIRTUAL-DISK\n\
         size=10G features='0' hwhandler='0' wp=rw\n\
         `-+- policy='queue-length 0' prio=1 status=enabled\n\
         \x20 |- 2:0:0:1 sda 8:0  active ready running\n\
         \x20 `- 3:0:0:1 sdb 8:16 active ready running\n",
    );
    assert_eq!(t.maps.len(), 2);
    let a = t.map("mpatha").unwrap();
    assert_eq!(a.wwid, "23446d5dc97d4401f");
    assert_eq!(a.dev, "dm-3");
    assert_eq!(a.groups.len(), 2);
    assert_eq!(a.groups[0].policy, "service-time 0");
    assert_eq!(a.groups[1].status, "active");
    assert_eq!(a.path_of(10).unwrap().dm_state, "failed");
    assert!(a.path_of(9).unwrap().is_active_ready());
    let w = t.map(WWID).unwrap();
    assert_eq!(w.wwid, WWID);
    assert_eq!(w.vendor_product, "IET,VIRTUAL-DISK");
    assert_eq!(w.paths().len(), 2);
    assert_eq!(w.paths()[1].devt, "8:16");
}

/// The bed itself, without the node daemon: SendTargets through each network answers; a cut network carries nothing, a healed one carries again.
#[test]
fn bed_reaches_the_target_over_both_networks() {
    let mut bed = Bed::new();
    bed.start_hydra_tgtd(&target_conf(""), |d| sparse(&d.join("lun.img"), LUN_SIZE));
    bed_reaches(&bed);
}

/// The same with Debian's tgtd (its second portal added with `tgtadm --mode portal`).
#[test]
fn bed_reaches_debian_tgtd_over_both_networks() {
    let mut bed = Bed::new();
    let img = bed.host_dir(Host::Storage).join("lun.img");
    sparse(&img, LUN_SIZE);
    bed.start_debian_tgtd(IQN, &img);
    bed_reaches(&bed);
}

fn bed_reaches(bed: &Bed) {
    for l in Link::BOTH {
        let before = bed.bytes_to_storage(l);
        let out = bed.node_tool_ok(
            "iscsiadm",
            &["-m", "discovery", "-t", "st", "-p", &bed.portal(l)],
        );
        // hydra tgtd lists both portals, Debian's tgtd the one asked.
        assert!(out.contains(&format!("{},", bed.portal(l))), "{out}");
        assert!(bed.bytes_to_storage(l) > before);
    }
    bed.cut(Link::A);
    let before = bed.bytes_to_storage(Link::A);
    let out = bed.node_tool_ok(
        "iscsiadm",
        &["-m", "discovery", "-t", "st", "-p", &bed.portal(Link::B)],
    );
    assert!(out.contains(&bed.portal(Link::B)), "{out}");
    assert_eq!(
        bed.bytes_to_storage(Link::A),
        before,
        "a cut link carried bytes"
    );
    bed.heal(Link::A);
    bed.wait_for(
        "discovery over the healed link A",
        || {
            bed.node_tool(
                "iscsiadm",
                &["-m", "discovery", "-t", "st", "-p", &bed.portal(Link::A)],
            )
            .status
            .success()
        },
        SETTLE,
    );
}
