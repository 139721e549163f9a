//! A loop device over a file (the FUSE file of a map), with direct I/O and its
//! partitions, through util-linux's `losetup` and `partx` (no ioctl code here).
//!
//! Partitions: this machine's kernel has no partition-table parsers
//! (CONFIG_MSDOS_PARTITION and CONFIG_EFI_PARTITION are off), so `losetup -P` alone
//! never creates `loopNp1`. `partx -a`/`-u` reads the table in userspace and adds the
//! partitions with the BLKPG ioctl, which the kernel honours without parsers: the same
//! job kpartx does for dm-multipath maps in the classic setup. After a user changes
//! the table, [`LoopDevice::update_partitions`] has to run again.
//!
//! Lifetime: the device is held open by this process and marked autoclear (what
//! `losetup --detach` does to a busy device), so it goes by itself when its last opener
//! closes it: when this process drops it or dies, or, while a filesystem on it is
//! mounted, at the unmount. A killed node daemon leaves no loop device behind over a
//! FUSE file nobody serves any more (the fault run found them leaked after kills).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An attached loop device; dropping it removes its partitions and lets it go (the
/// kernel detaches it at once, or at the unmount when a filesystem on it is mounted).
#[derive(Debug)]
pub struct LoopDevice {
    dev: Option<PathBuf>,
    /// The open descriptor that keeps the autoclear device attached.
    hold: Option<std::fs::File>,
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl LoopDevice {
    /// Attach `file` to a free loop device, with direct I/O (no second page cache
    /// between the filesystem and the map) and partition scanning on.
    pub fn attach(file: &Path) -> io::Result<LoopDevice> {
        let dev = run(Command::new("losetup")
            .args(["--direct-io=on", "--partscan", "--find", "--show"])
            .arg(file))?;
        if !dev.starts_with("/dev/loop") {
            return Err(io::Error::other(format!(
                "losetup printed {dev:?}, not a loop device"
            )));
        }
        let mut lo = LoopDevice {
            dev: Some(dev.into()),
            hold: None,
        };
        // Held open, `--detach` only marks it autoclear (loop_clr_fd on a device with
        // more than one opener); checked, since a detach that happened would leave
        // nothing attached. On an error `lo`'s drop detaches what was attached.
        lo.hold = Some(std::fs::File::open(lo.path())?);
        run(Command::new("losetup").arg("--detach").arg(lo.path()))?;
        if !lo.autoclear() {
            return Err(io::Error::other(format!(
                "{}: not marked autoclear by losetup --detach",
                lo.path().display()
            )));
        }
        Ok(lo)
    }

    /// Whether the kernel detaches the device at its last close.
    fn autoclear(&self) -> bool {
        self.autoclear_of(self.path())
    }

    fn autoclear_of(&self, dev: &Path) -> bool {
        let name = dev.file_name().unwrap_or_default();
        std::fs::read_to_string(Path::new("/sys/block").join(name).join("loop/autoclear"))
            .is_ok_and(|v| v.trim() == "1")
    }

    /// The device node, `/dev/loopN`.
    pub fn path(&self) -> &Path {
        self.dev.as_deref().expect("attached until dropped")
    }

    /// Whether the kernel does direct I/O on the backing file (it falls back to
    /// buffered I/O silently when the file refuses O_DIRECT).
    pub fn direct_io(&self) -> io::Result<bool> {
        let out = run(Command::new("losetup")
            .args(["--list", "--noheadings", "--output", "DIO"])
            .arg(self.path()))?;
        Ok(out == "1")
    }

    /// (Re)read the partition table and make the kernel's partitions match it
    /// (`partx -u`, then `-a` for a disk that had none); their device nodes, sorted.
    pub fn update_partitions(&self) -> io::Result<Vec<PathBuf>> {
        let has_table = run(Command::new("partx")
            .args(["--show", "--noheadings"])
            .arg(self.path()))
        .map(|out| !out.is_empty())
        .unwrap_or(false);
        if has_table {
            // -a fails for partitions that exist already, -u for ones that do not.
            let _ = run(Command::new("partx").arg("-a").arg(self.path()));
            run(Command::new("partx").arg("-u").arg(self.path()))?;
        } else {
            let _ = run(Command::new("partx").arg("-d").arg(self.path()));
        }
        self.partitions()
    }

    /// The partitions the kernel has for this device (`/dev/loopNpM`), sorted.
    pub fn partitions(&self) -> io::Result<Vec<PathBuf>> {
        let name = self
            .path()
            .file_name()
            .expect("/dev/loopN")
            .to_string_lossy()
            .into_owned();
        let mut parts: Vec<(u32, PathBuf)> =
            std::fs::read_dir(Path::new("/sys/block").join(&name))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e
                        .file_name()
                        .to_string_lossy()
                        .strip_prefix(&format!("{name}p"))?
                        .parse()
                        .ok()?;
                    Some((n, Path::new("/dev").join(e.file_name())))
                })
                .collect();
        parts.sort();
        Ok(parts.into_iter().map(|(_, p)| p).collect())
    }

    /// Remove the partitions and let the device go now (see the module's Lifetime).
    pub fn detach(mut self) -> io::Result<()> {
        self.release()
    }

    fn release(&mut self) -> io::Result<()> {
        let Some(dev) = self.dev.take() else {
            return Ok(());
        };
        let _ = run(Command::new("partx").arg("-d").arg(&dev));
        let autoclear = self.autoclear_of(&dev);
        // The kernel detaches an autoclear device once this was its last opener. No
        // `losetup --detach` after that close: the number may belong to another device
        // by then. One not (yet) marked is ours still (attach failed half-way).
        drop(self.hold.take());
        if autoclear {
            Ok(())
        } else {
            run(Command::new("losetup").arg("--detach").arg(&dev)).map(drop)
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("loop device not detached: {e}");
        }
    }
}
