//! One dispatch of a block I/O on one path: the SBC-3 commands it takes, how their
//! answers classify for the map (Linux's rules, [`hydra_initiator::path::classify`]),
//! and the [`DeviceError`] a final failure gives the caller.
//!
//! Commands: READ(16) and WRITE(16) (FUA bit, SBC-3 §5.11 / §5.40), SYNCHRONIZE
//! CACHE(16) (§5.23), UNMAP (§5.28), WRITE SAME(16) of one zero block with the UNMAP
//! bit for `may_unmap` (§5.50). A request larger than the LUN's Block Limits is split;
//! the parts go one after another on the same path, and the first that does not end
//! GOOD decides the whole request's outcome — a request re-sent after a path error is
//! sent whole again, which is harmless for these idempotent commands.

use bytes::{Bytes, BytesMut};
use hydra_initiator::session::{Command, Reply};
use hydra_initiator::{Session, Verdict};
use hydra_proto::scsi::cdb::{self, BlockCdb};
use hydra_proto::scsi::sense::key;
use hydra_proto::scsi::{status, unmap, Opcode};

use super::geometry::Geometry;
use crate::export::DeviceError;
use crate::map::Outcome;

/// WRITE SAME(16) byte 1 bit 3: UNMAP, the target may deallocate the range (SBC-3
/// §5.50). The same bit as READ/WRITE's FUA, so it is set on the emitted CDB.
const WRITE_SAME_UNMAP: u8 = 0x08;

/// Zero-filled WRITEs stand in for WRITE SAME on a LUN without it, this many bytes a
/// command.
const ZERO_WRITE_BYTES: u32 = 1 << 20;

/// A block I/O from the map's device, in bytes (offsets and lengths whole blocks).
#[derive(Debug, Clone)]
pub(crate) enum IoOp {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        data: Bytes,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        may_unmap: bool,
    },
}

impl IoOp {
    /// What the selectors weigh it by (service-time's in-flight bytes): the data moved.
    pub fn bytes(&self) -> u64 {
        match self {
            IoOp::Read { len, .. } => u64::from(*len),
            IoOp::Write { data, .. } => data.len() as u64,
            IoOp::Flush | IoOp::Trim { .. } | IoOp::WriteZeroes { .. } => 0,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            IoOp::Read { .. } => "READ(16)",
            IoOp::Write { .. } => "WRITE(16)",
            IoOp::Flush => "SYNCHRONIZE CACHE(16)",
            IoOp::Trim { .. } => "UNMAP",
            IoOp::WriteZeroes { .. } => "WRITE SAME(16)",
        }
    }
}

/// What the caller gets if this dispatch is the last: the data of a read, or nothing.
pub(crate) type Answer = Result<Option<Bytes>, DeviceError>;

/// How one command ended, for the map and for the caller.
struct Ended {
    outcome: Outcome,
    answer: Answer,
}

/// A command's end that stops the request (anything but GOOD).
fn ended(what: &str, r: Result<Reply, hydra_initiator::Error>) -> Result<Reply, Ended> {
    let reply = match r {
        Ok(r) => r,
        Err(e) => {
            let answer = Err(DeviceError::Io(format!("{what}: {e}")));
            return Err(Ended {
                outcome: Outcome::from_error(&e),
                answer,
            });
        }
    };
    match reply.verdict() {
        Verdict::Good => Ok(reply),
        Verdict::Retry => Err(Ended {
            outcome: Outcome::Retry,
            answer: Err(DeviceError::Io(format!(
                "{what}: {} (retries exhausted)",
                describe(&reply)
            ))),
        }),
        Verdict::Path => Err(Ended {
            outcome: Outcome::PathError {
                why: format!("{what}: {}", describe(&reply)),
            },
            answer: Err(DeviceError::Io(format!("{what}: {}", describe(&reply)))),
        }),
        Verdict::Target => Err(Ended {
            outcome: Outcome::Final,
            answer: Err(device_error(what, &reply)),
        }),
    }
}

/// "status 0x02, sense 05/24/00".
fn describe(r: &Reply) -> String {
    match r.sense_key() {
        Some((k, asc, ascq)) => {
            format!(
                "status {:#04x}, sense {k:02x}/{asc:02x}/{ascq:02x}",
                r.status
            )
        }
        None => format!("status {:#04x}", r.status),
    }
}

