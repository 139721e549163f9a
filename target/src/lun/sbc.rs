//! Block commands of a disk LUN (SBC-3 §5): READ/WRITE/VERIFY/WRITE AND VERIFY in their
//! 6/10/12/16 byte forms, PRE-FETCH, SYNCHRONIZE CACHE, READ CAPACITY 10/16, START STOP
//! UNIT, and MODE SENSE/SELECT (in `mode`). Every access is range-checked against the
//! capacity with overflow-safe arithmetic before any I/O, so no command can touch a byte
//! outside the LUN.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hydra_proto::scsi::capacity::Capacity16;
use hydra_proto::scsi::cdb::{self, be32, BlockCdb};
use hydra_proto::scsi::{op, status, Sense};

use super::{
    caw, mode, thin, xcopy, Disk, IoMode, Lun, ScsiOutcome, ScsiRequest, WouldBlock,
    MAX_TRANSFER_BYTES,
};
use crate::backing::IoError;

fn io_err(lun: &Lun, what: &str, e: IoError, sense: Sense) -> Result<ScsiOutcome, WouldBlock> {
    match e {
        IoError::WouldBlock => Err(WouldBlock),
        IoError::Io(e) => {
            tracing::error!(
                "LUN {} ({}): {what} failed: {e}",
                lun.number,
                lun.identity.scsi_id
            );
            Ok(lun.check(&sense))
        }
    }
}

/// Offset and length in bytes of a block range, or the sense to answer with.
fn range(d: &Disk, b: &BlockCdb, len_byte: u16) -> Result<(u64, u64), Sense> {
    let bs = d.block_size as u64;
    let capacity = d.backing.size() / bs;
    let end = b.lba.checked_add(b.blocks as u64);
    if b.lba > capacity || end.is_none_or(|e| e > capacity) {
        return Err(Sense::lba_out_of_range());
    }
    let len = b.blocks as u64 * bs;
    if len > MAX_TRANSFER_BYTES {
        return Err(Sense::invalid_cdb_field(len_byte, None));
    }
    Ok((b.lba * bs, len))
}

/// Byte of the CDB holding the transfer length, for field pointers.
fn len_byte(opcode: u8) -> u16 {
    match hydra_proto::scsi::cdb_len(opcode) {
        Some(6) => 4,
        Some(10) => 7,
        Some(12) => 6,
        _ => 10,
    }
}

