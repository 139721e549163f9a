//! What a node daemon killed before its teardown leaves of a map's kernel device, and
//! how the next daemon on the same run directory removes it.
//!
//! A daemon that dies (SIGKILL, a crash) neither detaches its loop device nor unmounts
//! its FUSE file. The kernel ends the FUSE connection when the daemon's /dev/fuse
//! descriptor closes, so the mount stays in the mount table answering ENOTCONN, and the
//! loop device stays attached to the dead file, failing every I/O. Nothing but a reboot
//! would remove them, and each crash would leave one more loop device.
//!
//! The next daemon on the run directory is the only one there (its pid file), so a
//! hydra FUSE mount it finds on a map's FUSE directory is a dead predecessor's (asking
//! the mount would not tell: its attributes are cached for an hour, and a connection
//! whose descriptor leaked into another process would hang the question). It
//! detaches every loop device whose backing file lives on that mount (losetup's
//! BACK-MAJ:MIN equals the mount's MAJ:MIN: a FUSE superblock's anonymous device number
//! names that one mount, unlike the backing file's path, which reads `/<alias>` once
//! the mount is detached). A device still in use (a filesystem mounted on it) cannot
//! go at once: LOOP_CLR_FD then marks it autoclear and the kernel detaches it at its
//! last close (loop(4)). Then the dead mount is unmounted lazily. Anything else mounted
//! there is left alone, with an error.
//!
//! Through findmnt, losetup and partx, like [`super::loopdev`]: no ioctl code here.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::fuse::SOURCE_PREFIX;
use super::loopdev::run;

/// A mount's device number, `major:minor` as findmnt and losetup print it.
type DevNo = String;

/// [`reclaim`] on every directory under `fuse_root` (a run directory's `fuse/`); what
/// cannot be removed is logged and left. For a daemon's start, after its pid file.
pub fn sweep(fuse_root: &Path) {
    let Ok(entries) = std::fs::read_dir(fuse_root) else {
        return;
    };
    for e in entries.flatten() {
        if let Err(e) = reclaim(&e.path()) {
            tracing::error!("{e}");
        }
    }
}

/// Remove what a dead daemon left on `dir` (a map's FUSE directory): the loop devices
/// on its dead FUSE mount, then the mount, each logged. Nothing mounted there: nothing
/// to do.
fn reclaim(dir: &Path) -> io::Result<()> {
    // A mount over a mount is possible (two crashes without a reclaim in between is
    // not, but a user's own mount might have been stacked): each pass takes the top.
    for _ in 0..8 {
        let Some(m) = mounted_at(dir)? else {
            return Ok(());
        };
        if !m.fstype.starts_with("fuse") || !m.source.starts_with(SOURCE_PREFIX) {
            return Err(io::Error::other(format!(
                "{}: {} ({}) is mounted there, not a hydra FUSE file; left alone",
                dir.display(),
                m.source,
                m.fstype
            )));
        }
        let devno = m.devno;
        for dev in loops_backed_by(&devno)? {
            // Partitions first: a loop device with partitions still has them after
            // LOOP_CLR_FD until its last close. A mounted partition keeps them; fine.
            let _ = run(Command::new("partx").arg("-d").arg(&dev));
            run(Command::new("losetup").arg("--detach").arg(&dev))?;
            tracing::warn!(
                "{}: detached {} left by a daemon that died (backing device {devno}); \
                 if a filesystem is mounted on it, it goes when that is unmounted",
                dir.display(),
                dev.display()
            );
        }
        rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
            io::Error::other(format!(
                "{}: cannot unmount the dead FUSE mount: {e}",
                dir.display()
            ))
        })?;
        tracing::warn!("{}: dead FUSE mount removed", dir.display());
    }
    Err(io::Error::other(format!(
        "{}: still a mount there after 8 unmounts",
        dir.display()
    )))
}

/// A mount as findmnt shows it.
struct Mount {
    devno: DevNo,
    fstype: String,
    source: String,
}

/// The filesystem mounted on `dir` itself, if any.
fn mounted_at(dir: &Path) -> io::Result<Option<Mount>> {
    let out = Command::new("findmnt")
        .args([
            "--noheadings",
            "--raw",
            "--output",
            "MAJ:MIN,FSTYPE,SOURCE",
            "--mountpoint",
        ])
        .arg(dir)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("findmnt: {e}")))?;
    // findmnt exits 1 when nothing is mounted there.
    let text = String::from_utf8_lossy(&out.stdout);
    // Several lines when mounts are stacked; the last is the top one. --raw escapes
    // blanks inside a field (\x20), so fields split on blanks.
    Ok(text.lines().last().and_then(|l| {
        let mut f = l.split_whitespace();
        Some(Mount {
            devno: f.next()?.to_owned(),
            fstype: f.next()?.to_owned(),
            source: f.next().unwrap_or_default().to_owned(),
        })
    }))
}

/// Loop devices whose backing file is on the filesystem with device number `devno`.
fn loops_backed_by(devno: &str) -> io::Result<Vec<PathBuf>> {
    // Not --raw: losetup's raw output keeps the column padding, escaped as \x20.
    let out = run(Command::new("losetup").args([
        "--list",
        "--noheadings",
        "--output",
        "NAME,BACK-MAJ:MIN",
    ]))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, back) = (f.next()?, f.next()?);
            (back == devno).then(|| PathBuf::from(name))
        })
        .collect())
}
