//! The lock manager core's inputs and outputs: everything a driver (the daemon, the
//! simulation) feeds a [`crate::node::Node`] and everything it asks the driver to do.
//!
//! A leaf of the core: it names only the data that crosses the boundary (client calls
//! and callbacks, peer and CPG messages, membership events) and nothing of the state
//! machines, so the node, its lockspaces and the drivers all depend on it and it on none
//! of them (the lockspace used to import `Output` from the node, which imports the
//! lockspace: a circle).

use crate::api::{Callback, ClientId, Errno, Request};
use crate::membership::{Confchg, NodeId, Quorum};
use crate::message::{DaemonCpg, LsCpg, Msg};

/// One event for the core, fed with the time it happened ([`crate::node::Node::handle`]).
#[derive(Clone, Debug)]
pub enum Input {
    Client {
        client: ClientId,
        req: u64,
        request: Request,
    },
    ClientGone(ClientId),
    /// Lock traffic from another daemon.
    Peer {
        from: NodeId,
        msg: Msg,
    },
    /// A CPG configuration change (daemon group or a lockspace group).
    Confchg(Confchg),
    /// A recovery message delivered in a lockspace's group.
    LsCpg {
        ls: String,
        from: NodeId,
        msg: LsCpg,
    },
    /// A message delivered in the daemons' group.
    DaemonCpg {
        from: NodeId,
        msg: DaemonCpg,
    },
    Quorum(Quorum),
    /// The fence agents for `node` finished.
    FenceDone {
        node: NodeId,
        ok: bool,
    },
    Tick,
}

/// One thing the core asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: NodeId,
        msg: Msg,
    },
    McastLs {
        ls: String,
        msg: LsCpg,
    },
    McastDaemon(DaemonCpg),
    CpgJoin(String),
    CpgLeave(String),
    Reply {
        client: ClientId,
        req: u64,
        result: Result<u32, Errno>,
    },
    Callback {
        client: ClientId,
        ls: String,
        cb: Callback,
    },
    /// Run the fence agents for `node`; answer with `Input::FenceDone`.
    Fence {
        node: NodeId,
    },
    /// Have corosync remove `node` from the cluster (`corosync_cfg_kill_node`, which
    /// makes corosync on that node exit): a member met by a stateful merge, which no
    /// lockspace can recover with and whose own daemon may be stuck (dlm_controld's
    /// `kick_node_from_cluster`). No answer.
    Kick {
        node: NodeId,
    },
    Log(String),
}
