//! Logical block provisioning (SBC-3 §4.7): WRITE SAME(10)/(16) (§5.41, §5.42) on every
//! disk, and — when the LUN is thin (`params thin_provisioning=1`, as in tgt) — UNMAP
//! (§5.28), the UNMAP bit of WRITE SAME, and GET LBA STATUS (§5.6).
//!
//! Deallocation punches holes in the backing store (files and block devices alike), so
//! unmapped blocks read as zeros (LBPRZ = 1) and GET LBA STATUS reads the allocation
//! straight from the filesystem (SEEK_DATA/SEEK_HOLE). Anchored state is not supported
//! (ANC_SUP = 0): ANCHOR is refused. Every range is checked against the capacity before
//! anything is written or deallocated, and an UNMAP list is checked whole first, so a
//! refused command changes nothing.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hydra_proto::scsi::cdb::{be16, be32};
use hydra_proto::scsi::unmap::UnmapList;
use hydra_proto::scsi::{op, Sense};

use super::{Disk, Lun, ScsiOutcome, ScsiRequest};

/// VPD 0xB0 MAXIMUM UNMAP LBA COUNT (per command, all descriptors together). libiscsi
/// holds targets to at most 1 Mi blocks.
pub const MAX_UNMAP_BLOCKS: u32 = 1 << 20;
/// VPD 0xB0 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// VPD 0xB0 MAXIMUM WRITE SAME LENGTH, in bytes of medium (converted to blocks): bounds
/// how long one WRITE SAME keeps a blocking thread busy.
pub const MAX_WRITE_SAME_BYTES: u64 = 4 << 30;
/// Largest buffer WRITE SAME fills with the pattern at once.
const PATTERN_CHUNK: usize = 1 << 20;

fn be64(c: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(c[at..at + 8].try_into().expect("8 bytes"))
}

/// Blocks `[lba, lba + n)` inside a LUN of `capacity` blocks?
fn in_range(lba: u64, n: u64, capacity: u64) -> bool {
    lba.checked_add(n).is_some_and(|e| e <= capacity)
}

fn io_failed(lun: &Lun, what: &str, e: std::io::Error) -> ScsiOutcome {
    tracing::error!(
        "LUN {} ({}): {what} failed: {e}",
        lun.number,
        lun.identity.scsi_id
    );
    lun.check(&Sense::write_error())
}

/// UNMAP (SBC-3 §5.28). Only offered on thin LUNs.
pub(super) fn unmap(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let param_len = be16(c, 7) as usize;
    let done = |o: ScsiOutcome| o.with_data_out(param_len as u32);
    if c[1] & 0x01 != 0 {
        return done(lun.check(&Sense::invalid_cdb_field(1, Some(0))));
    }
    if d.settings.readonly {
        return done(lun.check(&Sense::write_protected()));
    }
    // §5.28.1: a zero length transfers nothing and is not an error.
    if param_len == 0 {
        return done(ScsiOutcome::good(Bytes::new()));
    }
    if param_len < 8 || req.data_out.len() < param_len {
        return done(lun.check(&Sense::parameter_list_length()));
    }
    let p = &req.data_out[..param_len];
    // UNMAP DATA LENGTH and UNMAP BLOCK DESCRIPTOR DATA LENGTH (§5.28.2): a partial
    // trailing descriptor is ignored, as the standard allows.
    let Ok(list) = UnmapList::parse(p) else {
        return done(lun.check(&Sense::parameter_list_length()));
    };
    let descriptors: Vec<(u64, u64)> = list.ranges.iter().map(|&(l, n)| (l, n as u64)).collect();
    if descriptors.len() > MAX_UNMAP_DESCRIPTORS as usize {
        return done(lun.check(&Sense::invalid_param_field(2)));
    }
    let capacity = d.backing.size() / d.block_size as u64;
    let mut total: u64 = 0;
    for (i, &(lba, n)) in descriptors.iter().enumerate() {
        if !in_range(lba, n, capacity) {
            return done(lun.check(&Sense::lba_out_of_range()));
        }
        total += n;
        if total > MAX_UNMAP_BLOCKS as u64 {
            return done(lun.check(&Sense::invalid_param_field(8 + 16 * i as u16 + 8)));
        }
    }
    let bs = d.block_size as u64;
    for (lba, n) in descriptors {
        let _range = d.ranges.shared(lba * bs, n * bs);
        if let Err(e) = d.backing.punch_hole(lba * bs, n * bs) {
            return done(io_failed(lun, "unmap", e));
        }
    }
    done(ScsiOutcome::good(Bytes::new()))
}

