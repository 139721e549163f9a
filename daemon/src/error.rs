//! The scaffolding's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `what` says what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// No daemon answers at `path`.
    #[error("can't connect to {daemon} ({}): {source}", path.display())]
    Connect {
        daemon: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another instance holds the pid file's lock.
    #[error("{daemon} is already running{}: {} is locked", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display())]
    AlreadyRunning {
        daemon: String,
        path: PathBuf,
        /// What the running instance wrote into the file, if it is a pid.
        pid: Option<u32>,
    },
    /// The other end of a control socket spoke another protocol version, or something
    /// that is not the protocol at all.
    #[error("{0}")]
    Protocol(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The OS error number, for the tools that print it as their C originals do.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Connect { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