pub(super) fn execute(
    lun: &Lun,
    d: &Disk,
    req: &ScsiRequest<'_>,
    mode: IoMode,
) -> Result<ScsiOutcome, WouldBlock> {
    let c = req.cdb;
    let opcode = c[0];
    match opcode {
        op::MODE_SENSE_6 => return Ok(mode::sense(lun, d, req, false)),
        op::MODE_SENSE_10 => return Ok(mode::sense(lun, d, req, true)),
        op::MODE_SELECT_6 => return Ok(mode::select(lun, d, req, false)),
        op::MODE_SELECT_10 => return Ok(mode::select(lun, d, req, true)),
        op::START_STOP_UNIT => return Ok(start_stop(lun, d, req)),
        _ => {}
    }
    if let Err(s) = lun.ready() {
        return Ok(lun.check(&s));
    }
    let nowait = mode == IoMode::NoWait;
    match opcode {
        op::READ_CAPACITY_10 => Ok(read_capacity_10(lun, d, c)),
        op::SERVICE_ACTION_IN_16 if c[1] & 0x1f == op::SAI_GET_LBA_STATUS => {
            if nowait {
                return Err(WouldBlock);
            }
            Ok(thin::get_lba_status(lun, d, req))
        }
        op::SERVICE_ACTION_IN_16 => Ok(read_capacity_16(d, c)),
        op::EXTENDED_COPY => {
            if nowait {
                return Err(WouldBlock);
            }
            Ok(xcopy::extended_copy(lun, req))
        }
        op::RECEIVE_COPY_RESULTS => Ok(xcopy::receive_copy_results(lun, req)),
        op::COMPARE_AND_WRITE => {
            if nowait {
                return Err(WouldBlock);
            }
            Ok(caw::compare_and_write(lun, d, req))
        }
        op::WRITE_SAME_10 | op::WRITE_SAME_16 | op::UNMAP => {
            // Deallocation and pattern writes can take a while: never inline.
            if nowait {
                return Err(WouldBlock);
            }
            Ok(if opcode == op::UNMAP {
                thin::unmap(lun, d, req)
            } else {
                thin::write_same(lun, d, req)
            })
        }
        op::READ_6 | op::READ_10 | op::READ_12 | op::READ_16 => {
            let Some(b) = cdb::block(c) else {
                return Ok(lun.check(&Sense::illegal_request_invalid_opcode()));
            };
            let (off, len) = match range(d, &b, len_byte(opcode)) {
                Ok(r) => r,
                Err(s) => return Ok(lun.check(&s)),
            };
            if len == 0 {
                return Ok(ScsiOutcome::good(Bytes::new()));
            }
            let _range = d.ranges.shared(off, len);
            match d.backing.read(off, len as usize, nowait) {
                Ok(data) => Ok(ScsiOutcome::good(data)),
                Err(e) => io_err(lun, "read", e, Sense::read_error()),
            }
        }
        op::WRITE_6
        | op::WRITE_10
        | op::WRITE_12
        | op::WRITE_16
        | op::WRITE_VERIFY_10
        | op::WRITE_VERIFY_12
        | op::WRITE_VERIFY_16
        | op::ORWRITE_16
        | op::WRITE_ATOMIC_16 => {
            let Some(b) = cdb::block(c) else {
                return Ok(lun.check(&Sense::illegal_request_invalid_opcode()));
            };
            let verify = matches!(
                opcode,
                op::WRITE_VERIFY_10 | op::WRITE_VERIFY_12 | op::WRITE_VERIFY_16
            );
            let exclusive = matches!(opcode, op::ORWRITE_16 | op::WRITE_ATOMIC_16);
            let needed = (b.blocks as u64 * d.block_size as u64).min(u32::MAX as u64) as u32;
            if d.settings.readonly {
                return Ok(lun.check(&Sense::write_protected()).with_data_out(needed));
            }
            let (off, len) = match range(d, &b, len_byte(opcode)) {
                Ok(r) => r,
                Err(s) => return Ok(lun.check(&s).with_data_out(needed)),
            };
            if len == 0 {
                return Ok(ScsiOutcome::good(Bytes::new()).with_data_out(0));
            }
            // When the initiator sends less than the CDB transfers (its Expected Data
            // Transfer Length is short), only the whole blocks it did send are written and
            // the shortfall is reported as a residual overflow (RFC 7143 §11.4.5.1), never
            // padded with invented data.
            let bs = d.block_size as u64;
            let len = len.min(req.data_out.len() as u64 / bs * bs);
            if len == 0 {
                return Ok(ScsiOutcome::good(Bytes::new()).with_data_out(needed));
            }
            // write-cache off, FUA, or WRITE AND VERIFY: durable before status.
            let dsync = !d.wce.load(Ordering::Relaxed) || b.fua || verify;
            if (dsync || exclusive) && nowait {
                return Err(WouldBlock);
            }
            if exclusive {
                // Read-modify-write (ORWRITE, SBC-3 §5.9) or all-at-once (WRITE ATOMIC,
                // SBC-4 §5.48): no other command of this LUN sees or interleaves with it.
                let _range = d.ranges.exclusive(off, len);
                let mut data = req.data_out[..len as usize].to_vec();
                if opcode == op::ORWRITE_16 {
                    match d.backing.read(off, len as usize, false) {
                        Ok(old) => data.iter_mut().zip(old.iter()).for_each(|(n, o)| *n |= o),
                        Err(e) => {
                            return io_err(lun, "orwrite read", e, Sense::read_error())
                                .map(|o| o.with_data_out(needed))
                        }
                    }
                }
                return match d.backing.write(off, &data, false, dsync) {
                    Ok(()) => Ok(ScsiOutcome::good(Bytes::new()).with_data_out(needed)),
                    Err(e) => io_err(lun, "write", e, Sense::write_error())
                        .map(|o| o.with_data_out(needed)),
                };
            }
            let _range = d.ranges.shared(off, len);
            match d
                .backing
                .write(off, &req.data_out[..len as usize], nowait, dsync)
            {
                Ok(()) => Ok(ScsiOutcome::good(Bytes::new()).with_data_out(needed)),
                Err(e) => {
                    io_err(lun, "write", e, Sense::write_error()).map(|o| o.with_data_out(needed))
                }
            }
        }
        op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
            let Some(b) = cdb::block(c) else {
                return Ok(lun.check(&Sense::illegal_request_invalid_opcode()));
            };
            let bs = d.block_size as u64;
            let needed = match b.bytchk {
                0 => 0,
                1 => (b.blocks as u64 * bs).min(u32::MAX as u64) as u32,
                3 => bs as u32,
                _ => return Ok(lun.check(&Sense::invalid_cdb_field(1, Some(2)))),
            };
            let (off, len) = match range(d, &b, len_byte(opcode)) {
                Ok(r) => r,
                Err(s) => return Ok(lun.check(&s).with_data_out(needed)),
            };
            if b.bytchk == 0 || len == 0 {
                return Ok(ScsiOutcome::good(Bytes::new()).with_data_out(needed));
            }
            if (req.data_out.len() as u64) < needed as u64 {
                return Ok(lun
                    .check(&Sense::invalid_cdb_field(len_byte(opcode), None))
                    .with_data_out(needed));
            }
            let medium = match d.backing.read(off, len as usize, nowait) {
                Ok(m) => m,
                Err(e) => {
                    return io_err(lun, "verify read", e, Sense::read_error())
                        .map(|o| o.with_data_out(needed))
                }
            };
            let expect: Box<dyn Fn(usize) -> u8> = if b.bytchk == 1 {
                Box::new(|i| req.data_out[i])
            } else {
                Box::new(|i| req.data_out[i % bs as usize])
            };
            match (0..medium.len()).find(|&i| medium[i] != expect(i)) {
                None => Ok(ScsiOutcome::good(Bytes::new()).with_data_out(needed)),
                Some(i) => Ok(lun
                    .check(&Sense::miscompare(i as u64))
                    .with_data_out(needed)),
            }
        }
        op::READ_DEFECT_DATA_10 | op::READ_DEFECT_DATA_12 => Ok(read_defect_data(c)),
        op::PRE_FETCH_10 | op::PRE_FETCH_16 => {
            let Some(b) = cdb::block(c) else {
                return Ok(lun.check(&Sense::illegal_request_invalid_opcode()));
            };
            let bs = d.block_size as u64;
            let capacity = d.backing.size() / bs;
            if b.lba > capacity
                || b.lba
                    .checked_add(b.blocks as u64)
                    .is_none_or(|e| e > capacity)
            {
                return Ok(lun.check(&Sense::lba_out_of_range()));
            }
            let n = if b.blocks == 0 {
                capacity - b.lba
            } else {
                b.blocks as u64
            };
            d.backing.prefetch(b.lba * bs, n * bs);
            Ok(ScsiOutcome::good(Bytes::new()))
        }
        op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => {
            let Some(b) = cdb::block(c) else {
                return Ok(lun.check(&Sense::illegal_request_invalid_opcode()));
            };
            let capacity = d.backing.size() / d.block_size as u64;
            if b.lba > capacity
                || b.lba
                    .checked_add(b.blocks as u64)
                    .is_none_or(|e| e > capacity)
            {
                return Ok(lun.check(&Sense::lba_out_of_range()));
            }
            if nowait {
                return Err(WouldBlock);
            }
            match d.backing.sync() {
                Ok(()) => Ok(ScsiOutcome::good(Bytes::new())),
                Err(e) => io_err(lun, "fdatasync", IoError::Io(e), Sense::write_error()),
            }
        }
        _ => Ok(lun.check(&Sense::illegal_request_invalid_opcode())),
    }
}