/// WRITE SAME (10) and (16) (SBC-3 §5.41, §5.42).
pub(super) fn write_same(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let sixteen = c[0] == op::WRITE_SAME_16;
    let (lba, blocks) = if sixteen {
        (be64(c, 2), be32(c, 10) as u64)
    } else {
        (be32(c, 2) as u64, be16(c, 7) as u64)
    };
    let anchor = c[1] & 0x10 != 0;
    let unmap = c[1] & 0x08 != 0;
    let ndob = sixteen && c[1] & 0x01 != 0;
    let bs = d.block_size as u64;
    let wanted = if ndob { 0 } else { bs as u32 };
    let done = |o: ScsiOutcome| o.with_data_out(wanted);
    // ANC_SUP = 0: no anchored state (with or without UNMAP).
    if anchor {
        return done(lun.check(&Sense::invalid_cdb_field(1, Some(4))));
    }
    // The UNMAP bit needs a thin LUN (LBPWS/LBPWS10 are only set then).
    if unmap && !d.settings.thin_provisioning {
        return done(lun.check(&Sense::invalid_cdb_field(1, Some(3))));
    }
    // NDOB (SBC-4) writes zeros without a Data-Out buffer; hydra allows it only together
    // with UNMAP, where it means "deallocate".
    if ndob && !unmap {
        return done(lun.check(&Sense::invalid_cdb_field(1, Some(0))));
    }
    if d.settings.readonly {
        return done(lun.check(&Sense::write_protected()));
    }
    let capacity = d.backing.size() / bs;
    // NUMBER OF LOGICAL BLOCKS 0: to the end of the medium (WSNZ = 0).
    if lba > capacity || (blocks == 0 && lba >= capacity) {
        return done(lun.check(&Sense::lba_out_of_range()));
    }
    let n = if blocks == 0 { capacity - lba } else { blocks };
    if !in_range(lba, n, capacity) {
        return done(lun.check(&Sense::lba_out_of_range()));
    }
    if n > MAX_WRITE_SAME_BYTES / bs {
        return done(lun.check(&Sense::invalid_cdb_field(
            if sixteen { 10 } else { 7 },
            None,
        )));
    }
    // Exactly one logical block of Data-Out (none with NDOB).
    if req.data_out.len() != wanted as usize {
        return done(lun.check(&Sense::invalid_cdb_field(
            if sixteen { 10 } else { 7 },
            None,
        )));
    }
    let pattern = &req.data_out[..wanted as usize];
    let _range = d.ranges.shared(lba * bs, n * bs);
    // UNMAP: deallocate whatever the pattern (the range then reads as zeros, LBPRZ = 1),
    // as Linux's LIO does and libiscsi's WriteSame*.UnmapUntilEnd expects.
    if unmap {
        return done(match d.backing.punch_hole(lba * bs, n * bs) {
            Ok(()) => ScsiOutcome::good(Bytes::new()),
            Err(e) => io_failed(lun, "write same (unmap)", e),
        });
    }
    let dsync = !d.wce.load(Ordering::Relaxed);
    let per_chunk = (PATTERN_CHUNK as u64 / bs).max(1);
    let chunk: Vec<u8> = pattern
        .iter()
        .copied()
        .cycle()
        .take((per_chunk.min(n) * bs) as usize)
        .collect();
    let mut at = lba;
    while at < lba + n {
        let k = per_chunk.min(lba + n - at);
        if let Err(e) = d
            .backing
            .write(at * bs, &chunk[..(k * bs) as usize], false, dsync)
        {
            let e = match e {
                crate::backing::IoError::Io(e) => e,
                crate::backing::IoError::WouldBlock => std::io::ErrorKind::WouldBlock.into(),
            };
            return done(io_failed(lun, "write same", e));
        }
        at += k;
    }
    done(ScsiOutcome::good(Bytes::new()))
}

