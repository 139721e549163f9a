//! What lock managers say to each other: lock traffic between two daemons (over TCP,
//! `Msg`), and recovery and fencing traffic multicast through corosync CPG (`LsCpg` in a
//! lockspace's group, `DaemonCpg` in the daemons' group). Recovery goes through CPG on
//! purpose: corosync delivers those messages in one total order, in the configuration
//! they were sent in (virtual synchrony), so every member sees every phase's data in
//! the same order with no acknowledgements and no stale replies from an aborted round.

use crate::flags::{Flags, Status};
use crate::membership::NodeId;
use crate::mode::Mode;
use crate::resource::{Lvb, Queue};

/// A resource name (at most 64 bytes, any bytes).
pub type Name = Vec<u8>;

/// Lock traffic between two daemons, for lockspace `ls`. Directory messages carry the
/// lockspace's recovery generation `gen`: one from before a recovery is stale (the
/// directory was rebuilt) and is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// To the directory node: who masters `name`? First lookup wins.
    Lookup {
        ls: String,
        gen: u32,
        name: Name,
        id: u64,
    },
    LookupReply {
        ls: String,
        gen: u32,
        name: Name,
        id: u64,
        master: NodeId,
    },
    /// From a master to the directory node: it no longer masters `name`.
    Remove {
        ls: String,
        gen: u32,
        name: Name,
    },
    /// Owner to master.
    Request {
        ls: String,
        name: Name,
        lkid: u32,
        mode: Mode,
        flags: Flags,
        bast: bool,
        lvb: Option<Lvb>,
    },
    Convert {
        ls: String,
        name: Name,
        lkid: u32,
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        reply: bool,
    },
    Unlock {
        ls: String,
        name: Name,
        lkid: u32,
        flags: Flags,
        lvb: Option<Lvb>,
    },
    Cancel {
        ls: String,
        name: Name,
        lkid: u32,
    },
    /// Master to owner: the addressee does not master `name` (any more): look it up.
    NotMaster {
        ls: String,
        name: Name,
        lkid: u32,
    },
    /// Master to owner: a completion.
    Cast {
        ls: String,
        lkid: u32,
        status: Status,
        mode: Option<Mode>,
        sbflags: u8,
        lvb: Option<(Lvb, u32)>,
    },
    /// Master to owner: the request or conversion is queued.
    Queued {
        ls: String,
        lkid: u32,
    },
    Bast {
        ls: String,
        lkid: u32,
        mode: Mode,
    },
    CancelNoop {
        ls: String,
        lkid: u32,
    },
}

impl Msg {
    pub fn lockspace(&self) -> &str {
        match self {
            Msg::Lookup { ls, .. }
            | Msg::LookupReply { ls, .. }
            | Msg::Remove { ls, .. }
            | Msg::Request { ls, .. }
            | Msg::Convert { ls, .. }
            | Msg::Unlock { ls, .. }
            | Msg::Cancel { ls, .. }
            | Msg::NotMaster { ls, .. }
            | Msg::Cast { ls, .. }
            | Msg::Queued { ls, .. }
            | Msg::Bast { ls, .. }
            | Msg::CancelNoop { ls, .. } => ls,
        }
    }
}

/// A process copy as its owner sends it to a resource's new master (`rcom LOCK`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverLock {
    pub name: Name,
    pub lkid: u32,
    /// `None` for a middle conversion (PR↔CW) whose outcome the owner never heard.
    pub grmode: Option<Mode>,
    pub rqmode: Option<Mode>,
    pub queue: Queue,
    pub flags: Flags,
    pub bast: bool,
    pub lvb: Option<Lvb>,
    pub lvbseq: u32,
}

/// Recovery of one lockspace, multicast in its CPG group (one message per phase per
/// member; the phase ends when every member's has been delivered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LsCpg {
    /// The sender has stopped and its conditions (quorum, fencing) hold; `gen` is its
    /// recovery generation (the new one is the highest + 1).
    Start { gen: u32 },
    /// Names the sender masters, and names it holds locks on whose master left. Sent in
    /// chunks (`CoreConfig::recover_chunk` entries at most; corosync refuses a CPG
    /// message over about 1 MiB); `last` marks the sender's final one.
    Masters {
        mastered: Vec<Name>,
        orphaned: Vec<Name>,
        last: bool,
    },
    /// The sender's locks on resources that got a new master, in chunks like Masters.
    Locks { locks: Vec<RecoverLock>, last: bool },
    /// The sender rebuilt its part.
    Done,
}

/// The daemons' group: fencing, in the total order that makes "fenced after it failed"
/// well defined on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonCpg {
    /// The actor is about to run the agents for `node`: covers its failures so far.
    FenceStart { node: NodeId },
    /// The agents' outcome for `node`.
    FenceResult { node: NodeId, ok: bool },
    /// `dlm_tool fence_ack`: an admin says `node` is down.
    FenceAck { node: NodeId },
    /// Sent by every member on each configuration change that adds members, whatever
    /// its cause (a daemon starting, rings merging), and once more when the sender first
    /// runs a lockspace (dlm_controld's protocol message and its `PV_STATEFUL` flag).
    /// `stateful`: the sender has run a lockspace, so it may hold locks. A member that
    /// says Hello without state is taken in cleanly: it is no longer waited for by
    /// startup fencing, and an earlier failure of it counts as fenced (a daemon whose
    /// predecessor died with lock state does not start until the node is fenced or
    /// rebooted). Two daemons whose Hellos answering the same change both say
    /// `stateful` are a stateful merge (both judge the pair on these two Hellos); `side`
    /// (the lowest node of the sender and the members it had taken in, that is, of the
    /// partition it was in) groups the merged members by partition when no side kept
    /// quorum and the largest one fences the others.
    Hello { stateful: bool, side: NodeId },
}
