//! The crate's one error type.
//!
//! Configuration faults name the file, the line and the keyword, worded as
//! multipath-tools words its log lines (`libmultipath/dict.c`), so that a person who
//! searches for the message finds the same advice.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value multipath-tools would log as invalid and ignore. hydra refuses the file
    /// instead: a typo in `no_path_retry` must not silently turn queueing off.
    #[error("{} line {line}, invalid value for {keyword}: \"{value}\" ({reason})", file.display())]
    Value {
        file: PathBuf,
        line: usize,
        keyword: String,
        value: String,
        reason: String,
    },
    /// A keyword with no value at all (multipath-tools: "missing value for option").
    #[error("{} line {line}, missing value for option '{keyword}'", file.display())]
    MissingValue {
        file: PathBuf,
        line: usize,
        keyword: String,
    },
    /// A file that cannot be read or written (configuration, bindings, wwids).
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// No free user-friendly name is left for the prefix (multipath-tools: "no more
    /// available user_friendly_names").
    #[error("no more available user_friendly_names for prefix \"{prefix}\"")]
    AliasesExhausted { prefix: String },
    /// The WWID's alias from the bindings file names another live map
    /// (multipath-tools: "alias '%s' already taken").
    #[error("{wwid}: alias '{alias}' already taken")]
    AliasInUse { alias: String, wwid: String },
    /// An alias or WWID that cannot be stored in the bindings or wwids file.
    #[error("{what} \"{value}\" cannot be stored: {reason}")]
    Unstorable {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
