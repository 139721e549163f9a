//! What the daemon remembers about nodes and membership changes for `dlm_tool status` and
//! `dlm_tool ls`, which the lock core has no use for: when each node joined, left,
//! failed and was fenced (dlm_controld's `struct node_daemon`, daemon_cpg.c), and per
//! lockspace the last completed change and the one in progress with their counts and
//! sequence numbers (`started_change` and `changes` in cpg.c, `set_lockspace_info`).
//!
//! It is fed every configuration change and daemon-group message the daemon hands to the
//! core, and looks at the core after each input to see which changes completed. It also
//! names the condition a stopped lockspace waits for ([`Wait`]), which both the `ls`
//! output and the debug log use.

use std::collections::BTreeMap;

use crate::lockspace::{Lockspace, Phase};
use crate::membership::{Confchg, LeaveReason, NodeId, DAEMON_GROUP};
use crate::message::DaemonCpg;
use crate::node::Node;

/// A time as dlm_controld reports it: monotonic seconds (since this daemon started) and
/// wall-clock seconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    pub mono: u64,
    pub wall: u64,
}

/// One node as the daemons' group saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonNode {
    pub member: bool,
    pub left_reason: Option<LeaveReason>,
    pub add_time: u64,
    pub rem_time: u64,
    pub fail_monotime: u64,
    pub fail_walltime: u64,
    pub fence_monotime: u64,
    pub fence_walltime: u64,
    /// The daemon whose agents (or `fence_ack`) fenced it last.
    pub actor_done: NodeId,
}

/// A lockspace membership change: the counts dlm_tool shows (`struct dlmc_change`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The first configuration change it covers.
    pub seq: u32,
    /// The latest one (several changes during one recovery are recovered together).
    pub combined_seq: u32,
    pub members: Vec<NodeId>,
    pub joined: usize,
    pub removed: usize,
    pub failed: usize,
}

/// One node in one lockspace's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LsNode {
    pub added_seq: u32,
    pub removed_seq: u32,
    /// corosync's CPG_REASON_* of its last failure, 0 if it never failed.
    pub fail_reason: u32,
    pub fail_monotime: u64,
}

#[derive(Clone, Debug, Default)]
pub struct LsHistory {
    seq: u32,
    /// The last change whose recovery completed.
    pub started: Option<Change>,
    /// The change being recovered.
    pub next: Option<Change>,
    pub nodes: BTreeMap<NodeId, LsNode>,
    /// What the debug log last said this lockspace waits for.
    logged: Option<Wait>,
}

/// What a stopped lockspace waits for (dlm_controld's `new status wait ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Its CPG group, or the daemons' group, has not reported a configuration with this
    /// node yet (joining).
    Membership,
    /// The cluster is not quorate and `enable_quorum_lockspace=1`.
    Quorum,
    /// A removed member is not fenced yet.
    Fencing,
    /// A recovery barrier: `missing` members' messages are not delivered yet.
    Messages { phase: Phase, missing: usize },
}

impl Wait {
    /// As `dlm_tool ls` prints it after `new status    `.
    pub fn status(&self) -> String {
        match self {
            // dlm_controld has no change yet at this point; "ringid" is its nearest word
            // for waiting on corosync's view.
            Wait::Membership => "wait ringid".into(),
            Wait::Quorum => "wait quorum".into(),
            Wait::Fencing => "wait fencing".into(),
            Wait::Messages { missing, .. } => format!("wait messages {missing}"),
        }
    }

    /// For the debug log: a new line whenever the condition or the barrier changes.
    fn same_step(&self, other: &Wait) -> bool {
        match (self, other) {
            (Wait::Messages { phase: a, .. }, Wait::Messages { phase: b, .. }) => a == b,
            (a, b) => a == b,
        }
    }

    fn log_text(&self) -> String {
        match self {
            Wait::Membership => "waiting for the first CPG configurations".into(),
            Wait::Quorum => "wait quorum".into(),
            Wait::Fencing => "wait fencing".into(),
            Wait::Messages { phase, missing } => {
                let barrier = match phase {
                    Phase::Conditions | Phase::Start => "start",
                    Phase::Masters => "masters",
                    Phase::Locks => "locks",
                    Phase::Done => "done",
                };
                format!("recovery barrier {barrier}: wait messages {missing}")
            }
        }
    }
}

