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
    /// A path the map does not have (a stale handle from the driver or an operator).
    #[error("{map}: no path {path}")]
    UnknownPath { map: String, path: u64 },
    /// A path added twice.
    #[error("{map}: path {path} is already in the map")]
    DuplicatePath { map: String, path: u64 },
    /// A path removed while I/O is on it: its completions must come back first, or
    /// they would be lost.
    #[error(
        "{map}: path {path} still has {in_flight} I/Os in flight; complete them before removing it"
    )]
    PathBusy {
        map: String,
        path: u64,
        in_flight: u32,
    },
    /// A completion for an I/O the map is not waiting on.
    #[error("{map}: completion for I/O {io}, which is {state}")]
    UnknownIo {
        map: String,
        io: u64,
        state: &'static str,
    },
    /// The node daemon could not start or do what it was asked (names what and why).
    #[error("{what}: {reason}")]
    Node { what: String, reason: String },
    /// `switchgroup` to a group the map does not have (groups count from 1).
    #[error("{map}: no path group {group} (the map has {groups})")]
    NoSuchGroup {
        map: String,
        group: usize,
        groups: usize,
    },
    /// The map's driver task has stopped (shut down, or its handle's runtime ended).
    #[error("{map}: the map is stopped")]
    MapStopped { map: String },
    /// A command that needs a path (PERSISTENT RESERVE, probing) found none that
    /// answered; `last` is the last path's failure.
    #[error("{map}: {what}: no usable path ({last})")]
    NoUsablePath {
        map: String,
        what: String,
        last: String,
    },
    /// Probing a LUN through a session failed (transport error or a SCSI error).
    #[error("{what}: {reason}")]
    Probe { what: String, reason: String },
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
