//! Persistent-reservation requests and answers as plain data, shared by the control
//! protocol ([`crate::control`]) and the mpathpersist printers ([`crate::show::persist`]):
//! SPC-4 §6.15 (PERSISTENT RESERVE IN) and §6.16 (PERSISTENT RESERVE OUT).

use serde::{Deserialize, Serialize};

/// PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1) as mpathpersist names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrInAction {
    /// `-k`, `--read-keys`.
    ReadKeys,
    /// `-r`, `--read-reservation`.
    ReadReservation,
    /// `-c`, `--report-capabilities`.
    ReportCapabilities,
    /// `-s`, `--read-full-status`.
    ReadFullStatus,
}

/// PERSISTENT RESERVE OUT service actions (SPC-4 §6.16.2) mpathpersist sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrOutAction {
    /// `-G`, `--register`: to every path (each I_T nexus), as mpathpersist does.
    Register,
    /// `-I`, `--register-ignore`: to every path.
    RegisterIgnore,
    /// `-R`, `--reserve`.
    Reserve,
    /// `-L`, `--release`.
    Release,
    /// `-C`, `--clear`.
    Clear,
    /// `-P`, `--preempt`.
    Preempt,
    /// `-A`, `--preempt-abort`.
    PreemptAbort,
}

/// One PERSISTENT RESERVE OUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrOut {
    pub map: String,
    pub action: PrOutAction,
    /// `--param-rk`: RESERVATION KEY.
    pub key: u64,
    /// `--param-sark`: SERVICE ACTION RESERVATION KEY.
    pub sa_key: u64,
    /// `--prout-type`: the reservation type (SPC-4 Table 168; 0 when unused).
    pub prout_type: u8,
    /// `--param-aptpl`.
    pub aptpl: bool,
}

/// mpathpersist's exit statuses (`libmpathpersist/mpath_persist.h`, `MPATH_PR_*`).
pub mod pr_status {
    pub const SUCCESS: i32 = 0;
    pub const SYNTAX_ERROR: i32 = 1;
    pub const SENSE_NOT_READY: i32 = 2;
    pub const SENSE_MEDIUM_ERROR: i32 = 3;
    pub const SENSE_HARDWARE_ERROR: i32 = 4;
    pub const ILLEGAL_REQ: i32 = 5;
    pub const SENSE_UNIT_ATTENTION: i32 = 6;
    pub const SENSE_INVALID_OP: i32 = 7;
    pub const SENSE_ABORTED_COMMAND: i32 = 8;
    pub const NO_SENSE: i32 = 9;
    pub const SENSE_MALFORMED: i32 = 10;
    pub const RESERV_CONFLICT: i32 = 11;
    pub const FILE_ERROR: i32 = 12;
    pub const DMMP_ERROR: i32 = 13;
    pub const THREAD_ERROR: i32 = 14;
    pub const OTHER: i32 = 15;
}

/// A PR answer, as plain data (the parameter data of SPC-4 §6.15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAnswer {
    /// PR OUT done (on every path it went to).
    Done,
    Keys {
        generation: u32,
        keys: Vec<u64>,
    },
    Reservation {
        generation: u32,
        reservation: Option<PrReservation>,
    },
    Capabilities(PrCapabilities),
    FullStatus {
        generation: u32,
        descriptors: Vec<PrRegistration>,
    },
}

/// READ RESERVATION's descriptor (SPC-4 §6.15.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrReservation {
    pub key: u64,
    pub scope: u8,
    /// TYPE (SPC-4 Table 168).
    pub rtype: u8,
}

/// REPORT CAPABILITIES (SPC-4 §6.15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrCapabilities {
    pub crh: bool,
    pub sip_c: bool,
    pub atp_c: bool,
    pub ptpl_c: bool,
    pub allow_commands: u8,
    pub ptpl_a: bool,
    /// PERSISTENT RESERVATION TYPE MASK, when TMV is set.
    pub type_mask: Option<u16>,
}

/// One READ FULL STATUS descriptor (SPC-4 §6.15.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRegistration {
    pub key: u64,
    pub all_tg_pt: bool,
    /// R_HOLDER: the reservation type it holds (SPC-4 Table 168).
    pub holder: Option<u8>,
    pub relative_target_port: u16,
    /// The iSCSI name of the initiator port.
    pub name: String,
    /// Its ISID, as 12 hex digits (None: format 00b, every ISID).
    pub isid: Option<String>,
}
