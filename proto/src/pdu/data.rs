//! The data movers: SCSI Data-Out (RFC 7143 §11.7), SCSI Data-In (§11.7) and Ready To
//! Transfer (§11.8).

use super::Repr;
use crate::bhs::{get_u32, get_u64, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// SCSI Data-Out header: write data, solicited by an R2T (TTT set) or unsolicited
/// (TTT = 0xffffffff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOut {
    pub final_: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

impl Repr for DataOut {
    const OPCODE: Opcode = Opcode::DataOut;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(DataOut {
            final_: b[1] & 0x80 != 0,
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            exp_stat_sn: get_u32(b, 28),
            data_sn: get_u32(b, 36),
            buffer_offset: get_u32(b, 40),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.final_ as u8) << 7;
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 28, self.exp_stat_sn);
        put_u32(b, 36, self.data_sn);
        put_u32(b, 40, self.buffer_offset);
    }
}

/// SCSI Data-In header. With `status` set (S bit, §11.7.3) the PDU also completes the
/// command ("phase collapse") and carries StatSN, status and residuals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataIn {
    pub final_: bool,
    /// A: the target asks for a DataACK SNACK (ERL > 0 only).
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// Some(status) when the S bit is set.
    pub status: Option<u8>,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

impl Repr for DataIn {
    const OPCODE: Opcode = Opcode::DataIn;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(DataIn {
            final_: b[1] & 0x80 != 0,
            ack: b[1] & 0x40 != 0,
            overflow: b[1] & 0x04 != 0,
            underflow: b[1] & 0x02 != 0,
            status: (b[1] & 0x01 != 0).then_some(b[3]),
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            data_sn: get_u32(b, 36),
            buffer_offset: get_u32(b, 40),
            residual: get_u32(b, 44),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.final_ as u8) << 7
            | (self.ack as u8) << 6
            | (self.overflow as u8) << 2
            | (self.underflow as u8) << 1
            | self.status.is_some() as u8;
        b[3] = self.status.unwrap_or(0);
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        put_u32(b, 36, self.data_sn);
        put_u32(b, 40, self.buffer_offset);
        put_u32(b, 44, self.residual);
    }
}

/// Ready To Transfer: the target asks for `desired_len` bytes at `buffer_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_len: u32,
}

impl Repr for R2t {
    const OPCODE: Opcode = Opcode::R2t;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(R2t {
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            r2t_sn: get_u32(b, 36),
            buffer_offset: get_u32(b, 40),
            desired_len: get_u32(b, 44),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        put_u32(b, 36, self.r2t_sn);
        put_u32(b, 40, self.buffer_offset);
        put_u32(b, 44, self.desired_len);
    }
}
