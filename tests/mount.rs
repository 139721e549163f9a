//! `hydra mount` / `hydra umount` against real peers on one corosync host (a network
//! namespace of tests/common/cluster.rs): hydra tgtd on the host's address (two
//! portals, PR), hydra dlm_controld, the node daemon with map `mpatha` over both
//! portals (a real kernel device: FUSE + loop), this node's key registered with
//! `hydra fence_scsi -o on`, mkfs.ext4 on the map. Then:
//!
//! - no filesystem yet → refused; no lock manager socket → refused; mount(2) refusing
//!   an option → the lock released;
//! - rw mount → `--status` lists it with EX; the lock outlives the command as an orphan
//!   (pid 0 in lockdump) in a lockspace that stays joined;
//! - a second mount of the same filesystem is refused naming the holder (node 1), and
//!   `-o lockwait=2` gives up after 2 s, `-o lockwait` is cancelled by SIGTERM, with
//!   nothing left;
//! - umount releases (no lock in lockdump); a ro mount takes PR;
//! - another key preempts ours (`fence_scsi -o off`): refused, "this node is fenced";
//! - `-a` with an `x-hydra` fstab entry by UUID=; `umount` while dlm_controld is
//!   stopped (SIGSTOP, as stuck) unmounts, says the lock was not released in time, and
//!   a second `umount` releases it; `mount.hydra` as argv0; a partition of the map
//!   (the key check finds the map of its disk).
//!
//! After each refusal: no lock, no mount, no record. Everything the test makes goes
//! with the cluster (namespaces, processes); mounts in the host's mount namespace are
//! lazily unmounted and loop devices left by the node daemon detached, also on failure.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::DlmDaemon;
use common::node_daemon::{iscsid_args, write_multipath_conf};
use common::*;

const IQN: &str = "iqn.2026-12.org.hydra:mount";
const UUID: &str = "5d1e2c7a-0f4b-4c5e-9a8d-6b7c8d9e0f12";
/// The filesystem on the map's partition.
const UUID2: &str = "7e2f3d8b-1a5c-4d6f-8b9e-0c1d2e3f4a5b";

/// The node daemon in the host; on drop first every mount under the test directory in
/// the host's mount namespace goes (lazily), then the daemon (SIGTERM: it removes its
/// maps and detaches their loop devices), then any loop device still on the directory.
struct Node {
    child: Option<Child>,
    dir: PathBuf,
    holder: u32,
}

impl Node {
    fn unmount_all(&self) {
        let prefix = self.dir.to_string_lossy().into_owned();
        let info =
            std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder)).unwrap_or_default();
        let mut dirs: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        // Deepest first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        for d in dirs {
            let _ = Command::new("nsenter")
                .arg(format!("--target={}", self.holder))
                .args(["--mount", "--", "umount", "-l", &d])
                .status();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- node daemon log ---\n{}",
                std::fs::read_to_string(self.dir.join("node/iscsid.log")).unwrap_or_default()
            );
        }
        self.unmount_all();
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
        let prefix = self.dir.to_string_lossy().into_owned();
        if let Ok(o) = Command::new("losetup").arg("-a").output() {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.contains(&prefix) {
                    if let Some(dev) = l.split(':').next() {
                        let _ = Command::new("losetup").arg("-d").arg(dev).status();
                    }
                }
            }
        }
    }
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

struct Bed<'c> {
    cluster: &'c Cluster,
    w: PathBuf,
    dlm_run: PathBuf,
    holder: u32,
}

