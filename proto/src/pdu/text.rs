//! Text Request (RFC 7143 §11.10) and Text Response (§11.11). The key=value data segment
//! is handled by [`crate::text`].

use super::Repr;
use crate::bhs::{get_u32, get_u64, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// Text Request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Repr for TextRequest {
    const OPCODE: Opcode = Opcode::TextRequest;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(TextRequest {
            immediate: b[0] & 0x40 != 0,
            final_: b[1] & 0x80 != 0,
            cont: b[1] & 0x40 != 0,
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.final_ as u8) << 7 | (self.cont as u8) << 6;
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

/// Text Response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Repr for TextResponse {
    const OPCODE: Opcode = Opcode::TextResponse;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(TextResponse {
            final_: b[1] & 0x80 != 0,
            cont: b[1] & 0x40 != 0,
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = (self.final_ as u8) << 7 | (self.cont as u8) << 6;
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
    }
}
