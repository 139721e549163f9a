//! One SCSI task's write data: immediate data, unsolicited Data-Out and the R2Ts that
//! solicit the rest (RFC 7143 §4.2.3 "Data Transfer Overview", §11.7, §11.8). Sans-IO:
//! it says which R2Ts to send and when the data is complete; the session sends them.

use bytes::{Bytes, BytesMut};

/// Negotiated limits that shape the R2T sequence.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub initial_r2t: bool,
    pub first_burst_length: u32,
    pub max_burst_length: u32,
    pub max_outstanding_r2t: u16,
}

/// An R2T to send: transfer tag, offset, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct R2tReq {
    pub ttt: u32,
    pub r2t_sn: u32,
    pub offset: u32,
    pub len: u32,
}

/// Why a Data-Out was refused (the session answers with a Reject, reason Protocol Error
/// or Invalid PDU Field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error(
        "Data-Out at offset {offset} + {len} bytes exceeds the expected transfer length {edtl}"
    )]
    PastEnd { offset: u32, len: u32, edtl: u32 },
    #[error("unsolicited Data-Out not allowed (InitialR2T=Yes, or past FirstBurstLength)")]
    Unsolicited,
    #[error("Data-Out with unknown target transfer tag 0x{0:08x}")]
    UnknownTtt(u32),
    #[error("Data-Out at offset {offset} + {len} bytes is outside R2T [{start}, {end})")]
    OutsideR2t {
        offset: u32,
        len: u32,
        start: u32,
        end: u32,
    },
    /// RFC 7143 §11.7.5: DataSN counts from 0 within each R2T's sequence (and within the
    /// unsolicited burst); at ErrorRecoveryLevel 0 a gap cannot be recovered.
    #[error("Data-Out DataSN {got}, expected {expected}")]
    DataSn { expected: u32, got: u32 },
}

struct Outstanding {
    ttt: u32,
    start: u32,
    end: u32,
    received: u32,
    next_data_sn: u32,
}

/// Collects the Data-Out of one write command.
pub struct WriteData {
    edtl: u32,
    buf: BytesMut,
    /// Bytes received so far (duplicates not counted twice only if in order; ERL0 has no
    /// retransmission, so overlap is a protocol error caught by the R2T ranges).
    received: u32,
    /// End of the unsolicited region (immediate + unsolicited Data-Out).
    unsolicited_end: u32,
    /// Next offset not yet solicited.
    next_solicit: u32,
    outstanding: Vec<Outstanding>,
    r2t_sn: u32,
    /// DataSN expected next in the unsolicited sequence.
    unsolicited_sn: u32,
    limits: Limits,
}

impl WriteData {
    /// Start with the command's immediate data.
    pub fn new(edtl: u32, immediate: &[u8], limits: Limits) -> Result<WriteData, DataError> {
        let first_burst = limits.first_burst_length.min(edtl);
        let unsolicited_end = if limits.initial_r2t {
            immediate.len() as u32
        } else {
            first_burst
        };
        if immediate.len() as u32 > first_burst {
            return Err(DataError::PastEnd {
                offset: 0,
                len: immediate.len() as u32,
                edtl: first_burst,
            });
        }
        let mut buf = BytesMut::zeroed(edtl as usize);
        buf[..immediate.len()].copy_from_slice(immediate);
        Ok(WriteData {
            edtl,
            buf,
            received: immediate.len() as u32,
            unsolicited_end: unsolicited_end.max(immediate.len() as u32),
            next_solicit: unsolicited_end.max(immediate.len() as u32),
            outstanding: Vec::new(),
            r2t_sn: 0,
            unsolicited_sn: 0,
            limits,
        })
    }

    /// All data is here.
    pub fn complete(&self) -> bool {
        self.received >= self.edtl
    }

    /// R2Ts to send now, keeping at most MaxOutstandingR2T in flight. `next_ttt` hands out
    /// transfer tags.
    pub fn r2ts(&mut self, mut next_ttt: impl FnMut() -> u32) -> Vec<R2tReq> {
        let mut out = Vec::new();
        while self.next_solicit < self.edtl
            && self.outstanding.len() < self.limits.max_outstanding_r2t as usize
        {
            let len = (self.edtl - self.next_solicit).min(self.limits.max_burst_length);
            let ttt = next_ttt();
            let r = R2tReq {
                ttt,
                r2t_sn: self.r2t_sn,
                offset: self.next_solicit,
                len,
            };
            self.r2t_sn += 1;
            self.outstanding.push(Outstanding {
                ttt,
                start: r.offset,
                end: r.offset + len,
                received: 0,
                next_data_sn: 0,
            });
            self.next_solicit += len;
            out.push(r);
        }
        out
    }

