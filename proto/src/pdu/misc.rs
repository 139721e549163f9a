//! The rarer PDUs: Logout Request/Response (RFC 7143 §11.14, §11.15), SNACK (§11.16),
//! Reject (§11.17) and Asynchronous Message (§11.9).

use super::{Repr, RESERVED_TAG};
use crate::bhs::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// Logout Request header. `reason`: 0 close the session, 1 close the connection, 2 remove
/// the connection for recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Repr for LogoutRequest {
    const OPCODE: Opcode = Opcode::LogoutRequest;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(LogoutRequest {
            immediate: b[0] & 0x40 != 0,
            reason: b[1] & 0x7f,
            itt: get_u32(b, 16),
            cid: get_u16(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80 | (self.reason & 0x7f);
        put_u32(b, 16, self.itt);
        put_u16(b, 20, self.cid);
        put_u32(b, 24, self.cmd_sn);
        put_u32(b, 28, self.exp_stat_sn);
    }
    fn immediate(&self) -> bool {
        self.immediate
    }
}

/// Logout Response header. `response`: 0 closed successfully, 1 CID not found, 2
/// recovery not supported, 3 cleanup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl Repr for LogoutResponse {
    const OPCODE: Opcode = Opcode::LogoutResponse;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(LogoutResponse {
            response: b[2],
            itt: get_u32(b, 16),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            time2wait: get_u16(b, 40),
            time2retain: get_u16(b, 42),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        b[2] = self.response;
        put_u32(b, 16, self.itt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        put_u16(b, 40, self.time2wait);
        put_u16(b, 42, self.time2retain);
    }
}

/// SNACK Request header. Recognised so that it can be refused precisely: hydra runs at
/// ErrorRecoveryLevel 0, where SNACK is not used (RFC 7143 §11.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snack {
    pub snack_type: u8,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

impl Repr for Snack {
    const OPCODE: Opcode = Opcode::Snack;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(Snack {
            snack_type: b[1] & 0x0f,
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            ttt: get_u32(b, 20),
            exp_stat_sn: get_u32(b, 28),
            beg_run: get_u32(b, 40),
            run_length: get_u32(b, 44),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80 | (self.snack_type & 0x0f);
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.ttt);
        put_u32(b, 28, self.exp_stat_sn);
        put_u32(b, 40, self.beg_run);
        put_u32(b, 44, self.run_length);
    }
}

/// Reject reasons (§11.17.1).
pub struct RejectReason;
impl RejectReason {
    pub const DATA_DIGEST_ERROR: u8 = 0x02;
    pub const SNACK_REJECT: u8 = 0x03;
    pub const PROTOCOL_ERROR: u8 = 0x04;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    pub const IMMEDIATE_COMMAND_REJECT: u8 = 0x06;
    pub const TASK_IN_PROGRESS: u8 = 0x07;
    pub const INVALID_DATA_ACK: u8 = 0x08;
    pub const INVALID_PDU_FIELD: u8 = 0x09;
    pub const OUT_OF_RESOURCES: u8 = 0x0a;
    pub const WAITING_FOR_LOGOUT: u8 = 0x0c;
}

/// Reject header; the data segment is the rejected PDU's header (§11.17.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: u8,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
}

impl Repr for Reject {
    const OPCODE: Opcode = Opcode::Reject;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(Reject {
            reason: b[2],
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            data_sn: get_u32(b, 36),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        b[2] = self.reason;
        put_u32(b, 16, RESERVED_TAG);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        put_u32(b, 36, self.data_sn);
    }
}

/// Asynchronous Message header (§11.9). `event`: 0 SCSI async event (sense in data),
/// 1 logout request, 2 connection drop, 3 session drop, 4 negotiation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: u64,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub event: u8,
    pub vcode: u8,
    pub param1: u16,
    pub param2: u16,
    pub param3: u16,
}

impl Repr for AsyncMessage {
    const OPCODE: Opcode = Opcode::AsyncMessage;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(AsyncMessage {
            lun: get_u64(b, 8),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
            event: b[36],
            vcode: b[37],
            param1: get_u16(b, 38),
            param2: get_u16(b, 40),
            param3: get_u16(b, 42),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        put_u64(b, 8, self.lun);
        put_u32(b, 16, RESERVED_TAG);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
        b[36] = self.event;
        b[37] = self.vcode;
        put_u16(b, 38, self.param1);
        put_u16(b, 40, self.param2);
        put_u16(b, 42, self.param3);
    }
}
