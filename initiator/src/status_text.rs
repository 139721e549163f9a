//! Names of the iSCSI status codes a session reports (login status, task management
//! response), worded as iscsiadm prints them. A leaf: errors and path states both name
//! codes with it.

use hydra_proto::pdu::LoginStatus;

/// RFC 7143 §11.13.5 status names, as iscsiadm reports them.
pub fn login_status_text(s: LoginStatus) -> String {
    let name = match (s.0, s.1) {
        (1, _) => "target moved (redirection)",
        (2, 0) => "initiator error",
        (2, 1) => "authentication failure",
        (2, 2) => "authorization failure",
        (2, 3) => "target not found",
        (2, 4) => "target removed",
        (2, 5) => "unsupported version",
        (2, 6) => "too many connections",
        (2, 7) => "missing parameter",
        (2, 8) => "can't include in session",
        (2, 9) => "session type not supported",
        (2, 0x0a) => "session does not exist",
        (2, 0x0b) => "invalid request during login",
        (3, 0) => "target error",
        (3, 1) => "service unavailable",
        (3, 2) => "out of resources",
        _ => "unknown status",
    };
    format!("{name} (0x{:02x}{:02x})", s.0, s.1)
}

/// RFC 7143 §11.6.1 Task Management Function Response names.
pub fn tmf_response_text(r: u8) -> String {
    use hydra_proto::pdu::TmfResponse as R;
    let name = match r {
        R::COMPLETE => "function complete",
        R::NO_SUCH_TASK => "task does not exist",
        R::NO_SUCH_LUN => "LUN does not exist",
        R::STILL_ALLEGIANT => "task still allegiant",
        R::REASSIGN_NOT_SUPPORTED => "task allegiance reassignment not supported",
        R::NOT_SUPPORTED => "task management function not supported",
        R::AUTHORIZATION_FAILED => "function authorization failed",
        R::REJECTED => "function rejected",
        _ => "unknown response",
    };
    format!("{name} ({r})")
}
