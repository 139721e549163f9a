//! What `hydra iscsiadm` and `hydra iscsid` say to each other over the daemon's control
//! socket: one versioned JSON request per line, one JSON response line back
//! ([`hydra_daemon::control`]). open-iscsi's own IPC
//! is a private binary struct tied to its version (usr/mgmt_ipc.h) and its session list
//! comes from kernel sysfs; hydra has no kernel sessions, so the daemon answers with
//! everything `-m session -P 3` prints. Errors carry open-iscsi's exit codes
//! (include/iscsi_err.h) so that iscsiadm exits as open-iscsi's would.

use serde::{Deserialize, Serialize};

/// hydra iscsid's control protocol ([`hydra_daemon::control`]: one versioned JSON line
/// each way).
pub struct Iscsid;

impl hydra_daemon::control::Protocol for Iscsid {
    type Request = Request;
    type Response = Response;
    const VERSION: u32 = 1;
    const DAEMON: &'static str = "hydra iscsid";

    /// A line that is not a request is open-iscsi's "Unknown request".
    fn refusal(why: String) -> Response {
        Response::error(code::INVALID_MGMT_REQ, why)
    }
}

/// open-iscsi's exit codes (include/iscsi_err.h) that the daemon answers with.
pub mod code {
    pub const ERR: u8 = 1;
    pub const SESS_NOT_FOUND: u8 = 2;
    pub const TRANS: u8 = 4;
    pub const LOGIN: u8 = 5;
    pub const IDBM: u8 = 6;
    pub const INVAL: u8 = 7;
    pub const TRANS_TIMEOUT: u8 = 8;
    pub const LOGOUT: u8 = 10;
    pub const SESS_EXISTS: u8 = 15;
    pub const INVALID_MGMT_REQ: u8 = 16;
    pub const FATAL_LOGIN: u8 = 19;
    pub const ISCSID_NOTCONN: u8 = 20;
    pub const NO_OBJS_FOUND: u8 = 21;
    pub const LOGIN_AUTH_FAILED: u8 = 24;

    /// open-iscsi's text for a code (usr/iscsi_err.c).
    pub fn text(c: u8) -> &'static str {
        match c {
            0 => "success",
            1 => "unknown error",
            2 => "session not found",
            4 => "encountered connection failure",
            5 => "encountered iSCSI login failure",
            6 => "encountered iSCSI database failure",
            7 => "invalid parameter",
            8 => "connection timed out",
            10 => "encountered iSCSI logout failure",
            15 => "session exists",
            16 => "Unknown request",
            19 => "encountered non-retryable iSCSI login failure",
            20 => "could not connect to iscsid",
            21 => "no objects found",
            24 => "iSCSI login failed due to authorization failure",
            _ => "unknown error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Log in to the node record of `target` at `address:port` (read from the database
    /// at this moment, so `-o update` applies to the next login).
    Login {
        target: String,
        address: String,
        port: u16,
    },
    Logout {
        sid: u32,
    },
    Sessions,
    Rescan {
        sid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub header_digest: bool,
    pub data_digest: bool,
    pub max_recv_data_segment_length: u32,
    pub max_xmit_data_segment_length: u32,
    pub first_burst_length: u32,
    pub max_burst_length: u32,
    pub immediate_data: bool,
    pub initial_r2t: bool,
    pub max_outstanding_r2t: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lun {
    pub lun: u64,
    pub device_type: u8,
    pub vendor: String,
    pub model: String,
    pub revision: String,
    pub wwid: Option<String>,
    pub blocks: u64,
    pub block_size: u32,
}

/// One session as `iscsiadm -m session -P 0..3` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub sid: u32,
    pub target: String,
    pub address: String,
    pub port: u16,
    pub tpgt: u16,
    pub iface: String,
    pub initiator_name: String,
    pub local_address: String,
    /// The connection is up (not reconnecting).
    pub logged_in: bool,
    pub recovery_timeout: u64,
    pub lu_reset_timeout: u64,
    pub tgt_reset_timeout: u64,
    pub abort_timeout: u64,
    pub username: String,
    pub password: String,
    pub username_in: String,
    pub password_in: String,
    pub negotiated: Negotiated,
    pub luns: Vec<Lun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Sessions { sessions: Vec<SessionInfo> },
    Error { code: u8, message: String },
}

impl Response {
    pub fn error(code: u8, message: impl Into<String>) -> Response {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let r = Request::Login {
            target: "iqn.x:a".into(),
            address: "10.200.0.1".into(),
            port: 3260,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        assert!(serde_json::from_str::<Request>("{\"op\":\"format_disk\"}").is_err());
        assert!(serde_json::from_str::<Request>("{\"op\":\"logout\",\"sid\":-1}").is_err());
    }
}
