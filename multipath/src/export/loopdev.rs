//! A loop device over a file (the FUSE file of a map), with direct I/O and its
//! partitions, through util-linux's `losetup` and `partx` (no ioctl code here).
//!
//! Partitions: this machine's kernel has no partition-table parsers
//! (CONFIG_MSDOS_PARTITION and CONFIG_EFI_PARTITION are off), so `losetup -P` alone
//! never creates `loopNp1`. `partx -a`/`-u` reads the table in userspace and adds the
//! partitions with the BLKPG ioctl, which the kernel honours without parsers: the same
//! job kpartx does for dm-multipath maps in the classic setup. After a user changes
//! the table, [`LoopDevice::update_partitions`] has to run again.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An attached loop device; dropping it removes its partitions and detaches it
/// (errors are logged: a mounted partition keeps it busy).
#[derive(Debug)]
pub struct LoopDevice {
    dev: Option<PathBuf>,
}

/// Run `cmd`; its stdout (trimmed), or an error naming the command and its stderr.
pub(crate) fn run(cmd: &mut Command) -> io::Result<String> {
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
        Ok(LoopDevice {
            dev: Some(dev.into()),
        })
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

    /// Remove the partitions and detach now.
    pub fn detach(mut self) -> io::Result<()> {
        self.release()
    }

    fn release(&mut self) -> io::Result<()> {
        let Some(dev) = self.dev.take() else {
            return Ok(());
        };
        let _ = run(Command::new("partx").arg("-d").arg(&dev));
        run(Command::new("losetup").arg("--detach").arg(&dev)).map(drop)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("loop device not detached: {e}");
        }
    }
}
