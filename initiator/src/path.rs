//! What a multipath layer needs to know about one session as a path: its state as
//! events ([`PathState`], watched through [`crate::Session::state`]) and, for a command
//! that failed, whether another path could do better ([`classify`]).

use std::fmt;

use hydra_proto::pdu::LoginStatus;
use hydra_proto::scsi::status;
use tokio::time::Instant;

/// The state of a session's connection, as a `tokio::sync::watch` value. A watcher
/// that looks late sees only the newest state, but an `Up` whose `since` is newer than
/// the one it knew tells it that the path went down and came back in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathState {
    /// Logged in, in the full feature phase, since this instant.
    Up { since: Instant },
    /// The connection was lost at `since`; the driver is logging in again (same ISID,
    /// so the target reinstates the session, RFC 7143 §6.3.5). `reason` says why it was
    /// lost, or, once a login attempt was refused, [`DownReason::LoginRefused`].
    Down { reason: DownReason, since: Instant },
    /// Logged out (or every handle dropped): no more reconnects, ever.
    LoggedOut,
}

impl PathState {
    pub fn is_up(&self) -> bool {
        matches!(self, PathState::Up { .. })
    }
}

/// Why a path went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The target closed or reset the connection (EOF, RST, a socket error): known at
    /// once.
    Reset,
    /// A NOP-Out went unanswered for `noop_out_timeout`, or the target took no data for
    /// as long: a silent loss, known at most `noop_out_interval + noop_out_timeout`
    /// after the last PDU (0.25 s + `noop_out_timeout` while commands wait, conn.rs).
    NopTimeout,
    /// A command outlived its timeout and task management (ABORT TASK, LUN RESET) did
    /// not end it, so the connection was dropped.
    CommandTimeout,
    /// The target broke RFC 7143 (or answered with a iSCSI Response other than "command
    /// completed at target"); at ErrorRecoveryLevel 0 the connection is dropped.
    Protocol,
    /// The caller withdrew the commands ([`crate::Session::withdraw_all`]), which drops
    /// the connection.
    Withdrawn,
    /// A login on reconnect was refused with this status (RFC 7143 §11.13.5); the
    /// driver keeps trying, as open-iscsi's session recovery does.
    LoginRefused(LoginStatus),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Reset => f.write_str("connection reset or closed by the target"),
            DownReason::NopTimeout => f.write_str("no answer to NOP-Out (silent link loss)"),
            DownReason::CommandTimeout => {
                f.write_str("a command timed out and task management did not end it")
            }
            DownReason::Protocol => f.write_str("protocol error"),
            DownReason::Withdrawn => f.write_str("commands withdrawn by the caller"),
            DownReason::LoginRefused(s) => {
                write!(
                    f,
                    "login refused: {}",
                    crate::status_text::login_status_text(*s)
                )
            }
        }
    }
}

/// What to do with a command's outcome, after Linux's rules for dm-multipath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// GOOD (or CONDITION MET): done.
    Good,
    /// Send it again on the same path: UNIT ATTENTION, BUSY, TASK SET FULL, ABORTED
    /// COMMAND, NOT READY "becoming ready" (04/01) and other transient conditions.
    Retry,
    /// The path failed; retry on another path (`blk_path_error` is true).
    Path,
    /// The request or the medium failed; the same on every path, so it goes back to
    /// the caller (`blk_path_error` is false).
    Target,
}

/// Classify a SCSI status and its sense (key, ASC, ASCQ) the way Linux does before
/// dm-multipath looks at it: drivers/scsi/scsi_error.c `scsi_decide_disposition` and
/// `scsi_check_sense` set a host or mid-layer byte, drivers/scsi/scsi_lib.c turns it
/// into a `blk_status_t`, and include/linux/blk_types.h `blk_path_error` says
/// BLK_STS_NOTSUPP, NOSPC, TARGET, RESV_CONFLICT, MEDIUM and PROTECTION are not path
/// errors — anything else (BLK_STS_IOERR, TRANSPORT) is, and dm-mpath fails the path
/// and retries the I/O elsewhere. What Linux retries on the same path (NEEDS_RETRY,
/// ADD_TO_MLQUEUE) is [`Verdict::Retry`]; a caller that runs out of retries treats it
/// as a path error, as Linux does once `scsi_cmd_retry_allowed` says no (IOERR).
pub fn classify(status: u8, sense: Option<(u8, u8, u8)>) -> Verdict {
    match status {
        status::GOOD | status::CONDITION_MET => Verdict::Good,
        // scsi_decide_disposition: ADD_TO_MLQUEUE, the device is busy.
        status::BUSY | status::TASK_SET_FULL => Verdict::Retry,
        // "causes immediate i/o error": BLK_STS_RESV_CONFLICT. A fenced node must see
        // its writes fail, on every path.
        status::RESERVATION_CONFLICT => Verdict::Target,
        // Ended by another initiator's task management (TAS=1, SAM-5 §5.6): retry.
        status::TASK_ABORTED => Verdict::Retry,
        status::CHECK_CONDITION => match sense {
            Some(s) => classify_sense(s),
            // No sense to go by: Linux retries, then BLK_STS_IOERR.
            None => Verdict::Path,
        },
        // ACA ACTIVE and anything unknown: BLK_STS_IOERR.
        _ => Verdict::Path,
    }
}