/// What `ls` waits for, `None` while it runs. The order is dlm_controld's
/// `wait_conditions_done`: quorum before fencing.
pub fn wait_of(node: &Node, ls: &Lockspace) -> Option<Wait> {
    let phase = ls.phase()?;
    if let Some(missing) = ls.barrier_waiting() {
        return Some(Wait::Messages { phase, missing });
    }
    if !ls.members.contains(&node.me) || node.startup.is_none() {
        return Some(Wait::Membership);
    }
    if node.config.enable_quorum_lockspace && !node.quorate {
        return Some(Wait::Quorum);
    }
    // Startup fencing holds every lockspace until the nodes missing at startup joined
    // or were fenced (node.rs `drive`).
    let startup = node.startup.as_ref().is_some_and(|s| !s.nodes.is_empty())
        || node.fencing.values().any(|f| f.startup);
    // A stateful-merged member is fenced before the lockspace recovers with it.
    if startup
        || ls.awaiting_fence().any(|n| node.fencing.contains_key(&n))
        || ls.members.iter().any(|m| node.merged.contains_key(m))
    {
        return Some(Wait::Fencing);
    }
    // The conditions hold and the Start is on its way (the core sends it in the same
    // step, so this is only seen between two inputs).
    Some(Wait::Messages {
        phase,
        missing: ls.members.len(),
    })
}

/// dlm_controld's `reason_str` for a CPG leave reason.
pub fn reason_str(reason: Option<LeaveReason>) -> &'static str {
    match reason {
        None => "none",
        Some(LeaveReason::Leave) => "leave",
        Some(LeaveReason::NodeDown) => "nodedown",
        Some(LeaveReason::ProcDown) => "procdown",
    }
}

#[derive(Clone, Debug, Default)]
pub struct History {
    me: NodeId,
    /// The ring sequence of the latest quorum notification.
    pub cluster_ring: u64,
    /// The cluster ring sequence when the daemons' group last changed (the CPG ring id
    /// itself is not reported by the corosync driver).
    pub daemon_ring: u64,
    pub daemon_members: usize,
    pub daemon_joined: usize,
    pub daemon_removed: usize,
    pub nodes: BTreeMap<NodeId, DaemonNode>,
    pub lockspaces: BTreeMap<String, LsHistory>,
}

impl History {
    pub fn new(me: NodeId) -> Self {
        History {
            me,
            ..Default::default()
        }
    }

    /// A configuration change, before the core sees it.
    pub fn confchg(&mut self, c: &Confchg, now: Clock) {
        if c.group == DAEMON_GROUP {
            self.daemon_ring = self.cluster_ring;
            self.daemon_members = c.members.len();
            self.daemon_joined = c.joined.len();
            self.daemon_removed = c.left.len();
            for m in &c.members {
                let n = self.nodes.entry(*m).or_default();
                if !n.member || c.joined.contains(m) {
                    n.member = true;
                    n.add_time = now.mono;
                }
            }
            for (m, why) in &c.left {
                let n = self.nodes.entry(*m).or_default();
                n.member = false;
                n.rem_time = now.mono;
                n.left_reason = Some(*why);
                if why.needs_fencing() {
                    n.fail_monotime = now.mono;
                    n.fail_walltime = now.wall;
                }
            }
            return;
        }
        let Some(name) = c.group.strip_prefix("dlm:ls:") else {
            return;
        };
        // The core ignores a change that does not include this node (the last one a
        // leaving node sees); so does the history.
        if !c.members.contains(&self.me) {
            return;
        }
        let h = self.lockspaces.entry(name.to_string()).or_default();
        h.seq += 1;
        let seq = h.seq;
        let failed = c.left.iter().filter(|(_, w)| w.needs_fencing()).count();
        match &mut h.next {
            Some(next) => {
                next.combined_seq = seq;
                next.members = c.members.clone();
                next.joined += c.joined.len();
                next.removed += c.left.len();
                next.failed += failed;
            }
            None => {
                h.next = Some(Change {
                    seq,
                    combined_seq: seq,
                    members: c.members.clone(),
                    joined: c.joined.len(),
                    removed: c.left.len(),
                    failed,
                })
            }
        }
        for m in &c.joined {
            h.nodes.entry(*m).or_default().added_seq = seq;
        }
        for m in &c.members {
            h.nodes.entry(*m).or_default();
        }
        for (m, why) in &c.left {
            let n = h.nodes.entry(*m).or_default();
            n.removed_seq = seq;
            if why.needs_fencing() {
                n.fail_reason = why.code();
                n.fail_monotime = now.mono;
            }
        }
    }

    /// A daemons'-group message, as delivered (before the core sees it).
    pub fn daemon_cpg(&mut self, from: NodeId, msg: &DaemonCpg, now: Clock) {
        let node = match msg {
            DaemonCpg::FenceResult { node, ok: true } | DaemonCpg::FenceAck { node } => *node,
            _ => return,
        };
        let n = self.nodes.entry(node).or_default();
        n.fence_monotime = now.mono;
        n.fence_walltime = now.wall;
        n.actor_done = from;
    }

