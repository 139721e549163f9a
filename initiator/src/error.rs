//! The initiator's one error type.

use hydra_proto::pdu::LoginStatus;

use crate::path::DownReason;
pub use crate::status_text::{login_status_text, tmf_response_text};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The target broke RFC 7143; the connection is dropped.
    #[error("protocol error from the target: {0}")]
    Protocol(String),
    /// Login refused with a status class/detail (RFC 7143 §11.13.5).
    #[error("login refused: {}", login_status_text(*.0))]
    LoginRefused(LoginStatus),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("the session is closed")]
    Closed,
    /// The node database (records under /etc/iscsi) or iscsid.conf: what and where.
    #[error("{0}")]
    Db(String),
    /// The connection was lost and not re-established within replacement_timeout
    /// (open-iscsi's `node.session.timeo.replacement_timeout`).
    #[error("target {addr} unreachable for {secs} s (replacement_timeout); the command was not completed")]
    Unreachable { addr: String, secs: u64 },
    /// The command got no answer within the command timeout (Linux sd's 30 s) and was
    /// ended by task management (`recovered`: "ABORT TASK" or "LUN RESET", RFC 7143
    /// §11.5) or, when that went unanswered too, by "dropping the connection". It is not
    /// sent again. The target never said how the command ended: a write may or may not
    /// be on the medium.
    #[error("SCSI command timed out after {secs} s and was ended by {recovered}; the target may or may not have executed it")]
    TimedOut { secs: u64, recovered: &'static str },
    /// Handed back because the path failed, without waiting for replacement_timeout:
    /// the session is fail-fast ([`crate::conn::Timeouts::fail_fast`]) and its
    /// connection went down, or the caller withdrew the command
    /// ([`crate::Session::withdraw_all`]). `sent`: whether the command had gone on the
    /// wire. One never sent cannot land anywhere; one sent may still be executed by the
    /// target until the session is reinstated (see `withdraw_all`).
    #[error("path to {addr} failed ({reason}); the command was {}", if *.sent { "sent and may still be executed by the target until the session is reinstated" } else { "not sent" })]
    PathFailed {
        addr: String,
        reason: DownReason,
        sent: bool,
    },
    /// The daemon's run directory, pid file or control socket ([`hydra_daemon`]).
    #[error(transparent)]
    Daemon(#[from] hydra_daemon::Error),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl Error {
    /// Whether another path might succeed where this one failed: dm-multipath's
    /// `blk_path_error` for an error that never got a SCSI status (a transport failure:
    /// connection lost, command timed out, protocol error, closed session). For a
    /// [`crate::session::Reply`], see [`crate::session::Reply::verdict`].
    pub fn is_path_error(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Protocol(_)
            | Error::Closed
            | Error::Unreachable { .. }
            | Error::TimedOut { .. }
            | Error::PathFailed { .. } => true,
            // About the request or this node's setup, the same on every path.
            Error::LoginRefused(_) | Error::Auth(_) | Error::Db(_) | Error::Daemon(_) => false,
        }
    }
}

impl From<hydra_proto::Error> for Error {
    fn from(e: hydra_proto::Error) -> Self {
        match e {
            hydra_proto::Error::Auth(s) => Error::Auth(s),
            other => Error::Protocol(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
