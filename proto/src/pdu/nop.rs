//! NOP-Out (RFC 7143 §11.18) and NOP-In (§11.19): pings in both directions.

use super::Repr;
use crate::bhs::{get_u32, get_u64, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// NOP-Out: an initiator ping (ITT set, TTT reserved) or the answer to a target ping
/// (ITT reserved, TTT echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Repr for NopOut {
    const OPCODE: Opcode = Opcode::NopOut;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(NopOut {
            immediate: b[0] & 0x40 != 0,
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 24, self.cmd_sn);
        put_u32(b, 28, self.exp_stat_sn);
    }
    fn immediate(&self) -> bool {
        self.immediate
    }
}

/// NOP-In: the answer to an initiator ping (ITT echoed) or a target ping (ITT reserved,
/// TTT set, the initiator must answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Repr for NopIn {
    const OPCODE: Opcode = Opcode::NopIn;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(NopIn {
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
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
    }
}
