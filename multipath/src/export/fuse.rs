//! A [`BlockDevice`] as one file in a FUSE mount, for a loop device to attach
//! (`losetup --direct-io=on`): the kernel block device of a map on machines without
//! nbd, dm or ublk modules (DESIGN.md, Data paths → Export).
//!
//! The mount holds a single regular file of the device's size. The kernel's FUSE
//! requests are read by fuser's session thread; each I/O is handed to the tokio
//! runtime and answered when the device completes it, so many are in flight at once
//! (the reply objects are `Send`). The file is opened with `FOPEN_DIRECT_IO`: no page
//! cache between the loop device and the map, so a flush from the filesystem above
//! reaches the device through loop's fsync and nothing is cached twice.
//!
//! What the loop driver sends, and where it goes:
//! - read/write → [`BlockDevice::read`] / [`BlockDevice::write`] (with FUA when the
//!   file was opened O_DSYNC/O_SYNC);
//! - fsync (REQ_OP_FLUSH, and REQ_FUA, which loop does not offer, emulated by the block
//!   layer as a flush) → [`BlockDevice::flush`];
//! - fallocate PUNCH_HOLE (discard, and write-zeroes that may unmap) →
//!   `write_zeroes(may_unmap)`: a punched range must read back as zeros;
//!   ZERO_RANGE (write-zeroes with REQ_NOUNMAP) → `write_zeroes(!may_unmap)`; plain
//!   allocation → nothing (a LUN is allocated).
//!
//! Alignment: the device takes whole logical blocks. A misaligned read is served from
//! the covering aligned range; a misaligned write or fallocate is refused with EINVAL,
//! as O_DIRECT on a block device would (loop only sends aligned I/O).
//!
//! No unsafe code: fuser mounts with mount(2) as root, without libfuse or fusermount.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};
use tokio::runtime::Handle;

use super::{BlockDevice, DeviceError, IoResult};

const FILE_INO: INodeNo = INodeNo(2);
/// Attributes never change while mounted (the size is fixed), so the kernel may cache
/// them as long as it likes.
const TTL: Duration = Duration::from_secs(3600);
/// Largest write the kernel sends in one request (FUSE's limit is 1 MiB with
/// max_pages; fuser clamps what the kernel does not allow).
const MAX_WRITE: u32 = 1 << 20;
/// Requests in flight between the kernel and this file (FUSE's max_background): above
/// the loop device's queue depth (its nr_requests, 128) so that FUSE is not the limit.
const MAX_BACKGROUND: u16 = 256;
/// The largest range one fallocate turns into one device call (a device call takes a
/// 32-bit length).
const MAX_ZERO_CHUNK: u64 = 1 << 30;

/// The source (`fsname`) of every hydra FUSE mount is this prefix + the file's name, as
/// findmnt shows it; [`super::stale`] recognises a dead daemon's mounts by it.
pub const SOURCE_PREFIX: &str = "hydra:";

/// A mounted FUSE file serving a block device. Unmount it after detaching the loop
/// device: while the file is open, unmounting fails (EBUSY) and falls back to a lazy
/// unmount (the mount leaves the namespace at once, the file keeps serving its loop
/// device, and the session ends when the loop device lets go). Dropping it does the
/// same, logging a failure.
pub struct FuseExport {
    session: Option<BackgroundSession>,
    dir: PathBuf,
    file: PathBuf,
}

