//! What the map's block device looks like and what one command may carry: READ
//! CAPACITY(16) (SBC-3 §5.16), MODE SENSE's WP bit (SBC-3 §6.4.1), the Block Limits
//! VPD page (SBC-3 §6.6.4) and the Logical Block Provisioning VPD page (SBC-3 §6.6.4
//! of SBC-4), read once through one path when the map is made.

use bytes::Bytes;
use hydra_initiator::Session;
use hydra_proto::scsi::cdb::{be32, be64};
use hydra_proto::scsi::{vpd, Opcode};

use crate::{Error, Result};

/// The LUN as the map's block device shows it, and the per-command limits dispatch
/// splits requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes (blocks × block size).
    pub size: u64,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Writes are refused (MODE SENSE WP, SBC-3 §6.4.1).
    pub read_only: bool,
    /// The LUN deallocates with UNMAP (LBPU) — otherwise trim succeeds doing nothing.
    pub unmap: bool,
    /// MAXIMUM TRANSFER LENGTH in blocks for READ/WRITE (0: no limit); larger requests
    /// are split.
    pub max_transfer_blocks: u32,
    /// MAXIMUM UNMAP LBA COUNT (0: no limit reported).
    pub max_unmap_blocks: u32,
    /// MAXIMUM WRITE SAME LENGTH (0: no limit reported).
    pub max_write_same_blocks: u32,
}

/// What one command carries at most when the LUN reports no limit: a WRITE SAME or
/// UNMAP of the whole LUN in one command would hold the target for long (and WRITE
/// SAME's 0 means "to the end of the LUN", SBC-3 §5.50).
const DEFAULT_RANGE_BLOCKS: u32 = 1 << 20;

impl Geometry {
    /// A LUN of `size` bytes in `block_size` blocks, writable, no UNMAP, no limits.
    pub fn new(size: u64, block_size: u32) -> Geometry {
        Geometry {
            size,
            block_size,
            read_only: false,
            unmap: false,
            max_transfer_blocks: 0,
            max_unmap_blocks: 0,
            max_write_same_blocks: 0,
        }
    }

    /// Read the LUN's geometry through `session`.
    pub async fn probe(session: &Session, lun: u64) -> Result<Geometry> {
        let what = |w: &str| format!("{} LUN {lun}: {w}", session.peer);
        let probe = |w: &str, reason: String| Error::Probe {
            what: what(w),
            reason,
        };
        // The first command of a new I_T nexus meets its unit attention (power on,
        // reset: 29/00); TEST UNIT READY takes it.
        session
            .test_unit_ready(lun)
            .await
            .map_err(|e| probe("TEST UNIT READY", e.to_string()))?
            .map_err(|f| probe("TEST UNIT READY", format!("{f:?}")))?;
        let cap = session
            .scsi(
                lun,
                &hydra_proto::scsi::cdb::read_capacity16(32),
                Bytes::new(),
                32,
            )
            .await
            .map_err(|e| probe("READ CAPACITY(16)", e.to_string()))?
            .map_err(|f| probe("READ CAPACITY(16)", format!("{f:?}")))?;
        let cap = hydra_proto::scsi::capacity::Capacity16::parse(&cap.data)
            .map_err(|e| probe("READ CAPACITY(16)", e.to_string()))?;
        let mut g = Geometry::new(cap.blocks() * u64::from(cap.block_size), cap.block_size);
        // MODE SENSE(6), DBD, all pages: the device-specific byte (2) of the header
        // holds WP in bit 7.
        let ms = [u8::from(Opcode::ModeSense6), 0x08, 0x3f, 0, 252, 0];
        if let Ok(Ok(r)) = session.scsi(lun, &ms, Bytes::new(), 252).await {
            g.read_only = r.data.get(2).is_some_and(|b| b & 0x80 != 0);
        }
        let page = |p: u8| async move {
            let c = vpd::inquiry_cdb(Some(p), 252);
            match session.scsi(lun, &c, Bytes::new(), 252).await {
                Ok(Ok(r)) if r.data.len() >= 4 && r.data[1] == p => Some(r.data),
                _ => None,
            }
        };
        if let Some(bl) = page(vpd::page::BLOCK_LIMITS).await {
            let at = |off: usize| (bl.len() >= off + 4).then(|| be32(&bl, off));
            g.max_transfer_blocks = at(8).unwrap_or(0);
            g.max_unmap_blocks = at(20).unwrap_or(0);
            if bl.len() >= 44 {
                g.max_write_same_blocks = be64(&bl, 36).min(u64::from(u32::MAX)) as u32;
            }
        }
        if cap.lbpme {
            if let Some(lbp) = page(vpd::page::PROVISIONING).await {
                // Byte 5 bit 7: LBPU, the LUN supports UNMAP.
                g.unmap = lbp.get(5).is_some_and(|b| b & 0x80 != 0);
            }
        }
        Ok(g)
    }

    /// Blocks per READ/WRITE command.
    pub(crate) fn transfer_chunk(&self) -> u32 {
        match self.max_transfer_blocks {
            0 => u32::MAX / self.block_size.max(1),
            n => n,
        }
    }

    /// Blocks per UNMAP descriptor (and command).
    pub(crate) fn unmap_chunk(&self) -> u32 {
        match self.max_unmap_blocks {
            0 | u32::MAX => DEFAULT_RANGE_BLOCKS,
            n => n,
        }
    }

    /// Blocks per WRITE SAME command.
    pub(crate) fn write_same_chunk(&self) -> u32 {
        match self.max_write_same_blocks {
            0 => DEFAULT_RANGE_BLOCKS,
            n => n.min(DEFAULT_RANGE_BLOCKS),
        }
    }
}
