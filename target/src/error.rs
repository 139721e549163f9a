//! The one error type of the target crate. Peer faults (a bad PDU, a refused login) are
//! kept apart from local faults (config, backing store, control socket) so that the
//! connection driver can decide: drop one connection, or report to the admin.

use std::path::PathBuf;

/// Everything that can go wrong in the target.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent something the wire crate refused.
    #[error("peer protocol error: {0}")]
    Proto(#[from] hydra_proto::Error),
    /// A targets.conf (or tgtadm argument) problem: names file, line and directive.
    #[error("{file}:{line}: {directive}: {detail}")]
    Config {
        file: PathBuf,
        line: usize,
        directive: String,
        detail: String,
    },
    /// A runtime admin request that cannot be carried out (unknown tid, LUN in use...).
    #[error("{0}")]
    Admin(String),
    /// A backing store could not be opened or used.
    #[error("backing store {path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Run directory, pid file, control socket ([`hydra_daemon`]).
    #[error(transparent)]
    Daemon(#[from] hydra_daemon::Error),
    /// Any other I/O failure (sockets, control socket, state files).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error with a note saying what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result with the target's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