impl FuseExport {
    /// Mount a FUSE filesystem at `dir` (an existing directory) holding one file called
    /// `name` that serves `device`; its I/O runs on `runtime`.
    pub fn mount(
        device: Arc<dyn BlockDevice>,
        dir: &Path,
        name: &str,
        runtime: Handle,
    ) -> io::Result<FuseExport> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?}: not a file name"),
            ));
        }
        let fs = BlockFile {
            device,
            runtime,
            name: name.into(),
            created: SystemTime::now(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("{SOURCE_PREFIX}{name}")),
            MountOption::Subtype("hydra".into()),
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(fs, dir, &config).map_err(|e| {
            io::Error::new(e.kind(), format!("FUSE mount on {}: {e}", dir.display()))
        })?;
        Ok(FuseExport {
            session: Some(session),
            dir: dir.to_owned(),
            file: dir.join(name),
        })
    }

    /// The served file: what `losetup` attaches.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Unmount now and wait for the session to end; an error (EBUSY while a loop
    /// device holds the file) says the mount was detached lazily instead.
    pub fn unmount(mut self) -> io::Result<()> {
        self.release()
    }

    fn release(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        session.umount_and_join().map_err(|e| {
            let lazy = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
            io::Error::new(
                e.kind(),
                format!(
                    "unmount {}: {e} (lazy unmount: {lazy:?})",
                    self.dir.display()
                ),
            )
        })
    }
}

impl Drop for FuseExport {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("FUSE export: {e}");
        }
    }
}

/// The filesystem: inode 1 is the directory, inode 2 the device's file.
struct BlockFile {
    device: Arc<dyn BlockDevice>,
    runtime: Handle,
    name: OsString,
    created: SystemTime,
}

fn errno(e: &DeviceError) -> Errno {
    match e {
        DeviceError::Io(_) => Errno::EIO,
        DeviceError::NoSpace => Errno::ENOSPC,
        // A fenced node's writes fail as the kernel's SCSI layer fails them (EBADE is
        // what a RESERVATION CONFLICT becomes, blk_status BLK_STS_RESV_CONFLICT).
        DeviceError::ReservationConflict => Errno::from_i32(libc::EBADE),
        DeviceError::ReadOnly => Errno::EROFS,
        DeviceError::Invalid(_) => Errno::EINVAL,
        DeviceError::NotSupported(_) => Errno::EOPNOTSUPP,
        DeviceError::Shutdown => Errno::ESHUTDOWN,
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl BlockFile {
    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o755, 0, 2),
            FILE_INO => {
                let perm = if self.device.read_only() {
                    0o400
                } else {
                    0o600
                };
                (FileType::RegularFile, perm, self.device.size(), 1)
            }
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            crtime: self.created,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: self.device.preferred_block_size(),
            flags: 0,
        })
    }

    fn block(&self) -> u64 {
        u64::from(self.device.block_size())
    }

    /// Run `io` on the runtime and hand its outcome to `done` (which replies to the
    /// kernel); a failure is logged with `what` and mapped to an errno first.
    fn complete<T, F>(
        &self,
        what: String,
        io: F,
        done: impl FnOnce(Result<T, Errno>) + Send + 'static,
    ) where
        F: Future<Output = IoResult<T>> + Send + 'static,
    {
        self.runtime.spawn(async move {
            done(io.await.map_err(|e| {
                tracing::warn!("FUSE {what}: {e}");
                errno(&e)
            }))
        });
    }
}

