//! The system calls of `hydra mount`: BLKFLSBUF (drop a device's cached blocks),
//! mount(2), umount2(2), the device numbers of a block device and of the disk a
//! partition is on (sysfs, Documentation/ABI/stable/sysfs-block), and the mounts of
//! /proc/self/mountinfo (proc(5)).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `_IO(0x12, 97)` (linux/fs.h): flush the buffer cache of a block device.
const BLKFLSBUF: libc::c_ulong = 0x1261;

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{}: path contains a NUL byte", p.display())))
}

fn cstr_s(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Usage(format!("{what} contains a NUL byte")))
}

/// `major:minor` of a block device (`st_rdev`), as mountinfo and sysfs write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevT {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for DevT {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl DevT {
    pub fn parse(s: &str) -> Option<DevT> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevT {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

/// The device numbers of block device `dev` (symlinks followed); refuses anything else.
pub fn block_dev(dev: &Path) -> Result<DevT> {
    let name = dev.display().to_string();
    let md = std::fs::metadata(dev).map_err(|e| Error::device(&name, e))?;
    if !md.file_type().is_block_device() {
        return Err(Error::device(&name, "not a block device"));
    }
    let rdev = md.rdev();
    Ok(DevT {
        major: libc::major(rdev),
        minor: libc::minor(rdev),
    })
}

/// The whole disk a partition is on (itself for a whole disk), from
/// `/sys/dev/block/MAJ:MIN`: a partition's directory has a `partition` file and sits
/// in its disk's directory.
pub fn whole_disk(d: DevT) -> DevT {
    let sys = PathBuf::from(format!("/sys/dev/block/{d}"));
    if !sys.join("partition").exists() {
        return d;
    }
    std::fs::canonicalize(&sys)
        .ok()
        .and_then(|p| std::fs::read_to_string(p.parent()?.join("dev")).ok())
        .and_then(|s| DevT::parse(&s))
        .unwrap_or(d)
}

/// BLKFLSBUF on `dev`: what this node has cached of the device may be stale (another
/// node wrote since), so it goes before the probe and the mount read it.
pub fn flush_buffers(dev: &Path) -> Result<()> {
    let name = dev.display().to_string();
    let f = std::fs::File::open(dev).map_err(|e| Error::device(&name, format!("open: {e}")))?;
    use std::os::fd::AsRawFd;
    // SAFETY: an ioctl without argument on a descriptor we own.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKFLSBUF as _, 0) };
    if r != 0 {
        return Err(Error::device(
            &name,
            format!("BLKFLSBUF: {}", std::io::Error::last_os_error()),
        ));
    }
    Ok(())
}

/// mount(2).
pub fn mount(dev: &Path, dir: &Path, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<()> {
    let (src, tgt) = (cstr(dev)?, cstr(dir)?);
    let t = cstr_s(fstype, "the filesystem type")?;
    let d = cstr_s(data, "the mount options")?;
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            t.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Failed(format!(
            "mount {} on {} ({fstype}{}{data}): {e}",
            dev.display(),
            dir.display(),
            if data.is_empty() { "" } else { ", " }
        )));
    }
    Ok(())
}

/// umount2(2) without flags: a busy filesystem stays mounted (EBUSY).
pub fn umount(dir: &Path) -> Result<()> {
    let tgt = cstr(dir)?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let r = unsafe { libc::umount2(tgt.as_ptr(), 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Failed(format!("umount {}: {e}", dir.display())));
    }
    Ok(())
}

/// One line of /proc/self/mountinfo: the fields hydra mount looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub dev: Option<DevT>,
    pub dir: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text (proc(5): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] -
/// FSTYPE SOURCE SUPEROPTS`); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|w| *w == "-")?;
            if sep < 6 || f.len() < sep + 3 {
                return None;
            }
            Some(MountEntry {
                dev: DevT::parse(f[2]),
                dir: PathBuf::from(unescape(f[4])),
                fstype: unescape(f[sep + 1]),
                source: unescape(f[sep + 2]),
            })
        })
        .collect()
}

/// This process's mounts.
pub fn mounts() -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    37 1 253:3 / /srv/a\\040b rw shared:2 master:4 - ext4 /dev/mapper/mpatha rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].dev,
            Some(DevT {
                major: 98,
                minor: 0
            })
        );
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[1].dir, PathBuf::from("/srv/a b"));
        assert_eq!(m[1].source, "/dev/mapper/mpatha");
    }

    #[test]
    fn escapes_and_dev_t() {
        assert_eq!(unescape("a\\040b\\134c\\011"), "a b\\c\t");
        assert_eq!(unescape("trail\\04"), "trail\\04");
        assert_eq!(DevT::parse("7:3"), Some(DevT { major: 7, minor: 3 }));
        assert_eq!(DevT::parse("7"), None);
        let e = block_dev(Path::new("/proc/self/mountinfo"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a block device"), "{e}");
    }
}
