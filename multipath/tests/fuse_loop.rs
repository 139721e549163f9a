//! The kernel block device of a map, prototype: a `BlockDevice` (a real file here)
//! served as a FUSE file by `export::fuse`, attached to a loop device with direct I/O,
//! partitioned (sfdisk, then `partx` through `LoopDevice::update_partitions`),
//! formatted with ext4, mounted, written, synced and read back after dropping caches;
//! then fstrim reaches the device as punched holes, and the data is found in the
//! backing file itself once everything is torn down. Needs root, /dev/fuse and a free
//! loop device (the test machine has them; it fails, naming what is missing, if not).
//!
//! Cleanup on every exit, failure included: guards unmount ext4, detach the loop
//! device, unmount FUSE (in that order), and the test checks no loop device is left on
//! its files.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hydra_multipath::export::file::FileDevice;
use hydra_multipath::export::fuse::FuseExport;
use hydra_multipath::export::loopdev::LoopDevice;
use hydra_multipath::export::{BlockDevice, IoFuture};

mod common;

const MIB: u64 = 1 << 20;

/// A file device that counts what reaches it, to see the kernel's flushes and
/// discards arrive.
struct Counting {
    inner: FileDevice,
    flushes: AtomicU64,
    zeroed: AtomicU64,
}

impl BlockDevice for Counting {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read(&self, offset: u64, len: u32) -> IoFuture<'_, Bytes> {
        self.inner.read(offset, len)
    }
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> IoFuture<'_, ()> {
        self.inner.write(offset, data, fua)
    }
    fn flush(&self) -> IoFuture<'_, ()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.flush()
    }
    fn trim(&self, offset: u64, len: u32) -> IoFuture<'_, ()> {
        self.inner.trim(offset, len)
    }
    fn write_zeroes(&self, offset: u64, len: u32, may_unmap: bool) -> IoFuture<'_, ()> {
        self.zeroed.fetch_add(u64::from(len), Ordering::Relaxed);
        self.inner.write_zeroes(offset, len, may_unmap)
    }
}

/// Run a command, fail the test if it fails; its standard output.
fn run(cmd: &mut Command) -> String {
    common::stdout(&common::run(cmd))
}

