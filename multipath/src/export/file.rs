//! A [`BlockDevice`] over a real file: what the tests export, and a stand-in for a LUN.
//!
//! Each I/O runs on tokio's blocking pool as one positioned syscall (pread/pwrite at
//! the offset, so I/Os in flight at once need no lock), flush is fdatasync(2), trim and
//! write-zeroes are fallocate(2) punch-hole and zero-range on filesystems that have
//! them, with a plain write of zeros where they do not.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustix::fs::FallocateFlags;

use super::{BlockDevice, DeviceError, IoFuture, IoResult};

/// A file served as a block device of the file's size at open.
#[derive(Debug, Clone)]
pub struct FileDevice {
    file: Arc<File>,
    size: u64,
    block_size: u32,
    read_only: bool,
}

/// The largest zero buffer written at once where fallocate cannot zero a range.
const ZERO_CHUNK: usize = 1 << 20;

impl FileDevice {
    /// Open an existing file; its size is the device size, rounded down to whole
    /// 512-byte blocks.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileDevice> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            ));
        }
        Ok(FileDevice {
            file: Arc::new(file),
            size: meta.len() / 512 * 512,
            block_size: 512,
            read_only,
        })
    }

    /// Create (or truncate) a sparse file of `size` bytes and open it read-write.
    pub fn create(path: &Path, size: u64) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(size)?;
        drop(file);
        FileDevice::open(path, false)
    }

    /// Serve with another logical block size (a power of two from 512 to 64 KiB, as
    /// the NBD protocol allows); the size is rounded down to whole blocks.
    pub fn with_block_size(mut self, block_size: u32) -> io::Result<FileDevice> {
        if !block_size.is_power_of_two() || !(512..=65536).contains(&block_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block size {block_size}: not a power of two from 512 to 65536"),
            ));
        }
        self.block_size = block_size;
        self.size = self.size / u64::from(block_size) * u64::from(block_size);
        Ok(self)
    }

    /// Run `op` on the file in tokio's blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&File) -> IoResult<T> + Send + 'static,
    ) -> IoFuture<'_, T> {
        let file = self.file.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&file))
                .await
                .map_err(|e| DeviceError::Io(format!("file I/O task failed: {e}")))?
        })
    }

    /// Refuse a range beyond the end (callers check, this keeps the file from growing
    /// if one does not).
    fn check(&self, offset: u64, len: u32) -> IoResult<()> {
        match offset.checked_add(u64::from(len)) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DeviceError::Invalid(format!(
                "{len} bytes at {offset} beyond the device's {} bytes",
                self.size
            ))),
        }
    }

    fn check_write(&self, offset: u64, len: u32) -> IoResult<()> {
        if self.read_only {
            return Err(DeviceError::ReadOnly);
        }
        self.check(offset, len)
    }
}

/// fallocate(2) on a range; Ok(false) where the filesystem cannot do `mode`.
fn fallocate(file: &File, mode: FallocateFlags, offset: u64, len: u64) -> IoResult<bool> {
    match rustix::fs::fallocate(file, mode | FallocateFlags::KEEP_SIZE, offset, len) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(false),
        Err(e) => Err(io::Error::from(e).into()),
    }
}

