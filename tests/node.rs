//! The node daemon end to end: `hydra tgtd` with one target on two portals (127.0.0.1),
//! `hydra iscsid` with a private root, run dir, dev dir and multipath.conf; iscsiadm
//! discovery and login over both portals make one map `mpatha` with two paths
//! (`<dev>/mapper/mpatha`, bindings and wwids files written); sfdisk on the mapper name
//! brings `mpathap1`, mkfs.ext4 + mount + write + read back; `multipath -f` refuses
//! while mounted; logging both sessions out removes the map, its links, its loop device
//! and FUSE mount.
//!
//! Cleanup on every exit: guards unmount, stop the daemon (SIGTERM flushes the maps), and
//! detach any loop device or lazily unmount any mount left under the test's directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::node_daemon::{adm, write_multipath_conf, NodeDaemon};
use common::*;
use hydra_multipath::control::{self as mpc, Request, Response};

const IQN: &str = "iqn.2026-12.org.hydra:mp-node";

/// Last guard: whatever the daemon left under the test directory goes.
struct Sweep(PathBuf);

impl Drop for Sweep {
    fn drop(&mut self) {
        let dir = self.0.to_string_lossy().into_owned();
        // Loop devices first: once its FUSE mount is detached, a backing file's path
        // reads `/<alias>` and no longer names the test's directory.
        common::netns::detach_loops(|back| back.starts_with(&dir));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().rev().filter_map(|l| l.split(' ').nth(4)) {
            if m.starts_with(&dir) {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
    }
}

/// A mounted filesystem, unmounted on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sh(cmd: &mut Command) -> String {
    ok(run(cmd, Duration::from_secs(120)))
}

#[test]
fn two_portals_one_map_device_mount_and_logout() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n");
    let h = Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("lun.img"), 96 << 20));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _sweep = Sweep(dir.to_owned());
    std::fs::create_dir_all(dir.join("iscsi")).unwrap();
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    let mp = dir.join("multipath");
    write_multipath_conf(dir, "\tpartition_delimiter p\n\tpolling_interval 1\n", "# The built-in device entry says no_path_retry 12: the map must hold I/O while\n# both sessions are logged out and in again, however slow the machine.\noverrides {\n\tno_path_retry queue\n}\n");
    let (p0, p1) = (h.ports[0], h.ports[1]);
    let portals = [format!("127.0.0.1:{p0}"), format!("127.0.0.1:{p1}")];
    ok(adm(
        dir,
        &["-m", "discovery", "-t", "st", "-p", &portals[0]],
    ));
    ok(adm(
        dir,
        &["-m", "discovery", "-t", "st", "-p", &portals[1]],
    ));

    let mut node = NodeDaemon::start(dir, &[]);
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--login"]));
    }
    let dev = dir.join("dev");
    let mapper = dev.join("mapper/mpatha");
    node.wait_for("mapper/mpatha", || mapper.exists());

    // One map, two paths (both sessions), through the control socket.
    let t = Instant::now();
    let snap = loop {
        let Response::Snapshots(maps) = node.ask(Request::Snapshots { map: None }) else {
            panic!("not snapshots");
        };
        assert_eq!(maps.len(), 1, "{maps:?}");
        if maps[0].paths().count() == 2 || t.elapsed() > Duration::from_secs(20) {
            break maps.into_iter().next().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(snap.name, "mpatha");
    let sids: Vec<u32> = snap.paths().map(|p| p.sid).collect();
    assert_eq!(sids.len(), 2, "{snap:?}");
    assert_ne!(sids[0], sids[1]);
    assert_eq!(snap.size, 96 << 20);
    let wwid = snap.wwid.clone();
    let lo = std::fs::read_link(&mapper).unwrap();
    assert!(lo.to_string_lossy().starts_with("/dev/loop"), "{lo:?}");
    assert_eq!(
        snap.sysfs.as_deref(),
        lo.file_name().and_then(|f| f.to_str())
    );
    assert_eq!(
        std::fs::read_link(dev.join(format!("disk/by-id/dm-uuid-mpath-{wwid}"))).unwrap(),
        lo
    );
    assert!(dir.join("run/nbd/mpatha.sock").exists());
    assert_eq!(
        std::fs::read_to_string(mp.join("bindings"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        [format!("mpatha {wwid}")]
    );
    assert!(std::fs::read_to_string(mp.join("wwids"))
        .unwrap()
        .contains(&format!("/{wwid}/")));
    // The printer's layout is mp-cli's to test; here only that the daemon answers.
    let paths = node.ask(Request::Show(mpc::Show::Paths { format: None }));
    eprintln!("multipathd show paths: {paths:?}");

    // fail path / reinstate path by hydra's path name.
    let first = snap.paths().next().unwrap().dev.clone();
    let state_of = |node: &NodeDaemon, dev: &str| -> String {
        let Response::Snapshots(maps) = node.ask(Request::Snapshots { map: None }) else {
            panic!("not snapshots");
        };
        let p = maps[0].paths().find(|p| p.dev == dev).cloned();
        p.map(|p| p.dm_state).unwrap_or_default()
    };
    assert_eq!(
        node.ask(Request::FailPath {
            path: first.clone()
        }),
        Response::Ok
    );
    assert_eq!(state_of(&node, &first), "failed");
    assert_eq!(
        node.ask(Request::ReinstatePath {
            path: first.clone()
        }),
        Response::Ok
    );
    assert_eq!(state_of(&node, &first), "active");
    assert!(matches!(
        node.ask(Request::FailPath {
            path: "s99l1".into()
        }),
        Response::Error { .. }
    ));

    // The target restarts: both sessions reconnect under their sids and keep their
    // paths (no logout, no new map); the checker makes them active again.
    let names: Vec<String> = snap.paths().map(|p| p.dev.clone()).collect();
    let mut h = h;
    h.crash_and_restart();
    let t = Instant::now();
    loop {
        let Response::Snapshots(maps) = node.ask(Request::Snapshots { map: None }) else {
            panic!("not snapshots");
        };
        assert_eq!(maps.len(), 1, "{maps:?}");
        let now: Vec<(String, String, String)> = maps[0]
            .paths()
            .map(|p| (p.dev.clone(), p.dm_state.clone(), p.checker.clone()))
            .collect();
        assert_eq!(
            now.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
            names,
            "paths changed across a reconnect"
        );
        // Both sessions went down and came back (the initiator logs each reconnect).
        let reconnected = node.log().matches("reconnected to 127.0.0.1").count() >= 2;
        if reconnected && now.iter().all(|p| p.1 == "active" && p.2 == "ready") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "paths not reinstated after the target came back: {now:?}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(std::fs::read_link(&mapper).unwrap(), lo);

    // Partition through the mapper name; mpathap1 appears when sfdisk closes it.
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&mapper)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"label: dos\n,,L\n").unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    let part = dev.join("mapper/mpathap1");
    node.wait_for("mapper/mpathap1", || part.exists());

    sh(Command::new("mkfs.ext4").arg("-q").arg(&part));
    let mnt = dir.join("mnt");
    sh(Command::new("mount").arg(&part).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    let data: Vec<u8> = (0..(8usize << 20)).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(mnt.join("data"), &data).unwrap();
    sh(&mut Command::new("sync"));
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(
        std::fs::read(mnt.join("data")).unwrap() == data,
        "read back other bytes"
    );

    // In use: multipath -f refuses, as dm refuses to remove an open map.
    match node.ask(Request::Flush {
        map: Some("mpatha".into()),
    }) {
        Response::Error { message, .. } => assert!(message.contains("in use"), "{message}"),
        other => panic!("flush of a mounted map: {other:?}"),
    }

    // Both sessions log out while mounted: the map stays (in use, queueing), and the
    // sessions logging in again join it; the filesystem never noticed.
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--logout"]));
    }
    node.wait_for("the in-use map kept", || {
        node_log(dir).contains("mpatha: last path deleted, but the map is in use: kept")
    });
    assert_eq!(std::fs::read_link(&mapper).unwrap(), lo);
    let maps = snapshots(&node);
    assert_eq!((maps.len(), maps[0].paths().count()), (1, 0), "{maps:?}");
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--login"]));
    }
    let t = Instant::now();
    while !snapshots(&node)[0]
        .paths()
        .filter(|p| p.dm_state == "active")
        .count()
        .eq(&2)
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "new sessions did not join the kept map:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_link(&mapper).unwrap(), lo);
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(
        std::fs::read(mnt.join("data")).unwrap() == data,
        "read back other bytes after the paths came back"
    );
    drop(mounted);

    // Logging both sessions out removes the map and everything it made.
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--logout"]));
    }
    node.wait_for("mapper/mpatha gone", || {
        std::fs::symlink_metadata(&mapper).is_err()
    });
    node.wait_for("every link gone", || {
        std::fs::read_dir(dev.join("mapper")).is_ok_and(|mut d| d.next().is_none())
            && std::fs::read_dir(dev.join("disk/by-id")).is_ok_and(|mut d| d.next().is_none())
    });
    // The daemon answers once the map's removal is complete (it holds its state
    // meanwhile).
    let Response::Snapshots(maps) = node.ask(Request::Snapshots { map: None }) else {
        panic!("not snapshots");
    };
    assert!(maps.is_empty(), "{maps:?}");
    node.wait_for("loop device detached", || {
        !String::from_utf8_lossy(&Command::new("losetup").arg("-a").output().unwrap().stdout)
            .contains(&*dir.to_string_lossy())
    });
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&*dir.join("run/fuse").to_string_lossy()));
    assert!(!dir.join("run/nbd/mpatha.sock").exists());
    let log = node.log();
    assert!(
        log.contains("mpatha: removed map after removing all paths"),
        "{log}"
    );

    // Logging in again makes the map again under the same name (bindings file), its
    // partition found when it is made; the data is there.
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--login"]));
    }
    node.wait_for("mapper/mpathap1 again", || part.exists());
    sh(Command::new("mount").arg(&part).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    assert!(
        std::fs::read(mnt.join("data")).unwrap() == data,
        "data lost"
    );
    drop(mounted);

    // SIGTERM flushes the maps before logging out: nothing is left, exit status 0.
    let mut child = node.child.get_mut().take().unwrap();
    signal(child.id(), "TERM");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("iscsid did not stop on SIGTERM:\n{}", node.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", node.log());
    assert!(std::fs::read_dir(dev.join("mapper")).is_ok_and(|mut d| d.next().is_none()));
    assert!(
        !String::from_utf8_lossy(&Command::new("losetup").arg("-a").output().unwrap().stdout)
            .contains(&*dir.to_string_lossy())
    );
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&*dir.to_string_lossy()));
    assert!(node.log().contains("mpatha: map flushed"), "{}", node.log());
}

