//! The daemons' group rules: the stateful merge (dlm_controld's `receive_protocol` and
//! `daemon_fence_work`: who judges a merge, and who fences whom), and one fencing per
//! failure.

use super::{side_wins, CoreConfig, Node};
use crate::io::{Input, Output};
use crate::membership::{Confchg, LeaveReason, NodeId, Quorum, DAEMON_GROUP};
use crate::message::DaemonCpg;

fn quorum(n: &mut Node, members: &[NodeId], total: usize, ring: u64) -> Vec<Output> {
    let q = Quorum {
        quorate: members.len() * 2 > total,
        members: members.to_vec(),
        ring_seq: ring,
    };
    n.handle(Input::Quorum(q), ring * 100)
}

fn daemon_change(n: &mut Node, members: &[NodeId], joined: &[NodeId], left: &[NodeId]) {
    let c = Confchg {
        group: DAEMON_GROUP.to_string(),
        members: members.to_vec(),
        joined: joined.to_vec(),
        left: left.iter().map(|m| (*m, LeaveReason::NodeDown)).collect(),
    };
    let now = n.now;
    n.handle(Input::Confchg(c), now);
}

fn hello(n: &mut Node, from: NodeId, stateful: bool, side: NodeId) -> Vec<Output> {
    let now = n.now;
    let msg = DaemonCpg::Hello { stateful, side };
    n.handle(Input::DaemonCpg { from, msg }, now)
}

fn fence_starts(out: &[Output]) -> Vec<NodeId> {
    out.iter()
        .filter_map(|o| match o {
            Output::McastDaemon(DaemonCpg::FenceStart { node }) => Some(*node),
            _ => None,
        })
        .collect()
}

/// Node `me` of three, started with the others and holding lock state, cut off alone
/// (`alone`) or with the third node, then merged with the node it lost.
fn partitioned(me: NodeId, alone: bool) -> Node {
    let mut n = Node::new(me, CoreConfig::default());
    quorum(&mut n, &[1, 2, 3], 3, 1);
    daemon_change(&mut n, &[1, 2, 3], &[1, 2, 3], &[]);
    for m in 1..=3 {
        hello(&mut n, m, false, m);
    }
    n.stateful = true;
    let (ring, gone): (&[NodeId], &[NodeId]) = if alone {
        (&[1], &[2, 3])
    } else {
        (&[2, 3], &[1])
    };
    quorum(&mut n, ring, 3, 2);
    let members: Vec<NodeId> = ring.to_vec();
    daemon_change(&mut n, &members, &[], gone);
    quorum(&mut n, &[1, 2, 3], 3, 3);
    daemon_change(&mut n, &[1, 2, 3], gone, &[]);
    n
}

#[test]
fn sides_compare_alike_from_either_end() {
    let cases: [(&[NodeId], &[NodeId]); 4] = [
        (&[2, 3], &[1]),
        (&[1], &[2]),
        (&[4], &[2, 3]),
        (&[1, 5], &[2, 3]),
    ];
    for (a, b) in cases {
        assert!(side_wins(a, b) != side_wins(b, a), "{a:?} vs {b:?}");
    }
    assert!(side_wins(&[2, 3], &[1]));
    assert!(side_wins(&[1, 5], &[2, 3]));
}