/// The caller's error for a final (not path) SCSI failure, as Linux's `blk_status_t`
/// classes map to errno: RESERVATION CONFLICT → EBADE/EPERM, space exhausted → ENOSPC,
/// write protected → EROFS, ILLEGAL REQUEST → EINVAL / EOPNOTSUPP, the rest (medium,
/// hardware) → EIO.
pub(crate) fn device_error(what: &str, r: &Reply) -> DeviceError {
    if r.status == status::RESERVATION_CONFLICT {
        return DeviceError::ReservationConflict;
    }
    match r.sense_key() {
        // SPACE ALLOCATION FAILED WRITE PROTECT (27/07): a thin LUN is full.
        Some((key::DATA_PROTECT, 0x27, 0x07)) => DeviceError::NoSpace,
        Some((key::DATA_PROTECT, 0x27, _)) => DeviceError::ReadOnly,
        // INVALID COMMAND OPERATION CODE.
        Some((key::ILLEGAL_REQUEST, 0x20, _)) => DeviceError::NotSupported("by the LUN"),
        Some((key::ILLEGAL_REQUEST, ..)) => {
            DeviceError::Invalid(format!("{what}: {}", describe(r)))
        }
        _ => DeviceError::Io(format!("{what}: {}", describe(r))),
    }
}

async fn exec(
    s: &Session,
    lun: u64,
    cdb: &[u8],
    data_out: Bytes,
    read_len: u32,
) -> Result<Reply, hydra_initiator::Error> {
    s.execute(Command {
        lun,
        cdb: cdb.to_vec(),
        data_out,
        read_len,
    })
    .await
}

/// Run `op` on `lun` of `session`.
pub(crate) async fn run(session: &Session, lun: u64, op: &IoOp, g: &Geometry) -> (Outcome, Answer) {
    match run_op(session, lun, op, g).await {
        Ok(data) => (Outcome::Final, Ok(data)),
        Err(e) => (e.outcome, e.answer),
    }
}