fn snapshots(node: &NodeDaemon) -> Vec<hydra_multipath::show::MapSnapshot> {
    match node.ask(Request::Snapshots { map: None }) {
        Response::Snapshots(m) => m,
        other => panic!("not snapshots: {other:?}"),
    }
}

/// find_multipaths strict keeps a WWID that is not in the wwids file out; `add map`
/// makes it (named by its WWID without user_friendly_names) and remembers it;
/// `reconfigure` with user_friendly_names on makes it again as mpatha; a bad
/// multipath.conf is refused naming file, line and keyword, and the map stays; `multipath
/// -F` removes it and it is not made again until `add map` (by its alias). NBD only
/// (`--no-kernel-devices`): no dev dir links, the NBD socket follows the name.
#[test]
fn find_multipaths_add_map_reconfigure_flush_nbd_only() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("lun.img"), 16 << 20));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _sweep = Sweep(dir.to_owned());
    std::fs::create_dir_all(dir.join("iscsi")).unwrap();
    let mp = dir.join("multipath");
    let config = |extra: &str| {
        std::fs::write(
            dir.join("multipath.conf"),
            format!(
                "defaults {{\n\tfind_multipaths strict\n\tbindings_file {}\n\twwids_file {}\n{extra}}}\n",
                mp.join("bindings").display(),
                mp.join("wwids").display()
            ),
        )
        .unwrap()
    };
    config("\tuser_friendly_names no\n");
    let portal = format!("127.0.0.1:{}", h.ports[0]);
    ok(adm(dir, &["-m", "discovery", "-t", "st", "-p", &portal]));
    let node = NodeDaemon::start(dir, &["--no-kernel-devices"]);
    ok(adm(
        dir,
        &["-m", "node", "-T", IQN, "-p", &portal, "--login"],
    ));
    node.wait_for("the builder's find_multipaths verdict", || {
        node_log(dir).contains("no map (find_multipaths strict)")
    });
    assert!(snapshots(&node).is_empty());

    // add map by WWID (from the session's LUN list, as `show paths` has it).
    let Response::Text(paths) = node.ask(Request::Show(mpc::Show::Paths {
        format: Some("%w %d".into()),
    })) else {
        panic!("show paths");
    };
    let wwid = paths
        .lines()
        .find(|l| l.starts_with("36"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no WWID in {paths:?}"))
        .to_string();
    assert_eq!(
        node.ask(Request::AddMap { map: wwid.clone() }),
        Response::Ok
    );
    let maps = snapshots(&node);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].name, wwid);
    assert!(dir.join(format!("run/nbd/{wwid}.sock")).exists());
    assert!(
        !dir.join("dev").exists(),
        "links made without kernel devices"
    );
    assert!(std::fs::read_to_string(mp.join("wwids"))
        .unwrap()
        .contains(&format!("/{wwid}/")));

    // reconfigure: user-friendly names now; the unused map is made again as mpatha.
    config("\tuser_friendly_names yes\n");
    assert_eq!(node.ask(Request::Reconfigure), Response::Ok);
    let maps = snapshots(&node);
    assert_eq!(maps.len(), 1, "{maps:?}");
    assert_eq!(maps[0].name, "mpatha");
    assert!(dir.join("run/nbd/mpatha.sock").exists());
    assert!(!dir.join(format!("run/nbd/{wwid}.sock")).exists());

    // The NBD export serves the map: nbdinfo sees its size, qemu-io writes and reads
    // a pattern through it.
    let uri = format!(
        "nbd+unix:///mpatha?socket={}",
        dir.join("run/nbd/mpatha.sock").display()
    );
    let size = sh(Command::new("nbdinfo").arg("--size").arg(&uri));
    assert_eq!(size.trim(), (16u64 << 20).to_string());
    let io = sh(Command::new("qemu-io")
        .args([
            "-f",
            "raw",
            "-c",
            "write -P 0xa5 1M 256k",
            "-c",
            "read -P 0xa5 1M 256k",
        ])
        .arg(&uri));
    assert!(
        io.contains("wrote 262144/262144 bytes at offset 1048576")
            && io.contains("read 262144/262144 bytes at offset 1048576")
            && !io.contains("Pattern verification failed"),
        "{io}"
    );

    // A bad value is refused with file, line and keyword; nothing changes.
    config("\tuser_friendly_names yes\n\tno_path_retry sometimes\n");
    match node.ask(Request::Reconfigure) {
        Response::Error { message, .. } => {
            assert!(message.contains("multipath.conf line 6"), "{message}");
            assert!(message.contains("no_path_retry"), "{message}");
        }
        other => panic!("bad config accepted: {other:?}"),
    }
    assert_eq!(snapshots(&node)[0].name, "mpatha");
    config("\tuser_friendly_names yes\n");

    // multipath -F; the map stays away (same paths) until add map by alias.
    assert_eq!(node.ask(Request::Flush { map: None }), Response::Ok);
    assert!(snapshots(&node).is_empty());
    assert!(!dir.join("run/nbd/mpatha.sock").exists());
    ok(adm(dir, &["-m", "session", "-r", "1", "--rescan"]));
    node.wait_for("the builder passing over the flushed map", || {
        node_log(dir).contains(&format!("{wwid}: flushed; not made again"))
    });
    assert!(snapshots(&node).is_empty(), "flushed map made again");
    assert_eq!(
        node.ask(Request::AddMap {
            map: "mpatha".into()
        }),
        Response::Ok
    );
    assert_eq!(snapshots(&node)[0].name, "mpatha");
    assert!(matches!(
        node.ask(Request::AddMap {
            map: "mpathz".into()
        }),
        Response::Error { .. }
    ));
    drop(node);
}

