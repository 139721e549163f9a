//! SCSI Command (RFC 7143 §11.3) and SCSI Response (§11.4).

use super::Repr;
use crate::bhs::{get_u32, get_u64, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// Task attribute (RFC 7143 §11.3.1.5, SAM-5 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAttr {
    Untagged,
    Simple,
    Ordered,
    HeadOfQueue,
    Aca,
    /// Values 5..7 are reserved.
    Reserved(u8),
}

impl TaskAttr {
    fn from_bits(v: u8) -> TaskAttr {
        match v & 7 {
            0 => TaskAttr::Untagged,
            1 => TaskAttr::Simple,
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            r => TaskAttr::Reserved(r),
        }
    }
    fn bits(self) -> u8 {
        match self {
            TaskAttr::Untagged => 0,
            TaskAttr::Simple => 1,
            TaskAttr::Ordered => 2,
            TaskAttr::HeadOfQueue => 3,
            TaskAttr::Aca => 4,
            TaskAttr::Reserved(r) => r & 7,
        }
    }
}

/// SCSI Command request header. A CDB longer than 16 bytes would arrive in an Extended CDB
/// AHS (§11.2.2.3); hydra refuses those before parsing (no SBC command it implements
/// needs one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    pub final_: bool,
    pub read: bool,
    pub write: bool,
    pub attr: TaskAttr,
    pub lun: u64,
    pub itt: u32,
    /// Expected Data Transfer Length.
    pub edtl: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: [u8; 16],
}

impl Repr for ScsiCommand {
    const OPCODE: Opcode = Opcode::ScsiCommand;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&b[32..48]);
        Ok(ScsiCommand {
            immediate: b[0] & 0x40 != 0,
            final_: b[1] & 0x80 != 0,
            read: b[1] & 0x40 != 0,
            write: b[1] & 0x20 != 0,
            attr: TaskAttr::from_bits(b[1]),
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            edtl: get_u32(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
            cdb,
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.final_ as u8) << 7
            | (self.read as u8) << 6
            | (self.write as u8) << 5
            | self.attr.bits();
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.edtl);
        put_u32(b, 24, self.cmd_sn);
        put_u32(b, 28, self.exp_stat_sn);
        b[32..48].copy_from_slice(&self.cdb);
    }
    fn immediate(&self) -> bool {
        self.immediate
    }
}

/// SCSI Response header. The data segment (if any) carries SenseLength + sense data
/// (§11.4.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    /// o: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O: residual overflow.
    pub overflow: bool,
    /// U: residual underflow.
    pub underflow: bool,
    /// 0x00 Command Completed at Target, 0x01 Target Failure.
    pub response: u8,
    /// SAM status (GOOD, CHECK CONDITION...).
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
}

impl Repr for ScsiResponse {
    const OPCODE: Opcode = Opcode::ScsiResponse;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(ScsiResponse {
            bidi_overflow: b[1] & 0x10 != 0,
            bidi_underflow: b[1] & 0x08 != 0,
            overflow: b[1] & 0x04 != 0,
            underflow: b[1] & 0x02 != 0,
            response: b[2],
            status: b[3],
            itt: get_u32(b, 16),
            snack_tag: get_u32(b, 20),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            exp_data_sn: get_u32(b, 36),
            bidi_residual: get_u32(b, 40),
            residual: get_u32(b, 44),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80
            | (self.bidi_overflow as u8) << 4
            | (self.bidi_underflow as u8) << 3
            | (self.overflow as u8) << 2
            | (self.underflow as u8) << 1;
        b[2] = self.response;
        b[3] = self.status;
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.snack_tag);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        put_u32(b, 36, self.exp_data_sn);
        put_u32(b, 40, self.bidi_residual);
        put_u32(b, 44, self.residual);
    }
}