async fn run_op(s: &Session, lun: u64, op: &IoOp, g: &Geometry) -> Result<Option<Bytes>, Ended> {
    let bs = g.block_size;
    let what = op.name();
    match op {
        IoOp::Read { offset, len } => {
            let (lba, blocks) = (offset / u64::from(bs), len / bs);
            let mut out = BytesMut::with_capacity(*len as usize);
            for (l, n) in chunks(lba, blocks, g.transfer_chunk()) {
                let c = BlockCdb::new(l, n).emit16(Opcode::Read16);
                let r = ended(what, exec(s, lun, &c, Bytes::new(), n * bs).await)?;
                if r.data.len() != (n * bs) as usize {
                    return Err(Ended {
                        outcome: Outcome::Final,
                        answer: Err(DeviceError::Io(format!(
                            "{what}: {} bytes came for {} asked",
                            r.data.len(),
                            n * bs
                        ))),
                    });
                }
                out.extend_from_slice(&r.data);
            }
            Ok(Some(out.freeze()))
        }
        IoOp::Write { offset, data, fua } => {
            write(s, lun, offset / u64::from(bs), data.clone(), *fua, g, what).await?;
            Ok(None)
        }
        IoOp::Flush => {
            let c = BlockCdb::new(0, 0).emit16(Opcode::SynchronizeCache16);
            ended(what, exec(s, lun, &c, Bytes::new(), 0).await)?;
            Ok(None)
        }
        IoOp::Trim { offset, len } => {
            // A LUN that cannot deallocate: trim is advice, nothing to do.
            if !g.unmap {
                return Ok(None);
            }
            for (l, n) in chunks(offset / u64::from(bs), len / bs, g.unmap_chunk()) {
                let p = unmap::parameter_list(&[(l, n)]);
                let c = cdb::unmap(p.len() as u16);
                ended(what, exec(s, lun, &c, p.into(), 0).await)?;
            }
            Ok(None)
        }
        IoOp::WriteZeroes {
            offset,
            len,
            may_unmap,
        } => {
            let lba = offset / u64::from(bs);
            let zero = Bytes::from(vec![0u8; bs as usize]);
            for (l, n) in chunks(lba, len / bs, g.write_same_chunk()) {
                let mut c = BlockCdb::new(l, n).emit16(Opcode::WriteSame16);
                if *may_unmap && g.unmap {
                    c[1] |= WRITE_SAME_UNMAP;
                }
                match ended(what, exec(s, lun, &c, zero.clone(), 0).await) {
                    Ok(_) => {}
                    // No WRITE SAME(16) (INVALID COMMAND OPERATION CODE, or INVALID
                    // FIELD for the UNMAP bit): write the zeros.
                    Err(Ended {
                        answer: Err(DeviceError::NotSupported(_) | DeviceError::Invalid(_)),
                        ..
                    }) => {
                        let off = (l - lba) * u64::from(bs);
                        let rest = (u64::from(*len) - off) as u32;
                        zero_writes(s, lun, l, rest, g).await?;
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        }
    }
}

async fn write(
    s: &Session,
    lun: u64,
    lba: u64,
    data: Bytes,
    fua: bool,
    g: &Geometry,
    what: &str,
) -> Result<(), Ended> {
    let bs = g.block_size;
    let blocks = (data.len() / bs as usize) as u32;
    for (l, n) in chunks(lba, blocks, g.transfer_chunk()) {
        let from = ((l - lba) * u64::from(bs)) as usize;
        let part = data.slice(from..from + (n * bs) as usize);
        let c = BlockCdb {
            fua,
            ..BlockCdb::new(l, n)
        }
        .emit16(Opcode::Write16);
        ended(what, exec(s, lun, &c, part, 0).await)?;
    }
    Ok(())
}

/// `len` bytes of zeros at `lba` with WRITE(16).
async fn zero_writes(s: &Session, lun: u64, lba: u64, len: u32, g: &Geometry) -> Result<(), Ended> {
    let bs = g.block_size;
    let step = ZERO_WRITE_BYTES.max(bs) / bs * bs;
    let zeros = Bytes::from(vec![0u8; step.min(len) as usize]);
    let mut done = 0u32;
    while done < len {
        let n = step.min(len - done);
        let at = lba + u64::from(done / bs);
        write(
            s,
            lun,
            at,
            zeros.slice(..n as usize),
            false,
            g,
            "WRITE(16) of zeros",
        )
        .await?;
        done += n;
    }
    Ok(())
}

/// `(lba, blocks)` pieces of at most `max` blocks covering `blocks` blocks at `lba`.
fn chunks(lba: u64, blocks: u32, max: u32) -> impl Iterator<Item = (u64, u32)> {
    let max = max.max(1);
    (0..blocks.div_ceil(max)).map(move |i| {
        let done = i * max;
        (lba + u64::from(done), max.min(blocks - done))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range() {
        let v: Vec<_> = chunks(10, 7, 3).collect();
        assert_eq!(v, vec![(10, 3), (13, 3), (16, 1)]);
        assert_eq!(chunks(0, 0, 3).count(), 0);
        assert_eq!(chunks(5, 4, u32::MAX).collect::<Vec<_>>(), vec![(5, 4)]);
    }

    #[test]
    fn final_errors_map_to_device_errors() {
        let reply = |status, sense: &[u8]| Reply {
            status,
            sense: sense.to_vec(),
            ..Reply::default()
        };
        // Fixed-format sense: key at 2, ASC at 12, ASCQ at 13.
        let sense = |k: u8, asc: u8, ascq: u8| {
            let mut s = vec![0u8; 18];
            s[0] = 0x70;
            s[2] = k;
            s[7] = 10;
            s[12] = asc;
            s[13] = ascq;
            s
        };
        let rc = reply(status::RESERVATION_CONFLICT, &[]);
        assert_eq!(device_error("w", &rc), DeviceError::ReservationConflict);
        let cc = status::CHECK_CONDITION;
        assert_eq!(
            device_error("w", &reply(cc, &sense(7, 0x27, 7))),
            DeviceError::NoSpace
        );
        assert_eq!(
            device_error("w", &reply(cc, &sense(7, 0x27, 0))),
            DeviceError::ReadOnly
        );
        assert!(matches!(
            device_error("w", &reply(cc, &sense(5, 0x21, 0))),
            DeviceError::Invalid(_)
        ));
        assert!(matches!(
            device_error("r", &reply(cc, &sense(3, 0x11, 0))),
            DeviceError::Io(_)
        ));
    }
}
