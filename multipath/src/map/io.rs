//! One I/O through a map: what the driver reports about it and how it ends.

use std::fmt;

use hydra_initiator::Verdict;

use super::path::PathId;

/// An I/O's handle, given by [`crate::map::Map::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IoId(pub u64);

impl fmt::Display for IoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I/O {}", self.0)
    }
}

/// How one dispatch of an I/O on a path ended, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered and the answer is final: GOOD, or an error about the
    /// request or the medium (sense data, RESERVATION CONFLICT) that would be the same
    /// on every path ([`Verdict::Good`], [`Verdict::Target`]). Goes back to the
    /// caller as it is.
    Final,
    /// Transient on this path (UNIT ATTENTION, BUSY, …, [`Verdict::Retry`]): send it
    /// again on the same path, a bounded number of times.
    Retry,
    /// The path failed under it ([`Verdict::Path`], or an initiator error for which
    /// `is_path_error` holds: connection lost, command timed out, withdrawn). The path
    /// is failed and the I/O goes to another path. `why` is logged.
    PathError { why: String },
}

impl Outcome {
    /// The outcome of a SCSI status the initiator classified.
    pub fn from_verdict(v: Verdict) -> Outcome {
        match v {
            Verdict::Good | Verdict::Target => Outcome::Final,
            Verdict::Retry => Outcome::Retry,
            Verdict::Path => Outcome::PathError {
                why: "SCSI status or sense data of a path error".into(),
            },
        }
    }

    /// The outcome of a command that ended with an initiator error instead of a
    /// SCSI status: a path error if the error is about the path, else final (a
    /// refused login or this node's setup is the same on every path).
    pub fn from_error(e: &hydra_initiator::Error) -> Outcome {
        if e.is_path_error() {
            Outcome::PathError { why: e.to_string() }
        } else {
            Outcome::Final
        }
    }
}

/// How an I/O ends for its caller ([`crate::map::Event::Done`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoResult {
    /// Hand the caller the answer of the last dispatch (GOOD or a target error).
    Completed,
    /// No path could take it: EIO for the caller. The reason names the map state.
    NoPath { why: String },
}

/// An I/O the map has not finished.
#[derive(Debug, Clone)]
pub(crate) struct IoRecord {
    pub bytes: u64,
    /// The path it is on, None while queued.
    pub path: Option<PathId>,
    /// Retries on the current path so far.
    pub retries: u32,
    /// Set by [`crate::map::Map::handle_completion`] before re-dispatch.
    pub last_path_error: Option<String>,
}
