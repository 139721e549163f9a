//! Backing stores: a regular file or a block device, read and written at offsets.
//!
//! The network task calls with `nowait = true`: reads use `preadv2(RWF_NOWAIT)`, which
//! succeeds only when the data is in the page cache and otherwise fails with EAGAIN at
//! once, so a page-cache hit costs one syscall and no thread hop, and a miss is retried on
//! the blocking pool. `bsoflags direct` opens with O_DIRECT (buffers are aligned here),
//! `bsoflags sync` with O_SYNC. An O_DIRECT store never does I/O in non-blocking mode:
//! every access goes to the device, and RWF_NOWAIT does not make a direct read fail fast
//! (see [`Backing::read`]), so the network task would wait for the device.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rustix::io::{pwritev2, Errno, ReadWriteFlags};

use crate::{Error, Result};

/// O_DIRECT buffer and offset alignment (the largest logical sector size in use).
const DIRECT_ALIGN: usize = 4096;

/// Why an I/O did not complete.
#[derive(Debug)]
pub enum IoError {
    /// Would have blocked (page-cache miss in non-blocking mode): retry blocking.
    WouldBlock,
    /// A real failure.
    Io(std::io::Error),
}

impl From<Errno> for IoError {
    fn from(e: Errno) -> Self {
        // EAGAIN: not cached. EOPNOTSUPP: this filesystem has no RWF_NOWAIT for the
        // operation (many refuse it for buffered writes); either way, go blocking.
        if e == Errno::AGAIN || e == Errno::OPNOTSUPP {
            IoError::WouldBlock
        } else {
            IoError::Io(e.into())
        }
    }
}

/// An open backing file or device.
pub struct Backing {
    file: File,
    path: PathBuf,
    size: AtomicU64,
    direct: bool,
    block_device: bool,
    /// The filesystem refused RWF_NOWAIT writes once: stop trying (saves a syscall).
    no_nowait_writes: std::sync::atomic::AtomicBool,
}

fn size_of(file: &File, block_device: bool) -> std::io::Result<u64> {
    if block_device {
        // Seeking to the end of a block device gives its size (no BLKGETSIZE64 ioctl,
        // so no unsafe code).
        let mut f = file;
        f.seek(SeekFrom::End(0))
    } else {
        Ok(file.metadata()?.len())
    }
}

