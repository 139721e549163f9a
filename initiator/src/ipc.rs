//! What `hydra iscsiadm` and `hydra iscsid` say to each other over the daemon's control
//! socket: one JSON request per line, one JSON response line back. open-iscsi's own IPC
//! is a private binary struct tied to its version (usr/mgmt_ipc.h) and its session list
//! comes from kernel sysfs; hydra has no kernel sessions, so the daemon answers with
//! everything `-m session -P 3` prints. Errors carry open-iscsi's exit codes
//! (include/iscsi_err.h) so that iscsiadm exits as open-iscsi's would.

use serde::{Deserialize, Serialize};

/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 64 * 1024;

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

/// One line of JSON (no newline inside: serde_json escapes control characters).
pub fn encode<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).expect("plain data serializes");
    s.push('\n');
    s
}

/// Parse one line; the error says what was wrong with it.
pub fn decode<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, String> {
    serde_json::from_str(line.trim_end()).map_err(|e| format!("malformed request: {e}"))
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
        let line = encode(&r);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(decode::<Request>(&line).unwrap(), r);
        assert!(decode::<Request>("{\"op\":\"format_disk\"}").is_err());
        assert!(decode::<Request>("{\"op\":\"logout\",\"sid\":-1}").is_err());
    }
}