    /// After the core handled an input: changes whose recovery completed become the
    /// started ones; lockspaces that are gone are forgotten. Returns debug-log lines for
    /// lockspaces whose wait changed.
    pub fn after(&mut self, node: &Node) -> Vec<String> {
        // Called after every input: with the lockspaces unchanged (the usual case) the
        // names are neither searched for nor copied.
        if self.lockspaces.len() != node.lockspaces.len()
            || !self.lockspaces.keys().eq(node.lockspaces.keys())
        {
            self.lockspaces
                .retain(|name, _| node.lockspaces.contains_key(name));
            for name in node.lockspaces.keys() {
                if !self.lockspaces.contains_key(name) {
                    self.lockspaces.insert(name.clone(), LsHistory::default());
                }
            }
        }
        let mut lines = Vec::new();
        for ((name, ls), h) in node.lockspaces.iter().zip(self.lockspaces.values_mut()) {
            let wait = wait_of(node, ls);
            if ls.running() {
                if let Some(done) = h.next.take() {
                    h.started = Some(done);
                }
            }
            match (&h.logged, &wait) {
                (Some(a), Some(b)) if a.same_step(b) => {}
                (_, Some(w)) => lines.push(format!("{name}: {}", w.log_text())),
                // The core logs the end of recovery itself ("dlm_recover ... done").
                (_, None) => {}
            }
            h.logged = wait;
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(group: &str, members: &[u32], joined: &[u32], left: &[(u32, LeaveReason)]) -> Confchg {
        Confchg {
            group: group.into(),
            members: members.to_vec(),
            joined: joined.to_vec(),
            left: left.to_vec(),
        }
    }

    #[test]
    fn daemon_nodes_record_joins_failures_and_fencing() {
        let mut h = History::new(1);
        h.cluster_ring = 8;
        let t = |mono, wall| Clock { mono, wall };
        h.confchg(&cc(DAEMON_GROUP, &[1, 2], &[1, 2], &[]), t(1, 1001));
        assert_eq!(h.daemon_ring, 8);
        assert!(h.nodes[&2].member);
        assert_eq!(h.nodes[&2].add_time, 1);
        h.confchg(
            &cc(DAEMON_GROUP, &[1], &[], &[(2, LeaveReason::NodeDown)]),
            t(5, 1005),
        );
        let n2 = &h.nodes[&2];
        assert!(!n2.member);
        assert_eq!(
            (n2.rem_time, n2.fail_monotime, n2.fail_walltime),
            (5, 5, 1005)
        );
        h.daemon_cpg(
            1,
            &DaemonCpg::FenceResult { node: 2, ok: false },
            t(6, 1006),
        );
        assert_eq!(h.nodes[&2].fence_monotime, 0, "a failed run fences nothing");
        h.daemon_cpg(1, &DaemonCpg::FenceResult { node: 2, ok: true }, t(7, 1007));
        let n2 = &h.nodes[&2];
        assert_eq!(
            (n2.fence_monotime, n2.fence_walltime, n2.actor_done),
            (7, 1007, 1)
        );
        // A clean leave is not a failure.
        h.confchg(&cc(DAEMON_GROUP, &[1, 3], &[3], &[]), t(8, 1008));
        h.confchg(
            &cc(DAEMON_GROUP, &[1], &[], &[(3, LeaveReason::Leave)]),
            t(9, 1009),
        );
        assert_eq!(h.nodes[&3].fail_monotime, 0);
        assert_eq!(h.nodes[&3].left_reason, Some(LeaveReason::Leave));
    }

    #[test]
    fn lockspace_changes_merge_while_one_is_pending() {
        let mut h = History::new(1);
        let g = "dlm:ls:alpha";
        h.confchg(&cc(g, &[1, 2, 3], &[1], &[]), Clock::default());
        h.confchg(
            &cc(g, &[1, 3], &[], &[(2, LeaveReason::NodeDown)]),
            Clock { mono: 4, wall: 0 },
        );
        let l = &h.lockspaces["alpha"];
        assert_eq!(
            l.next,
            Some(Change {
                seq: 1,
                combined_seq: 2,
                members: vec![1, 3],
                joined: 1,
                removed: 1,
                failed: 1,
            })
        );
        assert_eq!(l.nodes[&2].fail_reason, LeaveReason::NodeDown.code());
        assert_eq!(l.nodes[&2].removed_seq, 2);
        assert_eq!(
            l.nodes[&3].added_seq, 0,
            "a member from before this node joined"
        );
        // A change without this node (it left) is not recorded.
        h.confchg(
            &cc(g, &[3], &[], &[(1, LeaveReason::Leave)]),
            Clock::default(),
        );
        assert_eq!(h.lockspaces["alpha"].seq, 2);
    }
}
