//! One map's device stack (`node::device::MapDevice`) over a real file: the NBD socket,
//! FUSE + loop with direct I/O, `<dev>/mapper/<alias>` and the by-id names; sfdisk on
//! the mapper name makes `mpathap1` appear by itself (the inotify watch on the loop node,
//! as udev's "watch"), mkfs.ext4 + mount + write + read back on it; teardown removes
//! every link, the loop device and the FUSE mount. Needs root, /dev/fuse and a free loop
//! device. Guards unmount and tear down on failure too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hydra_multipath::export::file::FileDevice;
use hydra_multipath::node::device::{Layout, MapDevice};

mod common;

const MIB: u64 = 1 << 20;

/// A mounted filesystem, unmounted on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Wait (polling a path: the watch runs in the daemon's task, nothing to await here)
/// until `cond` holds, at most 20 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn no_loop_left_on(dir: &Path) {
    let loops = common::stdout(&common::run(Command::new("losetup").arg("-a")));
    assert!(
        !loops.contains(&*dir.to_string_lossy()),
        "loop device left behind: {loops}"
    );
}

#[test]
fn map_device_stack_partitions_mount_teardown() {
    let rt = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let (run, dev, mnt) = (
        tmp.path().join("run"),
        tmp.path().join("dev"),
        tmp.path().join("mnt"),
    );
    std::fs::create_dir(&mnt).unwrap();
    let lun = tmp.path().join("lun.img");
    let file = Arc::new(FileDevice::create(&lun, 128 * MIB).unwrap());
    let layout = Layout {
        run_dir: run.clone(),
        dev_dir: dev.clone(),
        partition_delimiter: Some("p".into()),
        kernel_device: true,
    };
    let wwid = "360000000000000000e00000000010001";
    let md = rt
        .block_on(MapDevice::create(file, "mpatha", wwid, &layout))
        .unwrap();
    // From here on, the guard tears the stack down whatever happens.
    struct Guard<'a>(Option<MapDevice>, &'a tokio::runtime::Runtime);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if let Some(md) = self.0.take() {
                self.1.block_on(md.teardown());
            }
        }
    }
    let mut guard = Guard(Some(md), &rt);
    let md = guard.0.as_ref().unwrap();
    assert!(
        md.no_kernel_device().is_none(),
        "{:?}",
        md.no_kernel_device()
    );
    let lo = md.kernel_device().unwrap().to_owned();
    assert!(run.join("nbd/mpatha.sock").exists());
    let mapper = dev.join("mapper/mpatha");
    assert_eq!(std::fs::read_link(&mapper).unwrap(), lo);
    assert_eq!(
        std::fs::read_link(dev.join(format!("disk/by-id/dm-uuid-mpath-{wwid}"))).unwrap(),
        lo
    );
    assert_eq!(
        std::fs::read_link(dev.join("disk/by-id/dm-name-mpatha")).unwrap(),
        lo
    );

    // Partition through the mapper name; the close after writing brings mpathap1.
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
    // The link alone is not enough: a re-read the watch started on an earlier close
    // can add the partition between sfdisk's write and its own BLKRRPART, which drops
    // it again until the re-read for sfdisk's close adds it back (`udevadm settle` is
    // the classic answer to the same race). Openable means it is there now.
    wait_for("mapper/mpathap1", || std::fs::File::open(&part).is_ok());
    assert!(dev
        .join(format!("disk/by-id/dm-uuid-part1-mpath-{wwid}"))
        .exists());

    common::run(Command::new("mkfs.ext4").arg("-q").arg(&part));
    common::run(Command::new("mount").arg(&part).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    let data: Vec<u8> = (0..3 * MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(mnt.join("data"), &data).unwrap();
    common::run(&mut Command::new("sync"));
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(std::fs::read(mnt.join("data")).unwrap() == data);
    drop(mounted);

    let notes = rt.block_on(guard.0.take().unwrap().teardown());
    assert!(notes.is_empty(), "{notes:?}");
    assert!(!mapper.exists() && std::fs::symlink_metadata(&mapper).is_err());
    assert!(std::fs::read_dir(dev.join("mapper"))
        .unwrap()
        .next()
        .is_none());
    assert!(std::fs::read_dir(dev.join("disk/by-id"))
        .unwrap()
        .next()
        .is_none());
    assert!(!run.join("nbd/mpatha.sock").exists());
    no_loop_left_on(tmp.path());
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&*run.to_string_lossy()));

    // The filesystem reached the file: its partition table is there.
    let raw = std::fs::read(&lun).unwrap();
    assert_eq!(&raw[510..512], &[0x55, 0xaa]);
}

/// A busy device (mounted) is torn down lazily, and says so.
#[test]
fn teardown_of_a_mounted_map_is_lazy_and_reported() {
    let rt = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let file = Arc::new(FileDevice::create(&tmp.path().join("lun.img"), 64 * MIB).unwrap());
    let layout = Layout {
        run_dir: tmp.path().join("run"),
        dev_dir: tmp.path().join("dev"),
        partition_delimiter: None,
        kernel_device: true,
    };
    let md = rt
        .block_on(MapDevice::create(file, "busy", "3600busy", &layout))
        .unwrap();
    let lo = md.kernel_device().unwrap().to_owned();
    let mounted = {
        let r = Command::new("mkfs.ext4").arg("-q").arg(&lo).status();
        let r2 = r
            .ok()
            .filter(|s| s.success())
            .and_then(|_| Command::new("mount").arg(&lo).arg(&mnt).status().ok());
        if !r2.is_some_and(|s| s.success()) {
            rt.block_on(md.teardown());
            panic!("mkfs/mount failed");
        }
        Mounted(mnt.clone())
    };
    let notes = rt.block_on(md.teardown());
    assert!(
        notes.iter().any(|n| n.contains("in use")),
        "no note about the busy device: {notes:?}"
    );
    assert!(std::fs::symlink_metadata(tmp.path().join("dev/mapper/busy")).is_err());
    // The filesystem keeps working until unmounted; then the loop device goes.
    std::fs::write(mnt.join("f"), b"still here").unwrap();
    drop(mounted);
    wait_for("loop device autoclear", || {
        !common::stdout(&common::run(Command::new("losetup").arg("-a")))
            .contains(&*tmp.path().to_string_lossy())
    });
    drop(rt);
}