fn write_zeros(file: &File, offset: u64, len: u64) -> IoResult<()> {
    let zeros = vec![0u8; ZERO_CHUNK.min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&self, offset: u64, len: u32) -> IoFuture<'_, Bytes> {
        if let Err(e) = self.check(offset, len) {
            return Box::pin(async move { Err(e) });
        }
        self.blocking(move |file| {
            let mut buf = BytesMut::zeroed(len as usize);
            file.read_exact_at(&mut buf, offset).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    DeviceError::Io(format!(
                        "the file shrank below {} bytes",
                        offset + len as u64
                    ))
                } else {
                    e.into()
                }
            })?;
            Ok(buf.freeze())
        })
    }

    fn write(&self, offset: u64, data: Bytes, fua: bool) -> IoFuture<'_, ()> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if let Err(e) = self.check_write(offset, len) {
            return Box::pin(async move { Err(e) });
        }
        self.blocking(move |file| {
            file.write_all_at(&data, offset)?;
            if fua {
                rustix::fs::fdatasync(file).map_err(io::Error::from)?;
            }
            Ok(())
        })
    }

    fn flush(&self) -> IoFuture<'_, ()> {
        if self.read_only {
            return Box::pin(async { Ok(()) });
        }
        self.blocking(|file| Ok(rustix::fs::fdatasync(file).map_err(io::Error::from)?))
    }

    fn trim(&self, offset: u64, len: u32) -> IoFuture<'_, ()> {
        if let Err(e) = self.check_write(offset, len) {
            return Box::pin(async move { Err(e) });
        }
        // A filesystem without holes keeps the data: trim is advisory.
        self.blocking(move |file| {
            fallocate(file, FallocateFlags::PUNCH_HOLE, offset, len.into()).map(drop)
        })
    }

    fn write_zeroes(&self, offset: u64, len: u32, may_unmap: bool) -> IoFuture<'_, ()> {
        if let Err(e) = self.check_write(offset, len) {
            return Box::pin(async move { Err(e) });
        }
        self.blocking(move |file| {
            let len = u64::from(len);
            let mode = if may_unmap {
                FallocateFlags::PUNCH_HOLE
            } else {
                FallocateFlags::ZERO_RANGE
            };
            if !fallocate(file, mode, offset, len)? {
                write_zeros(file, offset, len)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocated_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[tokio::test]
    async fn write_read_flush_trim_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lun");
        let dev = FileDevice::create(&path, 4 << 20).unwrap();
        assert_eq!(dev.size(), 4 << 20);
        dev.write(4096, Bytes::from(vec![0xab; 1 << 20]), true)
            .await
            .unwrap();
        let back = dev.read(4096, 1 << 20).await.unwrap();
        assert!(back.iter().all(|&b| b == 0xab));
        dev.flush().await.unwrap();
        // Seen through the file itself, not only through the device.
        let raw = std::fs::read(&path).unwrap();
        assert!(raw[4096..4096 + (1 << 20)].iter().all(|&b| b == 0xab));
        assert!(raw[..4096].iter().all(|&b| b == 0));

        let before = allocated_bytes(&path);
        dev.write_zeroes(8192, 65536, false).await.unwrap();
        assert!(dev.read(8192, 65536).await.unwrap().iter().all(|&b| b == 0));
        dev.write_zeroes(1 << 19, 1 << 19, true).await.unwrap();
        assert!(dev
            .read(1 << 19, 1 << 19)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        dev.trim(4096, 4096).await.unwrap();
        // The hole was punched (tmpfs and ext4 both deallocate).
        assert!(
            allocated_bytes(&path) < before,
            "{} !< {before}",
            allocated_bytes(&path)
        );
        // Data around the zeroed ranges is untouched.
        assert!(dev
            .read(1 << 18, 4096)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0xab));
    }

    #[tokio::test]
    async fn out_of_range_and_read_only_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lun");
        let dev = FileDevice::create(&path, 1 << 20).unwrap();
        assert!(matches!(
            dev.read((1 << 20) - 512, 1024).await,
            Err(DeviceError::Invalid(_))
        ));
        assert!(matches!(
            dev.read(u64::MAX, 512).await,
            Err(DeviceError::Invalid(_))
        ));
        let data = Bytes::from_static(&[1; 512]);
        assert!(matches!(
            dev.write(1 << 20, data.clone(), false).await,
            Err(DeviceError::Invalid(_))
        ));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            1 << 20,
            "the file grew"
        );
        let ro = FileDevice::open(&path, true).unwrap();
        assert!(ro.read_only());
        assert_eq!(ro.write(0, data, false).await, Err(DeviceError::ReadOnly));
        assert_eq!(ro.trim(0, 512).await, Err(DeviceError::ReadOnly));
        assert_eq!(
            ro.write_zeroes(0, 512, true).await,
            Err(DeviceError::ReadOnly)
        );
    }

    #[test]
    fn block_size_must_be_a_power_of_two() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lun");
        std::fs::write(&path, vec![0u8; 10_000]).unwrap();
        let dev = FileDevice::open(&path, false).unwrap();
        assert_eq!(dev.size(), 9728);
        assert_eq!(dev.clone().with_block_size(4096).unwrap().size(), 8192);
        assert!(dev.clone().with_block_size(1000).is_err());
        assert!(dev.with_block_size(256).is_err());
    }
}
