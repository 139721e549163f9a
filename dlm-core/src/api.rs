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

/// What `dlm_tool` asks the daemon that is not a lock call; the daemon answers with text
/// in dlm_tool's layouts (dlm_tool/main.c), so the tool only prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `dlm_tool ls [-n] [name]`.
    Ls { name: Option<String>, nodes: bool },
    /// `dlm_tool status [-v]`.
    Status { verbose: bool },
    /// `dlm_tool dump`: the daemon's in-memory debug log.
    Dump,
    /// `dlm_tool dump_config`.
    DumpConfig,
    /// `dlm_tool lockdump [-M] <ls>`.
    Lockdump { ls: String, master_copies: bool },
    /// `dlm_tool lockdebug <ls>`.
    Lockdebug { ls: String },
}

/// Client to daemon, over the unix socket. `req` is the client's own number for the
/// call; the answer carries it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// The first frame of every connection, and only that: the client protocol the
    /// client speaks (see `CLIENT_PROTOCOL` in hydra-dlm's wire module).
    Hello {
        protocol: u16,
    },
    Call {
        req: u64,
        request: Request,
    },
    Query {
        req: u64,
        query: Query,
    },
}

/// Daemon to client, over the unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonFrame {
    /// The first frame the daemon writes on every connection: the client protocol it
    /// speaks.
    Hello {
        protocol: u16,
    },
    /// The outcome of a `Call`: for Lock, the lock id (the request is then under way and
    /// its completion arrives as a Callback); for the others 0.
    Reply {
        req: u64,
        result: Result<u32, Errno>,
    },
    Callback {
        ls: String,
        cb: Callback,
    },
    /// The answer to a `Query`.
    Text {
        req: u64,
        result: Result<String, Errno>,
    },
}

/// Where dlm_controld keeps its pid file and hydra its client socket (dlm_controld's
/// RUNDIR); `hydra dlm_controld --run-dir` and `hydra dlm_tool --run-dir` change it.
pub const DEFAULT_RUN_DIR: &str = "/run/dlm_controld";
/// The client socket's file name in the run directory.
pub const SOCKET_NAME: &str = "hydra-dlm.sock";