/// `scsi_check_sense`, then `scsi_io_completion_action` for what it passes on.
fn classify_sense((key, asc, ascq): (u8, u8, u8)) -> Verdict {
    match key {
        // NO SENSE, RECOVERED ERROR: the command completed.
        0x00 | 0x01 => Verdict::Good,
        0x02 => match (asc, ascq) {
            // LOGICAL UNIT IS IN PROCESS OF BECOMING READY: NEEDS_RETRY.
            (0x04, 0x01) => Verdict::Retry,
            // ALUA transitioning (04/0A), standby (04/0B), unavailable (04/0C): scsi_dh's
            // alua handler retries transitioning for a while, then the I/O ends
            // BLK_STS_IOERR (04/0B, 04/0C at once): this port is the wrong way in.
            // Every other NOT READY also ends BLK_STS_IOERR.
            _ => Verdict::Path,
        },
        // MEDIUM ERROR: unrecovered read error, address mark not found, record not
        // found are BLK_STS_MEDIUM; the others NEEDS_RETRY.
        0x03 => match asc {
            0x11 | 0x13 | 0x14 => Verdict::Target,
            _ => Verdict::Retry,
        },
        // HARDWARE ERROR: TGT_FAILURE (BLK_STS_TARGET) unless the device asks for
        // retries (retry_hwerror, not set for iSCSI disks).
        0x04 => Verdict::Target,
        // ILLEGAL REQUEST: invalid opcode, LBA out of range, invalid function, invalid
        // field in CDB / parameter list, write protected are BLK_STS_TARGET. The others
        // — notably 25/00 LOGICAL UNIT NOT SUPPORTED, a path that does not see the LUN —
        // end BLK_STS_IOERR: a path error.
        0x05 => match asc {
            0x20 | 0x21 | 0x22 | 0x24 | 0x26 | 0x27 => Verdict::Target,
            _ => Verdict::Path,
        },
        // UNIT ATTENTION: report it and retry on the same path (scsi_io_completion_action
        // ACTION_RETRY); ALUA's 2A/06 "asymmetric access state changed" included.
        0x06 => Verdict::Retry,
        // DATA PROTECT (27/07 is BLK_STS_NOSPC), COPY ABORTED, VOLUME OVERFLOW,
        // MISCOMPARE, BLANK CHECK: TGT_FAILURE.
        0x07 | 0x08 | 0x0a | 0x0d | 0x0e => Verdict::Target,
        // ABORTED COMMAND: NEEDS_RETRY, except 10/xx (protection information) which is
        // BLK_STS_PROTECTION.
        0x0b => match asc {
            0x10 => Verdict::Target,
            _ => Verdict::Retry,
        },
        // Vendor specific, reserved, COMPLETED: passed up as BLK_STS_IOERR.
        _ => Verdict::Path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sense = Option<(u8, u8, u8)>;

    /// (status, sense, verdict, where Linux decides it)
    const TABLE: &[(u8, Sense, Verdict, &str)] = &[
        (0x00, None, Verdict::Good, "GOOD"),
        (0x04, None, Verdict::Good, "CONDITION MET"),
        (
            0x08,
            None,
            Verdict::Retry,
            "scsi_decide_disposition: BUSY → ADD_TO_MLQUEUE",
        ),
        (0x28, None, Verdict::Retry, "TASK SET FULL → ADD_TO_MLQUEUE"),
        (
            0x18,
            None,
            Verdict::Target,
            "RESERVATION CONFLICT → BLK_STS_RESV_CONFLICT",
        ),
        (0x40, None, Verdict::Retry, "TASK ABORTED → retry"),
        (0x30, None, Verdict::Path, "ACA ACTIVE → BLK_STS_IOERR"),
        (
            0x02,
            None,
            Verdict::Path,
            "CHECK CONDITION without sense → BLK_STS_IOERR",
        ),
        (
            0x02,
            Some((0x01, 0x17, 0x00)),
            Verdict::Good,
            "RECOVERED ERROR",
        ),
        (
            0x02,
            Some((0x02, 0x04, 0x01)),
            Verdict::Retry,
            "NOT READY becoming ready → NEEDS_RETRY",
        ),
        (
            0x02,
            Some((0x02, 0x04, 0x0a)),
            Verdict::Path,
            "ALUA transitioning → IOERR",
        ),
        (
            0x02,
            Some((0x02, 0x04, 0x0b)),
            Verdict::Path,
            "ALUA standby → IOERR",
        ),
        (
            0x02,
            Some((0x02, 0x04, 0x0c)),
            Verdict::Path,
            "ALUA unavailable → IOERR",
        ),
        (
            0x02,
            Some((0x02, 0x3a, 0x00)),
            Verdict::Path,
            "MEDIUM NOT PRESENT → IOERR",
        ),
        (
            0x02,
            Some((0x03, 0x11, 0x00)),
            Verdict::Target,
            "unrecovered read → BLK_STS_MEDIUM",
        ),
        (
            0x02,
            Some((0x03, 0x0c, 0x00)),
            Verdict::Retry,
            "other MEDIUM ERROR → NEEDS_RETRY",
        ),
        (
            0x02,
            Some((0x04, 0x44, 0x00)),
            Verdict::Target,
            "HARDWARE ERROR → TGT_FAILURE",
        ),
        (
            0x02,
            Some((0x05, 0x20, 0x00)),
            Verdict::Target,
            "invalid opcode → BLK_STS_TARGET",
        ),
        (
            0x02,
            Some((0x05, 0x21, 0x00)),
            Verdict::Target,
            "LBA out of range → BLK_STS_TARGET",
        ),
        (
            0x02,
            Some((0x05, 0x24, 0x00)),
            Verdict::Target,
            "invalid field in CDB",
        ),
        (
            0x02,
            Some((0x05, 0x25, 0x00)),
            Verdict::Path,
            "LU not supported → IOERR",
        ),
        (
            0x02,
            Some((0x06, 0x29, 0x00)),
            Verdict::Retry,
            "UNIT ATTENTION reset → retry",
        ),
        (
            0x02,
            Some((0x06, 0x2a, 0x06)),
            Verdict::Retry,
            "UA ALUA state changed → retry",
        ),
        (
            0x02,
            Some((0x07, 0x27, 0x00)),
            Verdict::Target,
            "DATA PROTECT → TGT_FAILURE",
        ),
        (
            0x02,
            Some((0x07, 0x27, 0x07)),
            Verdict::Target,
            "space exhausted → BLK_STS_NOSPC",
        ),
        (
            0x02,
            Some((0x0e, 0x1d, 0x00)),
            Verdict::Target,
            "MISCOMPARE → TGT_FAILURE",
        ),
        (
            0x02,
            Some((0x0b, 0x47, 0x00)),
            Verdict::Retry,
            "ABORTED COMMAND → NEEDS_RETRY",
        ),
        (
            0x02,
            Some((0x0b, 0x10, 0x01)),
            Verdict::Target,
            "PI guard check → BLK_STS_PROTECTION",
        ),
        (
            0x02,
            Some((0x09, 0x80, 0x00)),
            Verdict::Path,
            "vendor specific → IOERR",
        ),
    ];

    /// Errors without a SCSI status: transport failures are path errors (Linux's
    /// BLK_STS_TRANSPORT / TIMEOUT / IOERR); this node's own setup is not.
    #[test]
    fn transport_errors_are_path_errors() {
        use crate::Error;
        let path = [
            Error::Closed,
            Error::Protocol("StatSN jumped".into()),
            Error::io("read", std::io::ErrorKind::ConnectionReset.into()),
            Error::Unreachable {
                addr: "10.200.1.1:3260".into(),
                secs: 120,
            },
            Error::TimedOut {
                secs: 30,
                recovered: "ABORT TASK",
            },
            Error::PathFailed {
                addr: "10.200.1.1:3260".into(),
                reason: DownReason::NopTimeout,
                sent: true,
            },
        ];
        for e in path {
            assert!(e.is_path_error(), "{e}");
        }
        let not = [
            Error::LoginRefused(LoginStatus(2, 1)),
            Error::Auth("CHAP".into()),
            Error::Db("bad record".into()),
        ];
        for e in not {
            assert!(!e.is_path_error(), "{e}");
        }
    }

    #[test]
    fn linux_dispositions() {
        for &(status, sense, want, why) in TABLE {
            assert_eq!(
                classify(status, sense),
                want,
                "{why}: {status:#x} {sense:x?}"
            );
        }
    }
}