/// GET LBA STATUS (SBC-3 §5.6): one descriptor per allocation run from the LBA asked
/// for, as many as the allocation length holds.
pub(super) fn get_lba_status(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let start = be64(c, 2);
    let alloc = be32(c, 10) as usize;
    let bs = d.block_size as u64;
    let capacity = d.backing.size() / bs;
    if start >= capacity {
        return lun.check(&Sense::lba_out_of_range());
    }
    // At least one descriptor is always built; the allocation length truncates.
    let max_desc = (alloc.saturating_sub(8) / 16).clamp(1, 512);
    let mut out = vec![0u8; 8];
    let mut lba = start;
    while lba < capacity && (out.len() - 8) / 16 < max_desc {
        let extent = |off: u64| {
            d.backing.extent(off).map_err(|e| {
                tracing::error!("LUN {}: get lba status: {e}", lun.number);
                lun.check(&Sense::read_error())
            })
        };
        let (mut mapped, mut end) = match extent(lba * bs) {
            Ok(x) => x,
            Err(o) => return o,
        };
        if !mapped && end < (lba + 1) * bs && end < capacity * bs {
            // The hole ends inside this block: the block holds data.
            (mapped, end) = match extent(end) {
                Ok((_, e)) => (true, e),
                Err(o) => return o,
            };
        }
        // A block is mapped if any byte of it is: a run of holes starts at the next
        // whole block and ends at the last whole one.
        let mut next = if mapped { end.div_ceil(bs) } else { end / bs };
        next = next.clamp(lba + 1, capacity);
        let n = (next - lba).min(u32::MAX as u64);
        out.extend_from_slice(&lba.to_be_bytes());
        out.extend_from_slice(&(n as u32).to_be_bytes());
        // PROVISIONING STATUS: 0 mapped, 1 deallocated.
        out.extend_from_slice(&[if mapped { 0 } else { 1 }, 0, 0, 0]);
        lba += n;
    }
    let len = (out.len() - 4) as u32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    out.truncate(alloc);
    ScsiOutcome::good(out)
}

/// VPD 0xB0 fields of this module (SBC-3 §6.6.3): MAXIMUM WRITE SAME LENGTH on every
/// disk; on thin LUNs the UNMAP limits and an OPTIMAL UNMAP GRANULARITY of 4 KiB (the
/// allocation unit of the usual filesystems: smaller holes only zero the bytes).
pub fn fill_block_limits(page: &mut [u8], block_size: u32, thin: bool) {
    let bs = block_size as u64;
    page[36..44].copy_from_slice(&(MAX_WRITE_SAME_BYTES / bs).to_be_bytes());
    if thin {
        page[20..24].copy_from_slice(&MAX_UNMAP_BLOCKS.to_be_bytes());
        page[24..28].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        page[28..32].copy_from_slice(&((4096 / bs).max(1) as u32).to_be_bytes());
    }
}

/// VPD 0xB2 Logical Block Provisioning (SBC-3 §6.6.4) of a thin LUN: LBPU, LBPWS,
/// LBPWS10 and LBPRZ set, provisioning type 010b (thin).
pub fn fill_provisioning(page: &mut [u8]) {
    page[5] = 0x80 | 0x40 | 0x20 | 0x04;
    page[6] = 0x02;
}
