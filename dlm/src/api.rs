//! What clients ask of their node's lock manager and what they get back: libdlm's calls
//! (`dlm_new_lockspace`, `dlm_ls_lock`, `dlm_ls_unlock`, …) and its callbacks.

use crate::flags::{Flags, Status};
use crate::membership::NodeId;
use crate::message::Name;
use crate::mode::Mode;
use crate::resource::Lvb;

/// A client connection; its locks are released when it goes away (PERSISTENT ones
/// become orphans).
pub type ClientId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Join (create) a lockspace on this node; answered once the first recovery is done.
    Join { ls: String },
    /// Leave it; `force` releases this node's locks first (else EBUSY while any remain).
    Leave { ls: String, force: bool },
    /// `dlm_ls_lock`: a new lock, or with CONVERT a conversion of `lkid`.
    Lock {
        ls: String,
        name: Name,
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        bast: bool,
        lkid: u32,
    },
    /// `dlm_ls_unlock` (CANCEL, FORCEUNLOCK, VALBLK, IVVALBLK).
    Unlock {
        ls: String,
        lkid: u32,
        flags: Flags,
        lvb: Option<Lvb>,
    },
    /// `dlm_tool fence_ack`: record `node` as fenced.
    FenceAck { node: NodeId },
}

/// A refused call: errno (positive, Linux numbering) and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errno {
    pub code: i32,
    pub detail: String,
}

impl Errno {
    pub fn new(code: i32, detail: impl Into<String>) -> Self {
        Errno {
            code,
            detail: detail.into(),
        }
    }
}

/// A callback to a client (libdlm's completion and blocking ASTs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callback {
    Completion {
        lkid: u32,
        status: Status,
        /// The lock's granted mode afterwards (`None` once unlocked or never granted).
        mode: Option<Mode>,
        sbflags: u8,
        /// The value block read from the resource, when the grant read it.
        lvb: Option<Lvb>,
    },
    Blocking {
        lkid: u32,
        mode: Mode,
    },
}
