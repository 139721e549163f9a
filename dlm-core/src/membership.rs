//! Membership as corosync reports it (CPG configuration changes, votequorum), in the
//! shapes the lock core consumes. The corosync driver produces these; the simulation
//! produces them from its model of corosync.

/// A corosync node id (nodelist `nodeid`).
pub type NodeId = u32;

/// Why a member left a CPG group (corosync's `cpg_reason_t`, cpg.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// `cpg_leave` called: a clean leave, no fencing needed.
    Leave,
    /// The node left the cluster membership (crash, network loss).
    NodeDown,
    /// The process left the group without leaving (daemon crashed or was killed).
    ProcDown,
}

impl LeaveReason {
    /// corosync's CPG_REASON_* value, for logs in dlm_controld's terms.
    pub fn code(self) -> u32 {
        match self {
            LeaveReason::Leave => 2,
            LeaveReason::NodeDown => 3,
            LeaveReason::ProcDown => 5,
        }
    }

    /// A member that went away without leaving must be fenced before its locks go.
    pub fn needs_fencing(self) -> bool {
        !matches!(self, LeaveReason::Leave)
    }
}

/// A CPG configuration change for one group (cpg_confchg_fn_t).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confchg {
    /// The group name, e.g. `dlm:ls:<lockspace>` or `dlm:controld`.
    pub group: String,
    /// Members after the change, sorted by node id.
    pub members: Vec<NodeId>,
    pub joined: Vec<NodeId>,
    pub left: Vec<(NodeId, LeaveReason)>,
}

/// The quorum state (votequorum notification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub quorate: bool,
    /// Nodes in the current membership, sorted.
    pub members: Vec<NodeId>,
    /// The ring sequence number of the membership this state belongs to.
    pub ring_seq: u64,
}

/// What the corosync layer reports, in corosync's (total) delivery order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    Confchg(Confchg),
    /// A message multicast to a group, delivered in the same order on every member.
    Deliver {
        group: String,
        from: NodeId,
        data: Vec<u8>,
    },
    Quorum(Quorum),
}

/// The CPG group of one lockspace, as dlm_controld names it.
pub fn lockspace_group(name: &str) -> String {
    format!("dlm:ls:{name}")
}

/// The daemons' group: fencing results and protocol negotiation.
pub const DAEMON_GROUP: &str = "dlm:controld";