/// A mounted filesystem, unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    fn new(dev: &Path, dir: &Path, opts: &str) -> Mounted {
        run(Command::new("mount").args(["-o", opts]).arg(dev).arg(dir));
        Mounted(dir.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A loop device detached on drop.
struct Detach(String);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn no_loop_left_on(dir: &Path) {
    let loops = run(Command::new("losetup").arg("-a"));
    assert!(
        !loops.contains(&*dir.to_string_lossy()),
        "loop device left behind: {loops}"
    );
}

#[test]
fn fuse_file_on_loop_partition_ext4_fstrim() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "no /dev/fuse: the FUSE route needs it"
    );
    let rt = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let (mnt, fs, lun) = (
        tmp.path().join("mnt"),
        tmp.path().join("fs"),
        tmp.path().join("lun.img"),
    );
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir(&fs).unwrap();
    let dev = Arc::new(Counting {
        inner: FileDevice::create(&lun, 256 * MIB).unwrap(),
        flushes: AtomicU64::new(0),
        zeroed: AtomicU64::new(0),
    });
    let mut data = vec![0u8; 24 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();

    {
        // Field order is drop order: ext4, then loop, then FUSE.
        struct Stack {
            mounted: Option<Mounted>,
            lo: Option<LoopDevice>,
            _fuse: FuseExport,
        }
        let fuse = FuseExport::mount(dev.clone(), &mnt, "mpatha", rt.handle().clone()).unwrap();
        let meta = std::fs::metadata(fuse.file()).unwrap();
        assert_eq!(meta.len(), 256 * MIB);
        let lo = LoopDevice::attach(fuse.file()).unwrap();
        let mut stack = Stack {
            mounted: None,
            lo: Some(lo),
            _fuse: fuse,
        };
        let lo = stack.lo.as_ref().unwrap();
        assert!(
            lo.direct_io().unwrap(),
            "the loop device fell back to buffered I/O"
        );

        let mut sfdisk = Command::new("sfdisk");
        sfdisk
            .arg("-q")
            .arg(lo.path())
            .stdin(std::process::Stdio::piped());
        let mut child = sfdisk.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"label: dos\n,,L\n").unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "sfdisk failed");
        let parts = lo.update_partitions().unwrap();
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert!(parts[0].to_string_lossy().ends_with("p1"), "{parts:?}");

        run(Command::new("mkfs.ext4").arg("-q").arg(&parts[0]));
        stack.mounted = Some(Mounted::new(&parts[0], &fs, "discard"));
        let flushes_before = dev.flushes.load(Ordering::Relaxed);
        std::fs::write(fs.join("data"), &data).unwrap();
        run(&mut Command::new("sync"));
        assert!(
            dev.flushes.load(Ordering::Relaxed) > flushes_before,
            "sync sent no flush to the device"
        );
        std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
        assert!(
            std::fs::read(fs.join("data")).unwrap() == data,
            "read back other bytes"
        );

        // Deleting the data and trimming reaches the device as punched holes.
        let allocated = std::fs::metadata(&lun).unwrap().blocks() * 512;
        std::fs::remove_file(fs.join("data")).unwrap();
        run(&mut Command::new("sync"));
        run(Command::new("fstrim").arg(&fs));
        assert!(
            dev.zeroed.load(Ordering::Relaxed) >= 16 * MIB,
            "fstrim did not reach the device"
        );
        let after = std::fs::metadata(&lun).unwrap().blocks() * 512;
        assert!(
            after + 16 * MIB <= allocated,
            "no holes punched: {after} vs {allocated}"
        );

        // Write it again for the check below, through the whole stack.
        std::fs::write(fs.join("data"), &data).unwrap();
        run(&mut Command::new("sync"));
        drop(stack);
    }
    no_loop_left_on(tmp.path());
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&*mnt.to_string_lossy()),
        "FUSE still mounted"
    );

    // The filesystem is in the backing file itself: a read-only loop device straight
    // on it at the partition's offset (sector 2048) finds the data.
    let raw = std::fs::read(&lun).unwrap();
    assert_eq!(&raw[510..512], &[0x55, 0xaa], "no MBR in the backing file");
    let direct = run(Command::new("losetup")
        .args(["--read-only", "--offset", "1048576", "--find", "--show"])
        .arg(&lun));
    {
        let direct = Detach(direct.trim().to_owned());
        let _m = Mounted::new(Path::new(&direct.0), &fs, "ro");
        assert!(
            std::fs::read(fs.join("data")).unwrap() == data,
            "the backing file holds other bytes"
        );
    }
    no_loop_left_on(tmp.path());
}

/// Unmounting while a loop device still holds the file fails with EBUSY and detaches
/// the mount lazily: the mount point is free at once, the loop device keeps reading
/// the map, and detaching it afterwards leaves nothing behind.
#[test]
fn unmount_while_a_loop_device_holds_the_file() {
    let rt = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let (mnt, lun) = (tmp.path().join("mnt"), tmp.path().join("lun.img"));
    std::fs::create_dir(&mnt).unwrap();
    let dev = FileDevice::create(&lun, 16 * MIB).unwrap();
    std::fs::write(&lun, vec![0x3c; 16 << 20]).unwrap();
    let fuse = FuseExport::mount(Arc::new(dev), &mnt, "busy", rt.handle().clone()).unwrap();
    let lo = LoopDevice::attach(fuse.file()).unwrap();
    let err = fuse.unmount().unwrap_err();
    assert!(err.to_string().contains("lazy unmount: Ok"), "{err}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*mnt.to_string_lossy()),
        "still mounted: {mounts}"
    );
    let mut block = vec![0u8; 4096];
    let mut f = std::fs::File::open(lo.path()).unwrap();
    f.read_exact(&mut block).unwrap();
    assert!(
        block.iter().all(|&b| b == 0x3c),
        "the loop device lost its file"
    );
    drop(f);
    lo.detach().unwrap();
    no_loop_left_on(tmp.path());
}