/// Seed 96426: a fresh daemon runs a lockspace between its Hello and the others'. The
/// others took it in by its stateless Hello; it judges them on that same Hello, so it
/// sees no merge either.
#[test]
fn a_fresh_daemon_is_judged_on_its_hello_not_its_state_of_the_moment() {
    let mut n = Node::new(1, CoreConfig::default());
    quorum(&mut n, &[1, 2, 3], 3, 1);
    daemon_change(&mut n, &[1, 2, 3], &[1], &[]);
    // It ran a lockspace before any Hello was delivered, its own included.
    n.stateful = true;
    hello(&mut n, 2, true, 2);
    hello(&mut n, 1, false, 1);
    hello(&mut n, 3, true, 2);
    assert!(n.merged.is_empty(), "merged {:?}", n.merged);
    assert_eq!(n.clean.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
}

/// The side that kept quorum fences the node that ran lockspaces without it, at once;
/// that node, on the losing side, waits to be fenced.
#[test]
fn the_side_that_kept_quorum_fences_the_merged_node() {
    let mut keeper = partitioned(2, false);
    hello(&mut keeper, 2, true, 2);
    hello(&mut keeper, 3, true, 2);
    hello(&mut keeper, 1, true, 1);
    assert!(keeper.merged.contains_key(&1));
    // Its FenceStart went out when node 1 left; the merge leaves it to this node.
    let need = &keeper.fencing[&1];
    assert_eq!((need.actors.as_slice(), need.ring), (&[2][..], 0));
    let msg = DaemonCpg::FenceStart { node: 1 };
    let out = keeper.handle(Input::DaemonCpg { from: 2, msg }, 400);
    assert!(out.contains(&Output::Fence { node: 1 }), "{out:?}");

    let mut lone = partitioned(1, true);
    hello(&mut lone, 1, true, 1);
    hello(&mut lone, 2, true, 2);
    let out = hello(&mut lone, 3, true, 2);
    assert_eq!(lone.merged.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    assert!(fence_starts(&out).is_empty(), "{out:?}");
}

/// No side kept quorum (three partitions of a five-node cluster): the largest side
/// fences the others, even when the lowest member is on a smaller one.
#[test]
fn without_quorum_kept_the_largest_side_fences() {
    let mut n = Node::new(2, CoreConfig::default());
    quorum(&mut n, &[1, 2, 3, 4, 5], 5, 1);
    daemon_change(&mut n, &[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5], &[]);
    for m in 1..=5 {
        hello(&mut n, m, false, m);
    }
    n.stateful = true;
    quorum(&mut n, &[2, 3], 5, 2);
    daemon_change(&mut n, &[2, 3], &[], &[1, 4, 5]);
    quorum(&mut n, &[1, 2, 3, 4, 5], 5, 3);
    daemon_change(&mut n, &[1, 2, 3, 4, 5], &[1, 4, 5], &[]);
    hello(&mut n, 2, true, 2);
    hello(&mut n, 3, true, 2);
    hello(&mut n, 1, true, 1);
    hello(&mut n, 4, true, 4);
    let out = hello(&mut n, 5, true, 5);
    assert_eq!(fence_starts(&out), vec![1, 4, 5]);
}

/// A daemon killed while its node stays up leaves its lockspaces' groups and the daemons'
/// group separately: the second report, while the agents run, is the same failure, and
/// a success ends the fencing (tests/dlm_cluster.rs saw the node fenced twice).
#[test]
fn one_failure_seen_in_two_groups_is_fenced_once() {
    let mut n = Node::new(1, CoreConfig::default());
    quorum(&mut n, &[1, 2, 3], 3, 1);
    daemon_change(&mut n, &[1, 2, 3], &[1, 2, 3], &[]);
    for m in 1..=3 {
        hello(&mut n, m, false, m);
    }
    let ls = Confchg {
        group: "dlm:ls:x".to_string(),
        members: vec![1, 2],
        joined: vec![],
        left: vec![(3, LeaveReason::ProcDown)],
    };
    let out = n.handle(Input::Confchg(ls), 200);
    assert_eq!(fence_starts(&out), vec![3]);
    let msg = DaemonCpg::FenceStart { node: 3 };
    n.handle(Input::DaemonCpg { from: 1, msg }, 201);
    let daemons = Confchg {
        group: DAEMON_GROUP.to_string(),
        members: vec![1, 2],
        joined: vec![],
        left: vec![(3, LeaveReason::ProcDown)],
    };
    n.handle(Input::Confchg(daemons), 202);
    assert_eq!(n.fencing[&3].failures, 1);
    n.handle(Input::FenceDone { node: 3, ok: true }, 300);
    let msg = DaemonCpg::FenceResult { node: 3, ok: true };
    let out = n.handle(Input::DaemonCpg { from: 1, msg }, 301);
    assert!(n.fencing.is_empty(), "{:?}", n.fencing);
    assert!(fence_starts(&out).is_empty());
}
