//! The one error type of the DLM crate.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the DLM outside the lock rules (lock request
/// outcomes are statuses delivered to the client, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dlm.conf problem: names file, line and directive; nothing of the file is used.
    #[error("{file}:{line}: {directive}: {detail}")]
    Config {
        file: PathBuf,
        line: usize,
        directive: String,
        detail: String,
    },
    /// A corosync library call failed (cs_error_t code, see corosync/corotypes.h).
    #[error("corosync {call}: {detail}")]
    Corosync { call: &'static str, detail: String },
    /// A fence agent could not be run or did not succeed.
    #[error("fencing node {node}: {detail}")]
    Fence { node: u32, detail: String },
    /// A peer sent a message that does not parse or breaks the protocol.
    #[error("peer protocol error: {0}")]
    Protocol(String),
    /// A client request that cannot be carried out (unknown lockspace, bad arguments).
    #[error("{0}")]
    Request(String),
    /// The daemon will not start (a predecessor's lock state is left on this node).
    #[error("{0}")]
    Refused(String),
    /// Sockets, files, processes.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// hydra-daemon's scaffolding (run directory, pid file, signal handlers) fails as this
/// crate's errors do: an I/O error keeps its context and source.
impl From<hydra_daemon::Error> for Error {
    fn from(e: hydra_daemon::Error) -> Self {
        match e {
            hydra_daemon::Error::Io { what, source } => Error::io(what, source),
            e => Error::Refused(e.to_string()),
        }
    }
}