/// `losetup`'s BACK-MAJ:MIN of a loop device: the device number of the filesystem its
/// backing file is on (here: one FUSE mount).
fn backing_devno(lo: &Path) -> String {
    common::netns::loops_by_devno()
        .into_iter()
        .find(|(dev, _)| Path::new(dev) == lo)
        .map(|(_, devno)| devno)
        .unwrap_or_else(|| panic!("{} is not attached", lo.display()))
}

/// Loop devices whose backing file is on the filesystem `devno`, with their AUTOCLEAR.
fn loops_on(devno: &str) -> Vec<(String, String)> {
    sh(Command::new("losetup").args([
        "--list",
        "--noheadings",
        "--output",
        "NAME,BACK-MAJ:MIN,AUTOCLEAR",
    ]))
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[1] == devno).then(|| (f[0].to_string(), f[2].to_string()))
    })
    .collect()
}

/// What is mounted on `dir` itself: (MAJ:MIN, SOURCE) of each mount there.
fn mounted_on(dir: &Path) -> Vec<(String, String)> {
    let o = run(
        Command::new("findmnt")
            .args([
                "--noheadings",
                "--raw",
                "--output",
                "MAJ:MIN,SOURCE",
                "--mountpoint",
            ])
            .arg(dir),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.to_string(), b.to_string()))
        })
        .collect()
}