impl Backing {
    /// Open `path` read-write (read-only when `readonly`).
    pub fn open(path: &Path, direct: bool, sync: bool, readonly: bool) -> Result<Backing> {
        let err = |source| Error::Backing {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(err)?;
        if meta.is_dir() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a directory",
            )));
        }
        let block_device = meta.file_type().is_block_device();
        let mut flags = 0;
        if direct {
            flags |= libc::O_DIRECT;
        }
        if sync {
            flags |= libc::O_SYNC;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!readonly)
            .custom_flags(flags)
            .open(path)
            .map_err(err)?;
        let size = size_of(&file, block_device).map_err(err)?;
        Ok(Backing {
            file,
            path: path.to_path_buf(),
            size: AtomicU64::new(size),
            direct,
            block_device,
            no_nowait_writes: Default::default(),
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes (as of open or the last [`Backing::refresh_size`]).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Re-read the size (after the file or device grew).
    pub fn refresh_size(&self) -> std::io::Result<u64> {
        let s = size_of(&self.file, self.block_device)?;
        self.size.store(s, Ordering::Relaxed);
        Ok(s)
    }

    /// Read `len` bytes at `off` into a fresh buffer. The caller has range-checked.
    ///
    /// With `nowait` on an O_DIRECT store this is always [`IoError::WouldBlock`], before
    /// any syscall. O_DIRECT bypasses the page cache, so there is no hit to serve inline,
    /// and RWF_NOWAIT does not turn a direct read into "fail if it needs the disk": the
    /// kernel then only refuses to wait for locks or a free request slot, submits the
    /// read and waits for the device (preadv2(2) describes the buffered case). Seen with
    /// strace on ext4 over virtio-blk (Linux 6.18): every RWF_NOWAIT read of an O_DIRECT
    /// file returned its data, none EAGAIN, each taking the device's time (median 74 µs
    /// against 17 µs for page-cache hits), all on the connection's thread one at a time
    /// while the blocking pool stayed empty.
    pub fn read(&self, off: u64, len: usize, nowait: bool) -> Result<Bytes, IoError> {
        if nowait && self.direct {
            return Err(IoError::WouldBlock);
        }
        let flags = if nowait {
            ReadWriteFlags::NOWAIT
        } else {
            ReadWriteFlags::empty()
        };
        // The buffer is not zeroed first: for 1 MiB reads, zeroing alone cost about 4% of
        // the daemon's CPU, and every byte is overwritten by the read or not returned.
        let align = if self.direct { DIRECT_ALIGN } else { 1 };
        let mut v: Vec<u8> = Vec::with_capacity(len + align - 1);
        let start = v.as_ptr().align_offset(align);
        let filled = self.read_full(&mut v.spare_capacity_mut()[start..start + len], off, flags)?;
        debug_assert_eq!(filled, len);
        // SAFETY: read_full returned Ok, so it initialised every byte of
        // v[start..start + len]; the bytes before `start` are alignment padding, set to 0
        // here so that the whole prefix is initialised before set_len.
        unsafe {
            std::ptr::write_bytes(v.as_mut_ptr(), 0, start);
            v.set_len(start + len);
        }
        Ok(Bytes::from(v).slice(start..start + len))
    }

    /// Fill `buf` from `off`; returns how many bytes it initialised (all of them on Ok).
    fn read_full(
        &self,
        buf: &mut [std::mem::MaybeUninit<u8>],
        mut off: u64,
        flags: ReadWriteFlags,
    ) -> Result<usize, IoError> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            let iov = libc::iovec {
                iov_base: rest.as_mut_ptr().cast(),
                iov_len: rest.len(),
            };
            // SAFETY: the iovec describes `rest`, memory we own exclusively for the
            // duration of the call; the kernel writes at most iov_len bytes into it, and
            // uninitialised memory is a valid target for a write.
            let n = unsafe {
                libc::preadv2(
                    rustix::fd::AsRawFd::as_raw_fd(&self.file),
                    &iov,
                    1,
                    off as libc::off_t,
                    flags.bits() as libc::c_int,
                )
            };
            if n < 0 {
                return Err(Errno::from_io_error(&std::io::Error::last_os_error())
                    .unwrap_or(Errno::IO)
                    .into());
            }
            let n = n as usize;
            if n == 0 {
                // The file shrank under us: never invent data.
                return Err(IoError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "backing store shorter than the LUN",
                )));
            }
            done += n;
            if flags.contains(ReadWriteFlags::NOWAIT) && done < buf.len() {
                // Partly cached: let the blocking path do the rest in one go.
                return Err(IoError::WouldBlock);
            }
            off += n as u64;
        }
        Ok(done)
    }

    /// Write `data` at `off`; `dsync` makes it durable before returning (RWF_DSYNC).
    /// With `nowait` on an O_DIRECT store: [`IoError::WouldBlock`] before any syscall, as
    /// for reads (a direct write waits for the device whatever RWF_NOWAIT says).
    pub fn write(&self, off: u64, data: &[u8], nowait: bool, dsync: bool) -> Result<(), IoError> {
        if nowait && (self.direct || self.no_nowait_writes.load(Ordering::Relaxed)) {
            return Err(IoError::WouldBlock);
        }
        let mut flags = if nowait {
            ReadWriteFlags::NOWAIT
        } else {
            ReadWriteFlags::empty()
        };
        if dsync {
            flags |= ReadWriteFlags::DSYNC;
        }
        let aligned;
        let mut buf: &[u8] = if self.direct && data.as_ptr().align_offset(DIRECT_ALIGN) != 0 {
            let mut v = vec![0u8; data.len() + DIRECT_ALIGN];
            let start = v.as_ptr().align_offset(DIRECT_ALIGN);
            v[start..start + data.len()].copy_from_slice(data);
            aligned = (v, start);
            &aligned.0[aligned.1..aligned.1 + data.len()]
        } else {
            data
        };
        let mut off = off;
        while !buf.is_empty() {
            let n = match pwritev2(&self.file, &[IoSlice::new(buf)], off, flags) {
                Ok(n) => n,
                Err(Errno::OPNOTSUPP) if nowait => {
                    self.no_nowait_writes.store(true, Ordering::Relaxed);
                    return Err(IoError::WouldBlock);
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(IoError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            if nowait && n < buf.len() {
                // Part was written; writing the rest blocking is idempotent.
                return Err(IoError::WouldBlock);
            }
            buf = &buf[n..];
            off += n as u64;
        }
        Ok(())
    }

    /// Make every written byte durable (SYNCHRONIZE CACHE, FUA with write-cache on).
    pub fn sync(&self) -> std::io::Result<()> {
        rustix::fs::fdatasync(&self.file).map_err(Into::into)
    }

    /// Deallocate `len` bytes at `off` (UNMAP, WRITE SAME with UNMAP): the range reads
    /// as zeros afterwards, on files and on block devices alike (fallocate(2)
    /// PUNCH_HOLE, which the kernel turns into a zeroing discard for devices).
    pub fn punch_hole(&self, off: u64, len: u64) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        use rustix::fs::FallocateFlags as F;
        rustix::fs::fallocate(&self.file, F::PUNCH_HOLE | F::KEEP_SIZE, off, len)
            .map_err(Into::into)
    }

    /// The allocation run that `off` is in (GET LBA STATUS): whether it is mapped (holds
    /// data) and where it ends, both from lseek(2) SEEK_DATA/SEEK_HOLE. A block device
    /// or a filesystem without holes reports everything as data.
    pub fn extent(&self, off: u64) -> std::io::Result<(bool, u64)> {
        let size = self.size();
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(off)) {
            Ok(d) if d == off => {
                let end = rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Hole(off))?;
                Ok((true, end.min(size)))
            }
            Ok(d) => Ok((false, d.min(size))),
            // ENXIO: no data from `off` to the end of the file.
            Err(Errno::NXIO) => Ok((false, size)),
            Err(e) => Err(e.into()),
        }
    }

    /// Start reading a range into the page cache (PRE-FETCH).
    pub fn prefetch(&self, off: u64, len: u64) {
        let _ = rustix::fs::fadvise(
            &self.file,
            off,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::WillNeed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_nowait() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(1 << 20).unwrap();
        let b = Backing::open(f.path(), false, false, false).unwrap();
        assert_eq!(b.size(), 1 << 20);
        b.write(4096, b"hello", false, true).unwrap();
        // Just written: in the page cache, so the non-blocking read succeeds.
        let r = b.read(4096, 5, true).unwrap();
        assert_eq!(&r[..], b"hello");
        f.as_file().set_len(2 << 20).unwrap();
        assert_eq!(b.refresh_size().unwrap(), 2 << 20);
    }

    #[test]
    fn direct_io_aligned() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("d.img");
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        let b = match Backing::open(&p, true, false, false) {
            Ok(b) => b,
            Err(e) => panic!("O_DIRECT open failed on /var/tmp: {e}"),
        };
        let data = vec![7u8; 4096];
        b.write(8192, &data[..], false, false).unwrap();
        assert_eq!(&b.read(8192, 4096, false).unwrap()[..], &data[..]);
    }

    #[test]
    fn direct_io_never_nonblocking() {
        // Every direct access goes to the device: the network task must hand it to the
        // blocking pool, so non-blocking mode refuses it without touching the file.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("d.img");
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        let b = Backing::open(&p, true, false, false).unwrap();
        let old = vec![3u8; 4096];
        b.write(0, &old, false, false).unwrap();
        assert!(matches!(b.read(0, 4096, true), Err(IoError::WouldBlock)));
        assert!(matches!(
            b.write(0, &[9u8; 4096], true, false),
            Err(IoError::WouldBlock)
        ));
        assert_eq!(&b.read(0, 4096, false).unwrap()[..], &old[..]);
        // The same file opened without O_DIRECT serves a cached block inline.
        let buffered = Backing::open(&p, false, false, false).unwrap();
        assert_eq!(&buffered.read(0, 4096, false).unwrap()[..], &old[..]);
        assert_eq!(&buffered.read(0, 4096, true).unwrap()[..], &old[..]);
    }

    #[test]
    fn directory_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Backing::open(d.path(), false, false, false),
            Err(Error::Backing { .. })
        ));
    }
}
