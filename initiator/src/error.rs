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
    /// The connection was lost and not re-established within replacement_timeout
    /// (open-iscsi's `node.session.timeo.replacement_timeout`).
    /// The node database (records under /etc/iscsi) or iscsid.conf: what and where.
    #[error("{0}")]
    Db(String),
    #[error("target {addr} unreachable for {secs} s (replacement_timeout); the command was not completed")]
    Unreachable { addr: String, secs: u64 },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
