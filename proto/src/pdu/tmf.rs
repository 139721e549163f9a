//! Task Management Function Request (RFC 7143 §11.5) and Response (§11.6).

use super::Repr;
use crate::bhs::{get_u32, get_u64, put_u32, put_u64, Opcode, BHS_LEN};
use crate::Result;

/// Task management functions (§11.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmfFunction {
    AbortTask,
    AbortTaskSet,
    ClearAca,
    ClearTaskSet,
    LogicalUnitReset,
    TargetWarmReset,
    TargetColdReset,
    TaskReassign,
    Unknown(u8),
}

impl From<u8> for TmfFunction {
    fn from(v: u8) -> Self {
        match v & 0x7f {
            1 => TmfFunction::AbortTask,
            2 => TmfFunction::AbortTaskSet,
            3 => TmfFunction::ClearAca,
            4 => TmfFunction::ClearTaskSet,
            5 => TmfFunction::LogicalUnitReset,
            6 => TmfFunction::TargetWarmReset,
            7 => TmfFunction::TargetColdReset,
            8 => TmfFunction::TaskReassign,
            o => TmfFunction::Unknown(o),
        }
    }
}

impl From<TmfFunction> for u8 {
    fn from(f: TmfFunction) -> u8 {
        match f {
            TmfFunction::AbortTask => 1,
            TmfFunction::AbortTaskSet => 2,
            TmfFunction::ClearAca => 3,
            TmfFunction::ClearTaskSet => 4,
            TmfFunction::LogicalUnitReset => 5,
            TmfFunction::TargetWarmReset => 6,
            TmfFunction::TargetColdReset => 7,
            TmfFunction::TaskReassign => 8,
            TmfFunction::Unknown(o) => o & 0x7f,
        }
    }
}

/// TMF response codes (§11.6.1).
pub struct TmfResponse;
impl TmfResponse {
    pub const COMPLETE: u8 = 0;
    pub const NO_SUCH_TASK: u8 = 1;
    pub const NO_SUCH_LUN: u8 = 2;
    pub const STILL_ALLEGIANT: u8 = 3;
    pub const REASSIGN_NOT_SUPPORTED: u8 = 4;
    pub const NOT_SUPPORTED: u8 = 5;
    pub const AUTHORIZATION_FAILED: u8 = 6;
    pub const REJECTED: u8 = 255;
}

/// Task Management Function Request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    pub function: TmfFunction,
    pub lun: u64,
    pub itt: u32,
    /// Referenced Task Tag (ABORT TASK, TASK REASSIGN).
    pub rtt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl Repr for TaskMgmtRequest {
    const OPCODE: Opcode = Opcode::TaskMgmtRequest;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(TaskMgmtRequest {
            immediate: b[0] & 0x40 != 0,
            function: TmfFunction::from(b[1]),
            lun: get_u64(b, 8),
            itt: get_u32(b, 16),
            rtt: get_u32(b, 20),
            cmd_sn: get_u32(b, 24),
            exp_stat_sn: get_u32(b, 28),
            ref_cmd_sn: get_u32(b, 32),
            exp_data_sn: get_u32(b, 36),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80 | u8::from(self.function);
        put_u64(b, 8, self.lun);
        put_u32(b, 16, self.itt);
        put_u32(b, 20, self.rtt);
        put_u32(b, 24, self.cmd_sn);
        put_u32(b, 28, self.exp_stat_sn);
        put_u32(b, 32, self.ref_cmd_sn);
        put_u32(b, 36, self.exp_data_sn);
    }
    fn immediate(&self) -> bool {
        self.immediate
    }
}

/// Task Management Function Response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    pub response: u8,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl Repr for TaskMgmtResponse {
    const OPCODE: Opcode = Opcode::TaskMgmtResponse;
    fn parse_fields(b: &[u8]) -> Result<Self> {
        Ok(TaskMgmtResponse {
            response: b[2],
            itt: get_u32(b, 16),
            stat_sn: get_u32(b, 24),
            exp_cmd_sn: get_u32(b, 28),
            max_cmd_sn: get_u32(b, 32),
        })
    }
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]) {
        b[1] = 0x80;
        b[2] = self.response;
        put_u32(b, 16, self.itt);
        put_u32(b, 24, self.stat_sn);
        put_u32(b, 28, self.exp_cmd_sn);
        put_u32(b, 32, self.max_cmd_sn);
    }
}