impl Filesystem for BlockFile {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        // The loop device submits direct I/O asynchronously (kiocb with a completion);
        // without FUSE_ASYNC_DIO the kernel turns each such request synchronous
        // (fs/fuse/file.c fuse_direct_IO: `io->async = fc->async_dio`), so loop's worker
        // waits for every request before sending the next: one I/O in flight per map
        // whatever the queue depth above. Async direct I/O requests count as background
        // requests, capped by max_background (fuser's default 16), so that goes up to
        // the deepest queue a map is driven with.
        if config.add_capabilities(InitFlags::FUSE_ASYNC_DIO).is_err() {
            tracing::warn!("FUSE: the kernel has no async direct I/O; one request at a time");
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.attr(FILE_INO) {
            Some(attr) if parent == INodeNo::ROOT && name == self.name => {
                reply.entry(&TTL, &attr, Generation(0))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Only what changes nothing is accepted: the size is the LUN's (an O_TRUNC open or
    /// a truncate to another size is refused), owners and modes are fixed.
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.attr(ino) {
            Some(attr) if size.is_none_or(|s| s == attr.size) => reply.attr(&TTL, &attr),
            Some(_) => reply.error(Errno::EPERM),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writes = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        if ino != FILE_INO {
            reply.error(Errno::EISDIR);
        } else if writes && self.device.read_only() {
            reply.error(Errno::EROFS);
        } else {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Short at the end of the file, as a read(2) of a regular file is.
        let end = (offset.saturating_add(u64::from(size))).min(self.device.size());
        if offset >= end {
            return reply.data(&[]);
        }
        let block = self.block();
        let start = offset / block * block;
        let stop = end.div_ceil(block) * block;
        let device = self.device.clone();
        self.complete(
            format!("read of {size} bytes at {offset}"),
            async move { device.read(start, (stop - start) as u32).await },
            move |r| match r {
                Ok(data) => {
                    let from = (offset - start) as usize;
                    reply.data(&data[from..from + (end - offset) as usize]);
                }
                Err(e) => reply.error(e),
            },
        );
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let block = self.block();
        let len = data.len() as u64;
        if !offset.is_multiple_of(block) || !len.is_multiple_of(block) {
            return reply.error(Errno::EINVAL);
        }
        if offset.saturating_add(len) > self.device.size() {
            return reply.error(Errno::ENOSPC);
        }
        let fua = flags.0 & (libc::O_DSYNC | libc::O_SYNC) != 0;
        let data = Bytes::copy_from_slice(data);
        let device = self.device.clone();
        self.complete(
            format!("write of {len} bytes at {offset}"),
            async move { device.write(offset, data, fua).await },
            move |r| match r {
                Ok(()) => reply.written(len as u32),
                Err(e) => reply.error(e),
            },
        );
    }

    /// close(2): nothing to make durable here, fsync does that.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let device = self.device.clone();
        self.complete(
            "fsync".into(),
            async move { device.flush().await },
            move |r| empty(reply, r),
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let block = self.block();
        if !offset.is_multiple_of(block) || !length.is_multiple_of(block) {
            return reply.error(Errno::EINVAL);
        }
        if offset.saturating_add(length) > self.device.size() {
            // The file cannot grow: only KEEP_SIZE requests fit, and only inside.
            return reply.error(Errno::ENOSPC);
        }
        let may_unmap = if mode & libc::FALLOC_FL_PUNCH_HOLE != 0 {
            true
        } else if mode & libc::FALLOC_FL_ZERO_RANGE != 0 {
            false
        } else {
            // Plain preallocation: a LUN's blocks are all there already.
            return reply.ok();
        };
        let device = self.device.clone();
        let zero = async move {
            let mut done = 0;
            while done < length {
                let n = (length - done).min(MAX_ZERO_CHUNK);
                device
                    .write_zeroes(offset + done, n as u32, may_unmap)
                    .await?;
                done += n;
            }
            Ok(())
        };
        self.complete(
            format!("fallocate {mode:#x} of {length} bytes at {offset}"),
            zero,
            move |r| empty(reply, r),
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == INodeNo::ROOT {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOTDIR);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, OsStr::new(".")),
            (INodeNo::ROOT, FileType::Directory, OsStr::new("..")),
            (FILE_INO, FileType::RegularFile, self.name.as_os_str()),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_become_the_kernel_errno() {
        let cases = [
            (DeviceError::Io("x".into()), libc::EIO),
            (DeviceError::NoSpace, libc::ENOSPC),
            (DeviceError::ReservationConflict, libc::EBADE),
            (DeviceError::ReadOnly, libc::EROFS),
            (DeviceError::Invalid("x".into()), libc::EINVAL),
            (DeviceError::NotSupported("x"), libc::EOPNOTSUPP),
            (DeviceError::Shutdown, libc::ESHUTDOWN),
        ];
        for (e, want) in cases {
            assert_eq!(errno(&e), Errno::from_i32(want), "{e}");
        }
    }
}