impl Bed<'_> {
    fn nd(&self) -> PathBuf {
        self.w.join("node")
    }

    fn map(&self) -> String {
        self.nd().join("dev/mapper/mpatha").display().to_string()
    }

    fn dir(&self, name: &str) -> String {
        self.w.join(name).display().to_string()
    }

    /// `hydra TOOL` in the host with the path options of this bed, then `args`.
    fn hydra(&self, tool: &str, args: &[&str]) -> Output {
        let mut c = self.cluster.command(1, hydra());
        c.arg(tool);
        self.with_paths(&mut c);
        c.args(args);
        run(&mut c, Duration::from_secs(120))
    }

    fn with_paths(&self, c: &mut Command) {
        c.arg("--dlm-run-dir")
            .arg(&self.dlm_run)
            .arg("--run-dir")
            .arg(self.nd().join("run"))
            .arg("--dev-dir")
            .arg(self.nd().join("dev"))
            .arg("--store-path")
            .arg(self.w.join("me/fence_scsi"))
            .arg("--state-dir")
            .arg(self.w.join("state"));
    }

    fn mount(&self, args: &[&str]) -> Output {
        self.hydra("mount", args)
    }

    fn umount(&self, args: &[&str]) -> Output {
        self.hydra("umount", args)
    }

    /// `hydra fence_scsi` in the host.
    fn fence(&self, args: &[&str]) -> Output {
        let mut c = self.cluster.command(1, hydra());
        c.arg("fence_scsi")
            .args(["--power-timeout", "20"])
            .args(args);
        run(&mut c, Duration::from_secs(90))
    }

    /// Unfence this node: key a1 on every path of the map.
    fn unfence(&self) {
        let (run, dev) = (self.nd().join("run"), self.nd().join("dev"));
        let store = self.w.join("me/fence_scsi");
        let o = self.fence(&[
            "-o",
            "on",
            "-k",
            "a1",
            "-d",
            &self.map(),
            "--run-dir",
            run.to_str().unwrap(),
            "--dev-dir",
            dev.to_str().unwrap(),
            "--store-path",
            store.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "unfence: {}", text(&o));
    }

    /// This node's locks in hydra_mount (empty when the lockspace is not there).
    fn locks(&self) -> String {
        let mut c = self.cluster.command(1, hydra());
        c.args(["dlm_tool", "--run-dir"])
            .arg(&self.dlm_run)
            .args(["lockdump", "hydra_mount"]);
        let o = run(&mut c, Duration::from_secs(30));
        if o.status.success() {
            String::from_utf8_lossy(&o.stdout).into_owned()
        } else {
            assert!(text(&o).contains("hydra_mount"), "lockdump: {}", text(&o));
            String::new()
        }
    }

    fn mounted(&self, name: &str) -> bool {
        let dir = self.dir(name);
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder))
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(dir.as_str()))
    }

    fn records(&self) -> usize {
        std::fs::read_dir(self.w.join("state"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }

    /// After a refusal: no lock, no mount on m1/m2, no record.
    fn nothing_left(&self, what: &str) {
        assert_eq!(self.locks(), "", "{what}: a lock is left");
        assert!(
            !self.mounted("m1") && !self.mounted("m2"),
            "{what}: mounted"
        );
        assert_eq!(self.records(), 0, "{what}: a record is left");
    }

    fn status(&self) -> String {
        let o = self.mount(&["--status"]);
        assert_eq!(o.status.code(), Some(0), "--status: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Wait for a spawned command (at most `limit`: then it is killed and the test fails).
fn finish(mut child: Child, limit: Duration) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("did not end within {limit:?}: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn refused(o: &Output, want: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(text(o).contains(want), "want '{want}' in: {}", text(o));
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

#[test]
fn mount_under_the_lock_and_the_key() {
    let cluster = Cluster::start(1);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_path_buf();
    let holder: u32 = cluster
        .netns_path(1)
        .trim_start_matches("/proc/")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for d in ["m1", "m2", "node/iscsi", "me", "other", "bin"] {
        std::fs::create_dir_all(w.join(d)).unwrap();
    }

    // Storage: hydra tgtd on the host's address, two portals. The host reaches its own
    // address through loopback, which the bed leaves down.
    let o = cluster.exec(1, &["ip", "link", "set", "lo", "up"]);
    assert!(o.status.success(), "lo up: {}", text(&o));
    sparse(&w.join("lun.img"), 64 << 20);
    std::fs::write(
        w.join("targets.conf"),
        format!(
            "<target {IQN}>\n    backing-store {}\n</target>\n",
            w.join("lun.img").display()
        ),
    )
    .unwrap();
    let addr = cluster.addr(1);
    let portals = [format!("{addr}:3260"), format!("{addr}:3262")];
    let log = std::fs::File::create(w.join("tgtd.log")).unwrap();
    let tgtd = cluster
        .command(1, hydra())
        .args([
            "tgtd",
            "-f",
            "--iscsi",
            &format!("portal={},portal={}", portals[0], portals[1]),
            "-C",
            "3261",
        ])
        .arg("--run-dir")
        .arg(w.join("tgt-run"))
        .arg("--state-dir")
        .arg(w.join("tgt-state"))
        .arg("--conf")
        .arg(w.join("targets.conf"))
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _tgtd = Daemon(tgtd);
    let t = Instant::now();
    while !w.join("tgt-run/socket.3261").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "hydra tgtd did not start:\n{}",
            std::fs::read_to_string(w.join("tgtd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The lock manager (no fencing configured: one node).
    std::fs::write(w.join("dlm.conf"), "").unwrap();
    let mut dlm = DlmDaemon::start(&cluster, 1, &w.join("dlm.conf"));

    // The node daemon with map mpatha over both portals.
    let nd = w.join("node");
    write_multipath_conf(&nd, "\tpartition_delimiter p\n", "");
    let log = std::fs::File::create(nd.join("iscsid.log")).unwrap();
    let child = iscsid_args(&mut cluster.command(1, hydra()), &nd)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let node = Node {
        child: Some(child),
        dir: w.clone(),
        holder,
    };
    let t = Instant::now();
    while !(nd.join("run/iscsid.sock").exists() && nd.join("run/multipathd.sock").exists()) {
        assert!(t.elapsed() < Duration::from_secs(30), "node daemon sockets");
        std::thread::sleep(Duration::from_millis(20));
    }
    let adm = |args: &[&str]| {
        let mut c = cluster.command(1, hydra());
        c.arg("iscsiadm")
            .args(args)
            .env("HYDRA_ISCSI_ROOT", nd.join("iscsi"))
            .env("HYDRA_ISCSID_RUN_DIR", nd.join("run"));
        let o = run(&mut c, Duration::from_secs(60));
        assert!(o.status.success(), "iscsiadm {args:?}: {}", text(&o));
    };
    for p in &portals {
        adm(&["-m", "discovery", "-t", "st", "-p", p]);
        adm(&["-m", "node", "-T", IQN, "-p", p, "--login"]);
    }
    let b = Bed {
        cluster: &cluster,
        w: w.clone(),
        dlm_run: dlm.run_dir().to_path_buf(),
        holder,
    };
    let map = b.map();
    let t = Instant::now();
    while std::fs::metadata(&map).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no {map}:\n{}",
            std::fs::read_to_string(nd.join("iscsid.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (m1, m2) = (b.dir("m1"), b.dir("m2"));

    // No filesystem yet.
    refused(&b.mount(&[&map, &m1]), &format!("no filesystem on {map}"));
    b.nothing_left("no filesystem");

    b.unfence();
    let o = b
        .cluster
        .exec(1, &["mkfs.ext4", "-q", "-F", "-U", UUID, &map]);
    assert!(o.status.success(), "mkfs.ext4: {}", text(&o));

    // No lock manager behind --dlm-run-dir.
    let mut c = cluster.command(1, hydra());
    c.arg("mount");
    b.with_paths(&mut c);
    c.arg("--dlm-run-dir")
        .arg(w.join("no-dlm"))
        .args([&map, &m1]);
    refused(
        &run(&mut c, Duration::from_secs(60)),
        "the lock manager is not running: no socket at",
    );
    b.nothing_left("no lock manager");

    // mount(2) itself refuses (an option ext4 does not know): the lock goes again.
    refused(
        &b.mount(&["-o", "no_such_ext4_option", &map, &m1]),
        "Invalid argument",
    );
    b.nothing_left("mount(2) failed");

    // Read-write: EX, held by this node after the command exits.
    ok(&b.mount(&[&map, &m1]));
    assert!(b.mounted("m1"));
    let st = b.status();
    let row: Vec<&str> = st
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row, [map.as_str(), m1.as_str(), "ext4", UUID, "EX"], "{st}");
    let locks = b.locks();
    assert!(
        locks.contains(" gr EX ") && locks.contains(" pid 0 ") && locks.contains(UUID),
        "an orphan EX lock: {locks}"
    );
    // The lockspace stayed joined after its last client (hydra mount) exited.
    let mut c = cluster.command(1, hydra());
    c.args(["dlm_tool", "--run-dir"])
        .arg(&b.dlm_run)
        .args(["ls", "hydra_mount"]);
    let o = run(&mut c, Duration::from_secs(30));
    assert!(
        o.status.success() && text(&o).contains("hydra_mount"),
        "dlm_tool ls: {}",
        text(&o)
    );
    let ok_w = b.cluster.exec(
        1,
        &["sh", "-c", &format!("echo one > {m1}/f && sync {m1}/f")],
    );
    assert!(ok_w.status.success(), "{}", text(&ok_w));

    // Another mount of the same filesystem: this node's record refuses it first; with
    // another state directory (as another node would be) the DLM refuses it, and the
    // holder record names the holder.
    refused(
        &b.mount(&[&map, &m2]),
        "is already mounted on this node, at",
    );
    let state2 = w.join("state2");
    let state2 = state2.to_str().unwrap();
    let o = b.mount(&["--state-dir", state2, &map, &m2]);
    refused(
        &o,
        &format!("{UUID} is mounted by node 1 ({addr}) (read-write)"),
    );
    assert!(!b.mounted("m2"));
    assert_eq!(b.records(), 1);

    // lockwait=2: queued, cancelled at the deadline, nothing left of it.
    let t = Instant::now();
    let o = b.mount(&["--state-dir", state2, "-o", "lockwait=2", &map, &m2]);
    refused(&o, "not granted within 2 s (lockwait)");
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(!b.mounted("m2"));
    assert_eq!(b.locks().lines().count(), 1, "{}", b.locks());

    // lockwait without SECS: queued until a signal cancels it, nothing left of it.
    let mut c = cluster.command(1, hydra());
    c.arg("mount");
    b.with_paths(&mut c);
    let waiter = c
        .args(["--state-dir", state2, "-o", "lockwait", &map, &m2])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while b.locks().lines().count() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not queued: {}",
            b.locks()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(waiter.id(), "TERM");
    let o = finish(waiter, Duration::from_secs(60));
    refused(&o, "SIGTERM while waiting for the EX request");
    assert_eq!(b.locks().lines().count(), 1, "{}", b.locks());
    assert!(!b.mounted("m2"));

    // umount releases.
    ok(&b.umount(&[&m1]));
    b.nothing_left("umount");
    assert_eq!(b.status().lines().count(), 1, "only the header");

    // Read-only: PR.
    ok(&b.mount(&["-o", "ro", &map, &m1]));
    assert!(b.status().contains(" PR"), "{}", b.status());
    assert!(b.locks().contains(" gr PR "), "{}", b.locks());
    let o = b.cluster.exec(1, &["cat", &format!("{m1}/f")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n");
    ok(&b.umount(&[&map]));
    b.nothing_left("umount of the ro mount by device");

    // Another node (its own I_T nexus through an iSCSI URL) fences this one.
    let url = format!("iscsi://{}/{IQN}/1", portals[0]);
    let other = |args: &[&str]| {
        let mut a = vec![
            "-d",
            &url,
            "--initiator-name",
            "iqn.2026-12.org.hydra:mount-other",
        ];
        let store = w.join("other/fence_scsi");
        let store = store.to_str().unwrap().to_string();
        a.extend_from_slice(&["--store-path", &store]);
        a.extend_from_slice(args);
        b.fence(&a)
    };
    ok(&other(&["-o", "on", "-k", "b2"]));
    ok(&other(&["-o", "off", "-k", "a1"]));
    refused(
        &b.mount(&[&map, &m1]),
        &format!("this node is fenced: key a1 is not registered on {map}"),
    );
    b.nothing_left("fenced");
    b.unfence();

    // -a: an x-hydra fstab entry by UUID.
    std::fs::write(
        w.join("fstab"),
        format!("# test\n/dev/sdz9 /nowhere ext4 defaults 0 0\nUUID={UUID} {m1} hydra x-hydra,noatime 0 0\n"),
    )
    .unwrap();
    let fstab = w.join("fstab");
    ok(&b.mount(&["-a", "--fstab", fstab.to_str().unwrap()]));
    assert!(b.mounted("m1"));
    assert!(b.status().contains(UUID), "{}", b.status());

    // A lock manager that does not answer: the unmount happens, the lock release is
    // reported as not done in time, and a second umount does it.
    let frozen = freeze(dlm.pid());
    let t = Instant::now();
    let o = b.umount(&["--dlm-timeout", "2", &m1]);
    refused(&o, "is unmounted, but its EX lock");
    assert!(text(&o).contains("did not answer"), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(60));
    assert!(!b.mounted("m1"));
    assert_eq!(b.records(), 1, "the record stays for the second umount");
    frozen.thaw();
    let o = b.umount(&[&m1]);
    ok(&o);
    assert!(
        text(&o).contains("was not mounted any more"),
        "{}",
        text(&o)
    );
    b.nothing_left("second umount");

    // mount.hydra, as mount(8) runs helpers: DEVICE DIR then options.
    std::os::unix::fs::symlink(hydra(), w.join("bin/mount.hydra")).unwrap();
    let mut c = cluster.command(1, w.join("bin/mount.hydra"));
    c.args([&map, &m2, "-n", "-o", "rw,x-hydra"]);
    b.with_paths(&mut c);
    ok(&run(&mut c, Duration::from_secs(60)));
    assert!(b.mounted("m2"));
    ok(&b.umount(&[&m2]));
    b.nothing_left("mount.hydra");

    // A partition of the map: the key check finds the map of its disk.
    let mut sfdisk = cluster
        .command(1, "sfdisk")
        .args(["-q", &map])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(sfdisk.stdin.as_mut().unwrap(), b"label: dos\n,,L\n").unwrap();
    drop(sfdisk.stdin.take());
    assert!(sfdisk.wait().unwrap().success(), "sfdisk failed");
    let part = nd.join("dev/mapper/mpathap1");
    let part = part.to_str().unwrap();
    let t = Instant::now();
    while std::fs::metadata(part).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30), "no {part}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = b
        .cluster
        .exec(1, &["mkfs.ext4", "-q", "-F", "-U", UUID2, part]);
    assert!(o.status.success(), "mkfs.ext4: {}", text(&o));
    ok(&b.mount(&[part, &m1]));
    let st = b.status();
    assert!(st.contains(part) && st.contains(UUID2), "{st}");
    ok(&b.umount(&[&m1]));
    b.nothing_left("partition");

    assert!(dlm.running(), "{}", dlm.output());
    drop(node);
}