    /// Accept one Data-Out PDU.
    pub fn data_out(
        &mut self,
        ttt: u32,
        offset: u32,
        data_sn: u32,
        data: &[u8],
    ) -> Result<(), DataError> {
        let len = data.len() as u32;
        let end = offset.checked_add(len).filter(|e| *e <= self.edtl);
        let Some(end) = end else {
            return Err(DataError::PastEnd {
                offset,
                len,
                edtl: self.edtl,
            });
        };
        if ttt == hydra_proto::pdu::RESERVED_TAG {
            if end > self.unsolicited_end {
                return Err(DataError::Unsolicited);
            }
            if data_sn != self.unsolicited_sn {
                return Err(DataError::DataSn {
                    expected: self.unsolicited_sn,
                    got: data_sn,
                });
            }
            self.unsolicited_sn += 1;
        } else {
            let Some(i) = self.outstanding.iter().position(|o| o.ttt == ttt) else {
                return Err(DataError::UnknownTtt(ttt));
            };
            let o = &mut self.outstanding[i];
            if offset < o.start || end > o.end {
                return Err(DataError::OutsideR2t {
                    offset,
                    len,
                    start: o.start,
                    end: o.end,
                });
            }
            if data_sn != o.next_data_sn {
                return Err(DataError::DataSn {
                    expected: o.next_data_sn,
                    got: data_sn,
                });
            }
            o.next_data_sn += 1;
            o.received += len;
            if o.received >= o.end - o.start {
                self.outstanding.swap_remove(i);
            }
        }
        self.buf[offset as usize..end as usize].copy_from_slice(data);
        self.received += len;
        Ok(())
    }

    /// The collected data (call when complete).
    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(initial_r2t: bool) -> Limits {
        Limits {
            initial_r2t,
            first_burst_length: 8,
            max_burst_length: 16,
            max_outstanding_r2t: 2,
        }
    }

    #[test]
    fn r2t_sequence_covers_everything_once() {
        let mut w = WriteData::new(40, &[1, 2, 3, 4], limits(true)).unwrap();
        let mut t = 100;
        let r = w.r2ts(|| {
            t += 1;
            t
        });
        assert_eq!(
            r.iter().map(|r| (r.offset, r.len)).collect::<Vec<_>>(),
            vec![(4, 16), (20, 16)]
        );
        w.data_out(101, 4, 0, &[9; 16]).unwrap();
        let r2 = w.r2ts(|| 200);
        assert_eq!((r2[0].offset, r2[0].len, r2[0].r2t_sn), (36, 4, 2));
        w.data_out(102, 20, 0, &[8; 16]).unwrap();
        assert!(!w.complete());
        w.data_out(200, 36, 0, &[7; 4]).unwrap();
        assert!(w.complete());
        let b = w.into_bytes();
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        assert_eq!(b[4], 9);
        assert_eq!(b[39], 7);
    }

    #[test]
    fn unsolicited_only_within_first_burst() {
        let mut w = WriteData::new(40, &[], limits(false)).unwrap();
        w.data_out(u32::MAX, 0, 0, &[1; 8]).unwrap();
        assert_eq!(
            w.data_out(u32::MAX, 8, 1, &[1; 4]),
            Err(DataError::Unsolicited)
        );
        let r = w.r2ts(|| 5);
        assert_eq!(r[0].offset, 8);
        let mut w = WriteData::new(40, &[], limits(true)).unwrap();
        assert_eq!(
            w.data_out(u32::MAX, 0, 0, &[1; 4]),
            Err(DataError::Unsolicited)
        );
    }

    #[test]
    fn out_of_range_refused_and_nothing_written() {
        let mut w = WriteData::new(8, &[], limits(true)).unwrap();
        let r = w.r2ts(|| 7);
        assert!(matches!(
            w.data_out(7, 6, 0, &[1; 4]),
            Err(DataError::PastEnd { .. })
        ));
        assert!(matches!(
            w.data_out(7, u32::MAX, 0, &[1; 4]),
            Err(DataError::PastEnd { .. })
        ));
        assert!(matches!(
            w.data_out(8, 0, 0, &[1; 4]),
            Err(DataError::UnknownTtt(8))
        ));
        assert_eq!(r.len(), 1);
        assert!(!w.complete());
    }

    #[test]
    fn data_sn_must_count_from_zero_per_sequence() {
        let mut w = WriteData::new(16, &[], limits(true)).unwrap();
        w.r2ts(|| 3);
        assert_eq!(
            w.data_out(3, 0, 1, &[1; 8]),
            Err(DataError::DataSn {
                expected: 0,
                got: 1
            })
        );
        w.data_out(3, 0, 0, &[1; 8]).unwrap();
        assert_eq!(
            w.data_out(3, 8, 0, &[1; 8]),
            Err(DataError::DataSn {
                expected: 1,
                got: 0
            })
        );
        w.data_out(3, 8, 1, &[1; 8]).unwrap();
        assert!(w.complete());
    }
}
