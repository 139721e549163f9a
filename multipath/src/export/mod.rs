//! Exports: how a multipath map reaches its users.
//!
//! Every export serves from one [`BlockDevice`]: the multipath map implements it (its
//! I/O goes to SCSI over the map's paths), [`file::FileDevice`] implements it over a
//! real file (tests, and a LUN stand-in). The exports themselves only speak this trait:
//! - [`nbd`] serves it over the NBD protocol on a unix socket or loopback TCP (qemu,
//!   nbdcopy, nbdfuse, fio's nbd engine);
//! - [`fuse`] serves it as one file in a FUSE mount, which [`loopdev`] attaches to a
//!   loop device with direct I/O and partitions: the kernel block device on machines
//!   without nbd, dm or ublk modules (DESIGN.md, Data paths → Export). `/dev/nbdX` or
//!   ublk would be further exports of the same trait;
//! - [`stale`] removes what a daemon killed before its teardown left of them.
//!
//! The trait is object safe (`Arc<dyn BlockDevice>`): one NBD server can carry maps and
//! files side by side, and its futures are boxed once per I/O, which costs nothing next
//! to a SCSI command.

pub mod file;
pub mod fuse;
pub mod loopdev;
pub mod nbd;
pub mod stale;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// What an I/O on a [`BlockDevice`] returns.
pub type IoResult<T> = Result<T, DeviceError>;

/// The future of one I/O (boxed so that [`BlockDevice`] stays object safe).
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = IoResult<T>> + Send + 'a>>;

/// A block device an export serves from.
///
/// Offsets and lengths are in bytes. Callers (the exports) check every request against
/// [`size`](Self::size), [`block_size`](Self::block_size) and
/// [`read_only`](Self::read_only) before calling, so an implementation may rely on
/// `offset + len <= size()`, both multiples of `block_size()`, and no write on a
/// read-only device; it still answers [`DeviceError::Invalid`] rather than misbehave if
/// a caller breaks that.
///
/// Ordering and durability (what NBD's `CAN_MULTI_CONN` and the kernel's flush rely
/// on): I/Os in flight at the same time are unordered; a write is visible to every
/// later read from any caller once it completed; [`flush`](Self::flush) makes durable
/// every write that completed before the flush was called, whoever issued it (SBC-3
/// §5.22 SYNCHRONIZE CACHE covers the whole logical unit, and fdatasync(2) the whole
/// file); a write with `fua` is durable when it completes (SBC-3 §5.41 WRITE(10) FUA).
pub trait BlockDevice: Send + Sync + 'static {
    /// Size in bytes (a multiple of `block_size()`).
    fn size(&self) -> u64;

    /// The logical block size in bytes (a power of two, 512 or 4096 for a LUN): every
    /// request's offset and length is a multiple of it.
    fn block_size(&self) -> u32;

    /// The size an I/O should preferably be a multiple of (SBC-3 §6.6.4 Block Limits
    /// VPD page, OPTIMAL TRANSFER LENGTH GRANULARITY); at least `block_size()`.
    fn preferred_block_size(&self) -> u32 {
        self.block_size().max(4096)
    }

    /// Whether writes are refused (a write-protected LUN, a read-only file).
    fn read_only(&self) -> bool;

    /// Read `len` bytes at `offset` (SBC-3 READ(16)).
    fn read(&self, offset: u64, len: u32) -> IoFuture<'_, Bytes>;

    /// Write `data` at `offset`; with `fua` the data is durable when this completes
    /// (SBC-3 WRITE(16) with FUA).
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> IoFuture<'_, ()>;

    /// Make every completed write durable (SBC-3 SYNCHRONIZE CACHE(16)).
    fn flush(&self) -> IoFuture<'_, ()>;

    /// Tell the device `len` bytes at `offset` are no longer needed (SBC-3 UNMAP). The
    /// range's contents are unspecified afterwards; a device that cannot deallocate
    /// succeeds without doing anything.
    fn trim(&self, offset: u64, len: u32) -> IoFuture<'_, ()>;

    /// Make `len` bytes at `offset` read as zeros (SBC-3 WRITE SAME(16) of a zero
    /// block). With `may_unmap` the device may deallocate the range to do it (WRITE
    /// SAME with UNMAP); without, the range stays allocated.
    fn write_zeroes(&self, offset: u64, len: u32, may_unmap: bool) -> IoFuture<'_, ()>;
}

/// Why an I/O on a [`BlockDevice`] failed.
///
/// Each variant is a class of failure the caller can act on, not a transport detail:
/// a multipath map returns an error only once it is final (no usable path left and no
/// queueing, or an error about the request or the medium, as dm-multipath's
/// `blk_path_error` decides). The NBD server maps them to the errno values of the NBD
/// protocol (doc/proto.md, "Error values"):
///
/// | variant               | NBD errno  | typical SCSI source                               |
/// |-----------------------|------------|---------------------------------------------------|
/// | `Io`                  | EIO (5)    | MEDIUM ERROR, HARDWARE ERROR, no path left        |
/// | `NoSpace`             | ENOSPC (28)| DATA PROTECT / SPACE ALLOCATION FAILED (thin LUN) |
/// | `ReservationConflict` | EPERM (1)  | status RESERVATION CONFLICT (a fenced node)       |
/// | `ReadOnly`            | EPERM (1)  | DATA PROTECT / WRITE PROTECTED                    |
/// | `Invalid`             | EINVAL (22)| ILLEGAL REQUEST (LBA out of range, bad field)     |
/// | `NotSupported`        | ENOTSUP (95)| ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE |
/// | `Shutdown`            | ESHUTDOWN (108)| the map is being removed                      |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The data could not be read or written (medium or hardware error, no path left).
    #[error("I/O error: {0}")]
    Io(String),
    /// The device has no room for the data (thin provisioning exhausted).
    #[error("no space left on the device")]
    NoSpace,
    /// Another initiator holds a persistent reservation that excludes this one
    /// (SPC-4 §5.12): the node is fenced, its writes must fail, not hang.
    #[error("reservation conflict")]
    ReservationConflict,
    /// The device refuses writes.
    #[error("the device is read-only")]
    ReadOnly,
    /// The request itself is wrong (range beyond the end, misaligned).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The device does not implement this operation.
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    /// The device is going away (map flushed, daemon stopping).
    #[error("the device is shutting down")]
    Shutdown,
}

impl From<std::io::Error> for DeviceError {
    /// An OS error from a file or device, classified by its errno (EDQUOT and EFBIG are
    /// "no space" as the NBD protocol asks).
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => DeviceError::NoSpace,
            Some(libc::EROFS | libc::EPERM | libc::EACCES) => DeviceError::ReadOnly,
            Some(libc::EINVAL) => DeviceError::Invalid(e.to_string()),
            Some(libc::EOPNOTSUPP) => DeviceError::NotSupported("by the backing file"),
            _ => DeviceError::Io(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_classified() {
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(DeviceError::from(os(28)), DeviceError::NoSpace);
        assert_eq!(DeviceError::from(os(122)), DeviceError::NoSpace);
        assert_eq!(DeviceError::from(os(30)), DeviceError::ReadOnly);
        assert!(matches!(DeviceError::from(os(22)), DeviceError::Invalid(_)));
        assert!(matches!(
            DeviceError::from(os(95)),
            DeviceError::NotSupported(_)
        ));
        assert!(matches!(DeviceError::from(os(5)), DeviceError::Io(_)));
    }
}
