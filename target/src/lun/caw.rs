//! COMPARE AND WRITE (SBC-3 §5.2): compare the blocks with the first half of the
//! Data-Out buffer and, only if every byte matches, write the second half — atomically
//! against every other command on those blocks (the LUN's range lock taken exclusive),
//! whichever session or portal they come from. This is VMware's ATS and what cluster
//! lock managers on shared disks use as a test-and-set.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hydra_proto::scsi::cdb::be32;
use hydra_proto::scsi::Sense;

use super::{Disk, Lun, ScsiOutcome, ScsiRequest};
use crate::backing::IoError;

/// VPD 0xB0 MAXIMUM COMPARE AND WRITE LENGTH, in blocks.
pub const MAX_BLOCKS: u8 = 255;

/// Always runs on the blocking pool (the caller checks): it reads and may write under
/// an exclusive range lock, which must never be held by a network task.
pub(super) fn compare_and_write(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let lba = u64::from(be32(c, 2)) << 32 | u64::from(be32(c, 6));
    let n = c[13] as u64;
    let fua = c[1] & 0x08 != 0;
    let bs = d.block_size as u64;
    let needed = (2 * n * bs) as u32;
    let done = |o: ScsiOutcome| o.with_data_out(needed);
    // §5.2: zero blocks is not an error and touches nothing — unless the initiator sent
    // data with it, which means its block count did not fit the one-byte field (e.g.
    // 256): refused as libiscsi expects, rather than silently doing nothing.
    if n == 0 {
        return done(if req.data_out.is_empty() {
            ScsiOutcome::good(Bytes::new())
        } else {
            lun.check(&Sense::invalid_cdb_field(13, None))
        });
    }
    if n > MAX_BLOCKS as u64 {
        return done(lun.check(&Sense::invalid_cdb_field(13, None)));
    }
    if d.settings.readonly {
        return done(lun.check(&Sense::write_protected()));
    }
    let capacity = d.backing.size() / bs;
    if lba.checked_add(n).is_none_or(|e| e > capacity) {
        return done(lun.check(&Sense::lba_out_of_range()));
    }
    // The Data-Out buffer is exactly the verify and the write data; anything else is a
    // mismatch between the CDB and what the initiator sent.
    if req.data_out.len() as u64 != 2 * n * bs {
        return done(lun.check(&Sense::invalid_cdb_field(13, None)));
    }
    let (verify, write) = req.data_out.split_at((n * bs) as usize);
    let (off, len) = (lba * bs, n * bs);
    let _range = d.ranges.exclusive(off, len);
    let medium = match d.backing.read(off, len as usize, false) {
        Ok(m) => m,
        Err(e) => {
            return done(failed(
                lun,
                "compare and write: read",
                e,
                Sense::read_error(),
            ))
        }
    };
    if let Some(i) = medium.iter().zip(verify).position(|(m, v)| m != v) {
        // MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset of the first
        // differing byte (§5.2); nothing is written.
        return done(lun.check(&Sense::miscompare(i as u64)));
    }
    let dsync = fua || !d.wce.load(Ordering::Relaxed);
    match d.backing.write(off, write, false, dsync) {
        Ok(()) => done(ScsiOutcome::good(Bytes::new())),
        Err(e) => done(failed(
            lun,
            "compare and write: write",
            e,
            Sense::write_error(),
        )),
    }
}

fn failed(lun: &Lun, what: &str, e: IoError, sense: Sense) -> ScsiOutcome {
    tracing::error!(
        "LUN {} ({}): {what} failed: {e:?}",
        lun.number,
        lun.identity.scsi_id
    );
    lun.check(&sense)
}
