//! The initiator's one error type.

use hydra_proto::pdu::LoginStatus;

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

impl From<hydra_proto::Error> for Error {
    fn from(e: hydra_proto::Error) -> Self {
        match e {
            hydra_proto::Error::Auth(s) => Error::Auth(s),
            other => Error::Protocol(other.to_string()),
        }
    }
}

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

pub type Result<T, E = Error> = std::result::Result<T, E>;