/// READ DEFECT DATA (SBC-3 §5.11, §5.12): a file has no grown or primary defects, so the
/// lists requested are valid and empty.
fn read_defect_data(c: &[u8]) -> ScsiOutcome {
    let mut v = if c[0] == op::READ_DEFECT_DATA_10 {
        let alloc = hydra_proto::scsi::cdb::be16(c, 7) as usize;
        let mut v = vec![0, c[2] & 0x1f, 0, 0];
        v.truncate(alloc);
        v
    } else {
        let alloc = be32(c, 6) as usize;
        let mut v = vec![0, c[1] & 0x1f, 0, 0, 0, 0, 0, 0];
        v.truncate(alloc);
        v
    };
    v.shrink_to_fit();
    ScsiOutcome::good(v)
}

fn read_capacity_10(lun: &Lun, d: &Disk, c: &[u8]) -> ScsiOutcome {
    // SBC-3 §5.15: with PMI clear, the LOGICAL BLOCK ADDRESS field must be zero.
    if c[8] & 1 == 0 && be32(c, 2) != 0 {
        return lun.check(&Sense::invalid_cdb_field(2, None));
    }
    let blocks = d.backing.size() / d.block_size as u64;
    let last = blocks.saturating_sub(1).min(u32::MAX as u64) as u32;
    let mut v = last.to_be_bytes().to_vec();
    v.extend_from_slice(&d.block_size.to_be_bytes());
    ScsiOutcome::good(v)
}

fn read_capacity_16(d: &Disk, c: &[u8]) -> ScsiOutcome {
    let alloc = be32(c, 10) as usize;
    let blocks = d.backing.size() / d.block_size as u64;
    let thin = d.settings.thin_provisioning;
    let mut v = Capacity16 {
        last_lba: blocks.saturating_sub(1),
        block_size: d.block_size,
        lbpme: thin,
        lbprz: thin,
    }
    .emit();
    v.truncate(alloc);
    ScsiOutcome::good(v)
}

fn start_stop(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let power_condition = c[4] >> 4;
    let loej = c[4] & 0x02 != 0;
    let start = c[4] & 0x01 != 0;
    if power_condition != 0 {
        // SBC-3 §5.25: a power condition takes precedence over START and LOEJ; hydra has
        // no power states to enter, so the request is accepted as a no-op.
        return ScsiOutcome {
            status: status::GOOD,
            ..ScsiOutcome::good(Bytes::new())
        };
    }
    if loej && !d.settings.removable && !start {
        // No medium to eject from a fixed disk: stopping is all that happens.
        let _ = lun;
    }
    d.stopped.store(!start, Ordering::Relaxed);
    ScsiOutcome::good(Bytes::new())
}