/// A node daemon killed with SIGKILL leaves its map's FUSE mount dead and its loop
/// device attached, here with a filesystem still mounted on it as a crash finds it.
/// The next daemon on the run directory removes both when it starts: the loop device
/// is detached (marked autoclear while the mount holds it, gone at the unmount), the
/// dead mount unmounted. Logged in again, the map is made anew and the data written
/// before the crash is there.
#[test]
fn a_killed_daemons_loop_device_and_dead_fuse_mount_go_with_the_next_daemon() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n");
    let h = Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("lun.img"), 64 << 20));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _sweep = Sweep(dir.to_owned());
    std::fs::create_dir_all(dir.join("iscsi")).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    write_multipath_conf(dir, "", "");
    let portals = [
        format!("127.0.0.1:{}", h.ports[0]),
        format!("127.0.0.1:{}", h.ports[1]),
    ];
    for p in &portals {
        ok(adm(dir, &["-m", "discovery", "-t", "st", "-p", p]));
    }
    let node = NodeDaemon::start(dir, &[]);
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--login"]));
    }
    let mapper = dir.join("dev/mapper/mpatha");
    node.wait_for("mapper/mpatha", || mapper.exists());
    let lo = std::fs::read_link(&mapper).unwrap();
    let devno = backing_devno(&lo);
    let fuse_dir = dir.join("run/fuse/mpatha");
    assert_eq!(
        mounted_on(&fuse_dir),
        [(devno.clone(), "hydra:mpatha".to_string())]
    );
    sh(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&mapper));
    sh(Command::new("mount").arg(&mapper).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(mnt.join("data"), &data).unwrap();
    sh(Command::new("sync").arg("-f").arg(mnt.join("data")));

    // The crash, and what it leaves: the loop device attached to a FUSE mount that
    // answers ENOTCONN.
    let mut child = node.child.borrow_mut().take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(node);
    assert_eq!(loops_on(&devno), [(lo.display().to_string(), "0".into())]);
    // statfs always asks the FUSE server (attributes are cached).
    let statfs = run(
        Command::new("stat").args(["-f", "-c", "%t"]).arg(&fuse_dir),
        Duration::from_secs(30),
    );
    assert!(
        !statfs.status.success() && text(&statfs).contains("not connected"),
        "{}",
        text(&statfs)
    );

    // The next daemon: the dead mount is gone at once, the loop device is marked
    // autoclear (the filesystem still holds it) and goes with the unmount.
    let node = NodeDaemon::start(dir, &[]);
    assert_eq!(mounted_on(&fuse_dir), [], "{}", node.log());
    assert_eq!(loops_on(&devno), [(lo.display().to_string(), "1".into())]);
    let log = node.log();
    assert!(
        log.contains("left by a daemon that died") && log.contains("dead FUSE mount removed"),
        "{log}"
    );
    drop(mounted);
    node.wait_for("the dead loop device detached at its last close", || {
        loops_on(&devno).is_empty()
    });

    // Logged in again: a new map device, and the data written before the crash.
    for p in &portals {
        ok(adm(dir, &["-m", "node", "-T", IQN, "-p", p, "--login"]));
    }
    node.wait_for("mapper/mpatha again", || mapper.exists());
    let new_devno = backing_devno(&std::fs::read_link(&mapper).unwrap());
    // (The dead superblock's anonymous device number is free again and may be reused.)
    assert!(
        std::fs::symlink_metadata(&fuse_dir).is_ok(),
        "FUSE file served"
    );
    assert_eq!(
        mounted_on(&fuse_dir),
        [(new_devno, "hydra:mpatha".to_string())]
    );
    sh(Command::new("mount").arg(&mapper).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    assert!(
        std::fs::read(mnt.join("data")).unwrap() == data,
        "data lost"
    );
    drop(mounted);
}

fn node_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("iscsid.log")).unwrap_or_default()
}
