//! One node's lock manager, sans-IO: every lockspace it joined, its view of the cluster
//! (daemon group members, quorum) and the fencing state that gates recovery
//! (dlm_controld's `daemon_fence_work`, in CPG order). Drivers feed `Input`s and carry
//! out `Output`s; no clock and no sockets here.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{ClientId, Errno, Request};
use crate::flags::libc_errno::{EBUSY, EINVAL, ENOENT};
use crate::io::{Input, Output};
use crate::lockspace::Lockspace;
use crate::membership::{lockspace_group, Confchg, LeaveReason, NodeId, DAEMON_GROUP};
use crate::message::DaemonCpg;

/// The settings the core acts on (a subset of dlm.conf).
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub enable_fencing: bool,
    pub enable_quorum_fencing: bool,
    pub enable_quorum_lockspace: bool,
    /// How long an unused resource keeps its master (the kernel's toss_secs).
    pub toss_ms: u64,
    /// Wait before running the agents again after a failure.
    pub fence_retry_ms: u64,
    /// Startup fencing (dlm.conf `enable_startup_fencing`, `post_join_delay`): the
    /// configured nodes (corosync's nodelist) that are not in the daemon group when this
    /// daemon joins it, and do not join it cleanly within `post_join_delay_ms`, are
    /// fenced before any lockspace recovers. A fresh daemon knows nothing of what such
    /// a node held (it may sit in another partition with locks granted before): only
    /// fencing makes its locks safe to ignore. Empty `nodes`: no startup fencing.
    pub enable_startup_fencing: bool,
    pub post_join_delay_ms: u64,
    pub nodes: Vec<NodeId>,
    /// Entries per recovery message (Masters, Locks). A name is at most 64 bytes and a
    /// recovered lock about 130, so 4096 keeps each CPG message far below corosync's
    /// limit of about 1 MiB however many locks a lockspace holds.
    pub recover_chunk: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            enable_fencing: true,
            enable_quorum_fencing: true,
            enable_quorum_lockspace: true,
            toss_ms: 10_000,
            fence_retry_ms: 5_000,
            enable_startup_fencing: true,
            post_join_delay_ms: 30_000,
            nodes: Vec::new(),
            recover_chunk: 4096,
        }
    }
}

/// Fencing needed for one node (dlm_controld's `need_fencing`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceNeed {
    /// A failure not yet covered by a FenceStart.
    pub uncovered: bool,
    /// Who ran the agents for the covered failures, result pending.
    pub started_by: Option<NodeId>,
    /// Not before this time (after a failed attempt).
    pub retry_at: u64,
    pub failures: u32,
    /// Who may run the agents: the daemons that saw the failure (dlm_controld's
    /// `set_fence_actors`), lowest first.
    pub actors: Vec<NodeId>,
    /// Startup fencing: no lockspace recovers until it is done.
    pub startup: bool,
    /// The quorum ring known when the failure was seen. The agents run only once the
    /// quorum view is as new as the failure (a later ring, or one without the node):
    /// corosync reports CPG and quorum changes separately, and a partitioned node that
    /// saw its peers leave before hearing it lost quorum must not fence them
    /// (dlm_controld's "wait ringid"). 0 when there is no newer ring to wait for: a
    /// daemon that died while its node stayed in corosync (procdown) is in this ring.
    pub ring: u64,
}

/// Startup fencing's wait: configured nodes not (cleanly) in the daemon group yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Startup {
    pub nodes: BTreeSet<NodeId>,
}

pub struct Node {
    pub me: NodeId,
    pub config: CoreConfig,
    pub quorate: bool,
    /// The latest quorum report: its ring and members.
    pub quorum_ring: u64,
    pub quorum_members: Vec<NodeId>,
    pub daemon_members: Vec<NodeId>,
    pub lockspaces: BTreeMap<String, Lockspace>,
    pub fencing: BTreeMap<NodeId, FenceNeed>,
    /// `None` until this daemon joins the daemon group; the nodes then still to join.
    pub startup: Option<Startup>,
    /// This daemon has run a lockspace (dlm_controld's `PV_STATEFUL`, never cleared): it
    /// may hold locks that daemons it meets by a merge of rings know nothing of.
    pub stateful: bool,
    /// Daemon members taken in since they (last) joined the group, by a Hello that was
    /// not a stateful merge, with whether they have run a lockspace (dlm_controld's
    /// "clean daemon members").
    pub clean: BTreeMap<NodeId, bool>,
    /// Daemon members met by a stateful merge (both sides ran lockspaces apart), with
    /// the side their judged Hello named (the lowest node of their partition). Never
    /// taken in: they are fenced (`merge_allows_fencing`), and no lockspace recovers
    /// with them.
    pub merged: BTreeMap<NodeId, NodeId>,
    /// Merged members this daemon asked corosync to remove (once per join).
    kicked: BTreeSet<NodeId>,
    /// A stateful merge holds this node's fencing (it is on the smaller side): logged
    /// once per wait.
    merge_wait: bool,
    /// Whether this daemon's first Hello delivered since the daemons' group last took in
    /// members said it ran lockspaces. Whether a newcomer and this daemon ran lockspaces apart
    /// is judged on the two Hellos as CPG delivered them, not on this daemon's state of
    /// the moment, so that both judge the pair alike: a daemon that became stateful
    /// between its Hello and the newcomer's would call a merge the newcomer (having seen
    /// a stateless Hello) never sees, and neither side would fence the other.
    announced: Option<bool>,
    /// First Hellos of newcomers delivered before this daemon's own: (stateful, side,
    /// stateful said in a later Hello), judged once this daemon's own is delivered.
    unjudged: BTreeMap<NodeId, (bool, NodeId, bool)>,
    /// Bumped each time the cluster becomes quorate: a quorate spell is named by it.
    quorate_spell: u64,
    /// Daemon members that left the group while this node was quorate, with the spell
    /// they left in. Still in that spell when such a node comes back stateful, this node
    /// kept quorum all the while it was gone: the node ran lockspaces in a partition
    /// without quorum, and is the one to go (dlm_controld's `daemon_rem_time` against
    /// `cluster_quorate_monotime` in `receive_protocol`).
    left_while_quorate: BTreeMap<NodeId, u64>,
    /// The last time a node joined the daemon group or the cluster (dlm_controld's
    /// `fence_delay_begin`). Startup fencing, and the fencing of a node that left the
    /// ring and is back in it, wait until post_join_delay has passed since: a node whose
    /// ring merges with ours, or that just gave us quorum, has that long to say Hello (and
    /// be taken in, or found a stateful merge) first. dlm_controld holds every fence
    /// request so; a node still gone (or whose daemon died in our ring) is fenced at once.
    pub fence_delay_from: u64,
    /// Nodes fenced: a leave of theirs reported later (from any group) is the fenced
    /// daemon going, not a new failure. Until they join the daemons' group again.
    fenced_members: BTreeSet<NodeId>,
    /// FenceStarts this node multicast that are not delivered yet.
    starting: BTreeSet<NodeId>,
    /// Agents this node runs now.
    running_agents: BTreeSet<NodeId>,
    pub now: u64,
    out: Vec<Output>,
}

impl Node {
    /// What a starting daemon does first: join the daemons' group.
    pub fn start(&mut self) -> Vec<Output> {
        vec![Output::CpgJoin(DAEMON_GROUP.to_string())]
    }

    pub fn new(me: NodeId, config: CoreConfig) -> Self {
        Node {
            me,
            config,
            quorate: false,
            quorum_ring: 0,
            quorum_members: Vec::new(),
            daemon_members: Vec::new(),
            lockspaces: BTreeMap::new(),
            fencing: BTreeMap::new(),
            startup: None,
            stateful: false,
            clean: BTreeMap::new(),
            merged: BTreeMap::new(),
            kicked: BTreeSet::new(),
            merge_wait: false,
            announced: None,
            unjudged: BTreeMap::new(),
            quorate_spell: 0,
            left_while_quorate: BTreeMap::new(),
            fence_delay_from: 0,
            fenced_members: BTreeSet::new(),
            starting: BTreeSet::new(),
            running_agents: BTreeSet::new(),
            now: 0,
            out: Vec::new(),
        }
    }

    /// Feed one input at time `now` (ms, any monotonic origin); returns what to do.
    pub fn handle(&mut self, input: Input, now: u64) -> Vec<Output> {
        self.now = now;
        let mut out = std::mem::take(&mut self.out);
        match input {
            Input::Client {
                client,
                req,
                request,
            } => self.client(client, req, request, &mut out),
            Input::ClientGone(c) => {
                for ls in self.lockspaces.values_mut() {
                    ls.client_gone(c, now, &mut out);
                }
            }
            Input::Peer { from, msg } => {
                if let Some(ls) = self.lockspaces.get_mut(msg.lockspace()) {
                    ls.on_msg(from, msg, now, &mut out);
                }
            }
            Input::Confchg(c) => self.confchg(c, &mut out),
            Input::LsCpg { ls, from, msg } => {
                if let Some(l) = self.lockspaces.get_mut(&ls) {
                    l.on_cpg(from, msg, now, &mut out);
                }
            }
            Input::DaemonCpg { from, msg } => self.daemon_cpg(from, msg, &mut out),
            Input::Quorum(q) => {
                if q.quorate != self.quorate {
                    out.push(Output::Log(format!(
                        "cluster is {} (ring {})",
                        if q.quorate { "quorate" } else { "not quorate" },
                        q.ring_seq
                    )));
                }
                if q.members.iter().any(|m| !self.quorum_members.contains(m)) {
                    self.fence_delay_from = now;
                }
                if q.quorate && !self.quorate {
                    self.quorate_spell += 1;
                }
                self.quorate = q.quorate;
                self.quorum_ring = q.ring_seq;
                self.quorum_members = q.members;
            }
            Input::FenceDone { node, ok } => {
                self.running_agents.remove(&node);
                out.push(Output::Log(format!(
                    "fence result {node} {}",
                    if ok { "success" } else { "failed" }
                )));
                out.push(Output::McastDaemon(DaemonCpg::FenceResult { node, ok }));
            }
            Input::Tick => {
                for ls in self.lockspaces.values_mut() {
                    ls.tick(now, &mut out);
                }
            }
        }
        self.drive(&mut out);
        out
    }

    fn client(&mut self, client: ClientId, req: u64, request: Request, out: &mut Vec<Output>) {
        let reply = |out: &mut Vec<Output>, result| {
            out.push(Output::Reply {
                client,
                req,
                result,
            })
        };
        match request {
            Request::Join { ls } => {
                if ls.is_empty() || ls.len() > crate::LOCKSPACE_LEN {
                    return reply(
                        out,
                        Err(Errno::new(EINVAL, "lockspace name must be 1 to 64 bytes")),
                    );
                }
                match self.lockspaces.get_mut(&ls) {
                    Some(l) if l.joined => reply(out, Ok(0)),
                    Some(l) => l.join_waiters.push((client, req)),
                    None => {
                        let mut l = Lockspace::new(
                            ls.clone(),
                            self.me,
                            self.config.toss_ms,
                            self.config.recover_chunk,
                        );
                        l.join_waiters.push((client, req));
                        self.lockspaces.insert(ls.clone(), l);
                        out.push(Output::CpgJoin(lockspace_group(&ls)));
                    }
                }
            }
            Request::Leave { ls, force } => match self.lockspaces.get_mut(&ls) {
                None => reply(
                    out,
                    Err(Errno::new(ENOENT, format!("no lockspace \"{ls}\""))),
                ),
                Some(l) if l.lock_count() > 0 && !force => reply(
                    out,
                    Err(Errno::new(EBUSY, format!("lockspace \"{ls}\" has locks"))),
                ),
                Some(l) => {
                    l.forget_all();
                    self.lockspaces.remove(&ls);
                    out.push(Output::CpgLeave(lockspace_group(&ls)));
                    reply(out, Ok(0));
                }
            },
            Request::FenceAck { node } => {
                out.push(Output::McastDaemon(DaemonCpg::FenceAck { node }));
                reply(out, Ok(0));
            }
            Request::Lock { ref ls, .. } | Request::Unlock { ref ls, .. } => {
                match self.lockspaces.get_mut(ls) {
                    Some(l) if l.joined || !l.running() => {
                        l.request(client, req, request, self.now, out)
                    }
                    _ => reply(
                        out,
                        Err(Errno::new(
                            ENOENT,
                            format!("no lockspace \"{ls}\" on this node"),
                        )),
                    ),
                }
            }
        }
    }

    /// A failure of `node` seen by `actors`; the agents wait for a quorum ring newer
    /// than `ring`.
    fn need_fencing(&mut self, node: NodeId, actors: &[NodeId], ring: u64) {
        if self.config.enable_fencing && node != self.me {
            let n = self.fencing.entry(node).or_default();
            n.uncovered = true;
            n.failures += 1;
            n.actors = actors.iter().copied().filter(|m| *m != node).collect();
            n.startup = false;
            n.ring = ring;
        }
    }

    /// This daemon's Hello: whether it ran a lockspace, and its side (the lowest of
    /// itself and the members it took in: before a merge's Hellos are heard, the
    /// partition it was in).
    fn say_hello(&self) -> Output {
        let side = self
            .clean
            .keys()
            .copied()
            .filter(|m| self.daemon_members.contains(m))
            .chain([self.me])
            .min()
            .unwrap_or(self.me);
        Output::McastDaemon(DaemonCpg::Hello {
            stateful: self.stateful,
            side,
        })
    }

    /// A CPG configuration change: failures to fence first, then the daemons' group's
    /// bookkeeping or the lockspace's stop.
    fn confchg(&mut self, c: Confchg, out: &mut Vec<Output>) {
        self.note_failures(&c);
        if c.group == DAEMON_GROUP {
            self.daemon_confchg(c, out);
        } else {
            self.lockspace_confchg(c, out);
        }
    }

    /// Nodes that left a group in a way that needs fencing (and are not fenced yet),
    /// with the members that saw them go as the ones to run the agents.
    fn note_failures(&mut self, c: &Confchg) {
        let witnesses = if c.group == DAEMON_GROUP {
            // A node added in the same change never saw the failure (and may not know
            // of it at all): not an actor (dlm_controld's set_fence_actors).
            c.members
                .iter()
                .copied()
                .filter(|m| !c.joined.contains(m))
                .collect()
        } else {
            self.daemon_members.clone()
        };
        for (n, why) in &c.left {
            if self.fenced_members.contains(n) {
                continue;
            }
            // Already being fenced: the same failure seen in another group (a daemon's
            // lockspaces and the daemons' group report its going separately, in no set
            // order), or the fencing itself. dlm_controld: "already needs fencing".
            if why.needs_fencing() && !self.fencing.contains_key(n) {
                // A daemon gone while its node stays in the ring (procdown) is in the
                // ring we know: nothing newer to wait for.
                let ring = match why {
                    LeaveReason::ProcDown => 0,
                    _ => self.quorum_ring,
                };
                self.need_fencing(*n, &witnesses, ring);
            }
        }
    }

    /// A change of the daemons' group: who is a member, the Hello that answers every
    /// join, startup fencing's wait when this daemon is the one joining, and the fencing
    /// left by actors that went away.
    fn daemon_confchg(&mut self, c: Confchg, out: &mut Vec<Output>) {
        for (n, _) in &c.left {
            self.clean.remove(n);
            self.unjudged.remove(n);
            if self.quorate {
                self.left_while_quorate.insert(*n, self.quorate_spell);
            } else {
                self.left_while_quorate.remove(n);
            }
            self.merged.remove(n);
            self.kicked.remove(n);
            // Kept until it joins again: its lockspaces' confchgs may come later.
            if self.fenced_members.contains(n) {
                out.push(Output::Log(format!(
                    "daemon group: node {n} left after it was fenced"
                )));
            }
        }
        for n in &c.joined {
            self.fenced_members.remove(n);
        }
        if !c.joined.is_empty() {
            // Every change that adds members, whatever its cause (a join, a merge of
            // rings), is answered by every member with a Hello saying whether it
            // holds lock state (dlm_controld's send_protocol on `joined_list`).
            out.push(self.say_hello());
            self.fence_delay_from = self.now;
            // The Hellos answering this change are judged against the one this daemon
            // sends now (the first of its own delivered after the change).
            self.announced = None;
        }
        if c.joined.contains(&self.me) {
            self.begin_startup(&c.members, out);
        }
        for (n, why) in &c.left {
            out.push(Output::Log(format!(
                "daemon group: node {n} left (reason {})",
                why.code()
            )));
            // An actor that went away leaves its fencing to the next one, for good:
            // if it comes back it remembers nothing of the failure (dlm_controld's
            // get_fence_actor drops an actor that is gone).
            for need in self.fencing.values_mut() {
                need.actors.retain(|a| a != n);
                if need.started_by == Some(*n) {
                    need.started_by = None;
                    need.uncovered = true;
                }
            }
        }
        self.daemon_members = c.members;
    }

    /// This daemon joined the daemons' group: the configured nodes not in it are waited
    /// for (startup fencing), unless startup fencing is off.
    fn begin_startup(&mut self, members: &[NodeId], out: &mut Vec<Output>) {
        if self.startup.is_some()
            || !self.config.enable_fencing
            || !self.config.enable_startup_fencing
        {
            return;
        }
        let nodes: BTreeSet<NodeId> = self
            .config
            .nodes
            .iter()
            .copied()
            .filter(|n| *n != self.me && !members.contains(n))
            .collect();
        if !nodes.is_empty() {
            out.push(Output::Log(format!(
                "startup: nodes {nodes:?} are not running the daemon: fenced \
                 unless they join within post_join_delay"
            )));
        }
        self.startup = Some(Startup { nodes });
    }

    /// A change of one of this node's lockspace groups: the lockspace stops and its
    /// recovery starts over.
    fn lockspace_confchg(&mut self, c: Confchg, out: &mut Vec<Output>) {
        let Some(name) = c.group.strip_prefix("dlm:ls:") else {
            return;
        };
        let Some(ls) = self.lockspaces.get_mut(name) else {
            return;
        };
        if !c.members.contains(&self.me) {
            return;
        }
        let left: Vec<(NodeId, bool)> = c
            .left
            .iter()
            .map(|(n, why)| (*n, why.needs_fencing() && self.config.enable_fencing))
            .collect();
        out.push(Output::Log(format!(
            "{name}: stop_kernel, members {:?} joined {:?} left {:?}",
            c.members, c.joined, c.left
        )));
        ls.confchg(c.members, &left, self.now);
    }

    fn daemon_cpg(&mut self, from: NodeId, msg: DaemonCpg, out: &mut Vec<Output>) {
        match msg {
            DaemonCpg::FenceStart { node } => {
                if from == self.me {
                    self.starting.remove(&node);
                }
                let Some(need) = self.fencing.get_mut(&node) else {
                    return;
                };
                if need.uncovered && need.started_by.is_none() {
                    need.uncovered = false;
                    need.started_by = Some(from);
                    if from == self.me {
                        out.push(Output::Log(format!(
                            "fence request {node} (actor {})",
                            self.me
                        )));
                        self.running_agents.insert(node);
                        out.push(Output::Fence { node });
                    }
                }
            }
            DaemonCpg::FenceResult { node, ok } => {
                let now = self.now;
                let retry = self.config.fence_retry_ms;
                let Some(need) = self.fencing.get_mut(&node) else {
                    return;
                };
                if need.started_by != Some(from) {
                    return;
                }
                need.started_by = None;
                if !ok {
                    need.uncovered = true;
                    need.retry_at = now + retry;
                    // The next actor tries (dlm_controld's clear_fence_actor): the
                    // failed one may be the one that cannot reach the device. It
                    // comes round again once the others have tried.
                    if let Some(i) = need.actors.iter().position(|a| *a == from) {
                        let a = need.actors.remove(i);
                        need.actors.push(a);
                    }
                    out.push(Output::Log(format!("fence status {node} failed: retrying")));
                } else if !need.uncovered {
                    self.fencing.remove(&node);
                    // A leave of it reported after this (its lockspaces' groups come
                    // over other connections, in no set order) is the fenced daemon's.
                    self.fenced_members.insert(node);
                }
            }
            DaemonCpg::Hello { stateful, side } => self.hello(from, stateful, side, out),
            DaemonCpg::FenceAck { node } => {
                if self.fencing.remove(&node).is_some() {
                    out.push(Output::Log(format!(
                        "fence_ack {node}: recorded as fenced by an admin"
                    )));
                }
            }
        }
    }

    /// A member's Hello (dlm_controld's `receive_protocol`). The first since it joined
    /// takes it in as a clean member, unless both it and this daemon ran lockspaces
    /// apart: a stateful merge. A clean member no longer waits for startup fencing, and
    /// counts as fenced (dlm_controld's `is_clean_daemon_member`). "This daemon ran
    /// lockspaces" is what its own first Hello after the change said (`announced`), so
    /// a newcomer's Hello delivered before that one waits for it: every pair is judged
    /// on the same two Hellos, in CPG order, by both its members.
    fn hello(&mut self, from: NodeId, stateful: bool, side: NodeId, out: &mut Vec<Output>) {
        if from == self.me {
            if self.announced.is_none() {
                self.announced = Some(stateful);
                for (m, (first, side, later)) in std::mem::take(&mut self.unjudged) {
                    self.judge(m, first, side, out);
                    if let Some(known) = self.clean.get_mut(&m) {
                        *known |= later;
                    }
                }
            }
            return;
        }
        if !self.daemon_members.contains(&from) || self.merged.contains_key(&from) {
            return;
        }
        if let Some(known) = self.clean.get_mut(&from) {
            // Taken in already: it announces that it now runs a lockspace.
            *known |= stateful;
            return;
        }
        if self.announced.is_none() {
            // Judged when this daemon's own Hello is delivered.
            let e = self.unjudged.entry(from).or_insert((stateful, side, false));
            e.2 |= stateful;
            return;
        }
        self.judge(from, stateful, side, out);
    }

    /// A newcomer's first Hello against this daemon's own (`announced`): taken in as a
    /// clean member, unless both ran lockspaces apart.
    fn judge(&mut self, from: NodeId, stateful: bool, side: NodeId, out: &mut Vec<Output>) {
        let mine = self.announced == Some(true);
        if stateful && mine {
            self.merged.insert(from, side);
            out.push(Output::Log(format!(
                "daemon node {from} stateful merge: it ran lockspaces apart from this \
                 node; it is fenced, not taken in"
            )));
            return;
        }
        self.clean.insert(from, stateful);
        if let Some(s) = &mut self.startup {
            s.nodes.remove(&from);
        }
        // A daemon starts clean only if the one before it on that node ended without
        // lock state, or the node was rebooted (daemon/lockstate.rs): its clients are gone.
        if self.fencing.remove(&from).is_some() {
            out.push(Output::Log(format!(
                "node {from} rejoined cleanly: counts as fenced"
            )));
        }
    }

    /// Whether this daemon may fence while stateful-merged members are in the group,
    /// and the merged members it fences (dlm_controld's two stateful-merge rules):
    /// - a member that was gone while this node kept quorum ran lockspaces without
    ///   quorum: this node fences it at once (`receive_protocol` kicks such a node);
    /// - otherwise (no side kept quorum: an even split), one side acts, once every
    ///   member said Hello (`daemon_fence_work`'s `kick_stateful_merge_members`, see
    ///   `larger_side_kicks`).
    ///
    /// Both rules rest on what every member sees alike (its own quorum history, Hellos
    /// judged in pairs in CPG order): a side id a daemon computes at the moment would
    /// change as members come and go. Every other member does no fencing until the
    /// merged members are gone, as dlm_controld waits "to clear merge".
    fn merge_allows_fencing(&mut self, out: &mut Vec<Output>) -> bool {
        let merged: Vec<NodeId> = self
            .daemon_members
            .iter()
            .copied()
            .filter(|m| self.merged.contains_key(m))
            .collect();
        if merged.is_empty() {
            self.merge_wait = false;
            return true;
        }
        let kept: Vec<NodeId> = merged
            .iter()
            .copied()
            .filter(|m| self.kept_quorum_without(*m))
            .collect();
        let victims = if !kept.is_empty() {
            kept
        } else if self.larger_side_kicks(&merged, out) {
            merged
        } else {
            return false;
        };
        self.merge_wait = false;
        for m in victims {
            self.fence_merged(m, out);
            // Only a fenced member is removed: of two sides that both judge themselves
            // the ones to act (two_node keeps both quorate; a side's count can be
            // wrong), the one whose fencing failed — because it was fenced itself —
            // must not be the one that removes the other.
            if self.fenced_members.contains(&m) {
                self.kick(m, out);
            }
        }
        true
    }

    /// Whether this node was quorate when `m` left the daemons' group and has stayed
    /// so since (dlm_controld: `cluster_quorate && cluster_quorate_monotime <
    /// node->daemon_rem_time`).
    fn kept_quorum_without(&self, m: NodeId) -> bool {
        self.quorate && self.left_while_quorate.get(&m) == Some(&self.quorate_spell)
    }

    /// No side kept quorum (an even split). dlm_controld lets the lowest daemon member
    /// kick the merged ones if it counts `clean >= merged`; but the lowest member may be
    /// a fresh daemon that sees no merge at all, and then nobody acts. So the largest
    /// side acts (on a tie, the one with the lowest node), once no member is unheard.
    /// Each side is counted as its members and the others see it: this node and the
    /// members it had taken in that ran lockspaces (its partition), and the merged
    /// members grouped by the side their judged Hello named. A fresh daemon is clean to
    /// every side and counts for none. Exactly one side is the largest, so exactly one
    /// acts; with three sides or more too, as long as their members agree on who they
    /// had taken in (if not, a side looks smaller to itself than to others).
    fn larger_side_kicks(&mut self, merged: &[NodeId], out: &mut Vec<Output>) -> bool {
        let heard =
            |m: &NodeId| *m == self.me || self.clean.contains_key(m) || self.merged.contains_key(m);
        let part = self.daemon_members.iter().filter(|m| !heard(m)).count();
        let ours: Vec<NodeId> = self
            .daemon_members
            .iter()
            .copied()
            .filter(|m| *m == self.me || self.clean.get(m) == Some(&true))
            .collect();
        let mut sides: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        for m in merged {
            sides.entry(self.merged[m]).or_default().push(*m);
        }
        if part == 0 && sides.values().all(|theirs| side_wins(&ours, theirs)) {
            return true;
        }
        if !self.merge_wait {
            self.merge_wait = true;
            out.push(Output::Log(format!(
                "stateful merge: wait to clear merge {} ours {} part {part}: {}",
                merged.len(),
                ours.len(),
                if part > 0 {
                    "waiting for their Hello"
                } else {
                    "the other side fences this one"
                }
            )));
        }
        false
    }

    /// Removes a stateful-merged member from the cluster once it is fenced, once
    /// (dlm_controld's `kick_node_from_cluster`): no lockspace recovers
    /// while it is a member, and its daemon may never leave by itself — a node fenced
    /// through its storage (fence_scsi) keeps running and, after a partition, waits to
    /// fence the other side, which it may not. Its corosync exits; it comes back by
    /// starting again (a reboot, or the watchdog's).
    fn kick(&mut self, m: NodeId, out: &mut Vec<Output>) {
        if !self.kicked.insert(m) {
            return;
        }
        out.push(Output::Log(format!(
            "stateful merge: removing node {m} from the cluster (corosync_cfg_kill_node)"
        )));
        out.push(Output::Kick { node: m });
    }

    /// Fences a stateful-merged member (dlm_controld kicks it out of the cluster; hydra
    /// fences it, as it would have after the partition). This node runs the agents
    /// itself: the others that judge alike do too, and the first FenceStart delivered
    /// wins, as for startup fencing.
    fn fence_merged(&mut self, m: NodeId, out: &mut Vec<Output>) {
        if self.fenced_members.contains(&m) || !self.config.enable_fencing {
            return;
        }
        let me = self.me;
        match self.fencing.get_mut(&m) {
            // No Hello left to wait for: the merge is found.
            Some(need) => {
                need.ring = 0;
                if need.started_by.is_none() {
                    need.actors = vec![me];
                }
            }
            None => {
                out.push(Output::Log(format!(
                    "stateful merge: fencing node {m} (it ran lockspaces apart)"
                )));
                self.need_fencing(m, &[me], 0);
            }
        }
    }

    /// After every input: run fencing if this node is the actor, and let lockspaces
    /// whose conditions now hold start recovery.
    fn drive(&mut self, out: &mut Vec<Output>) {
        if !self.stateful && self.lockspaces.values().any(Lockspace::has_run) {
            // Past a lockspace's first Start barrier, before it grants anything: the
            // Hello goes out in the daemons' group ahead of any later failure of ours.
            self.stateful = true;
            out.push(self.say_hello());
        }
        let may_fence =
            (!self.config.enable_quorum_fencing || self.quorate) && self.merge_allows_fencing(out);
        if let Some(s) = &mut self.startup {
            let due = self.fence_delay_from + self.config.post_join_delay_ms;
            if may_fence && !s.nodes.is_empty() && self.now >= due {
                let nodes = std::mem::take(&mut s.nodes);
                for n in nodes {
                    out.push(Output::Log(format!(
                        "startup: node {n} did not join within post_join_delay: fencing"
                    )));
                    // Only this daemon (and others that started with it) lack the node's
                    // history, so it runs the agents itself; FenceStart's order keeps
                    // two such daemons from both running them.
                    // Not a failure seen in some ring: no newer ring to wait for.
                    self.need_fencing(n, &[self.me], 0);
                    if let Some(need) = self.fencing.get_mut(&n) {
                        need.startup = true;
                    }
                }
            }
        }
        let startup_done = self.startup.as_ref().is_some_and(|s| s.nodes.is_empty())
            && !self.fencing.values().any(|f| f.startup);
        // A node that left the ring and is back in it may be about to say Hello (taken
        // in, or a stateful merge): it has post_join_delay from the last join to do so.
        let joining = self.now < self.fence_delay_from + self.config.post_join_delay_ms;
        if may_fence {
            let members = &self.daemon_members;
            let me = self.me;
            let due: Vec<NodeId> = self
                .fencing
                .iter()
                .filter(|(n, need)| {
                    let back = self.quorum_members.contains(n);
                    // With every actor gone, any daemon that knows of the failure may act
                    // (the first FenceStart delivered wins).
                    let actor = need.actors.iter().find(|a| members.contains(a));
                    let mine = actor.is_none() || actor == Some(&me);
                    mine && (self.quorum_ring > need.ring || !back)
                        && !(joining && back && need.ring != 0)
                        && need.uncovered
                        && need.started_by.is_none()
                        && need.retry_at <= self.now
                        && !self.starting.contains(n)
                        && !self.running_agents.contains(n)
                })
                .map(|(n, _)| *n)
                .collect();
            for node in due {
                self.starting.insert(node);
                out.push(Output::McastDaemon(DaemonCpg::FenceStart { node }));
            }
        }
        let quorum_ok = !self.config.enable_quorum_lockspace || self.quorate;
        for ls in self.lockspaces.values_mut() {
            let fenced = startup_done
                && ls.awaiting_fence().all(|n| !self.fencing.contains_key(&n))
                && !ls.members.iter().any(|m| self.merged.contains_key(m));
            ls.check_conditions(quorum_ok && fenced, out);
        }
    }
}

/// Whether a side of a stateful merge beats another: the larger one, or on a tie the one
/// with the lowest node. Both sides compute it from the same two sets, seen from either
/// end, so exactly one of two sides wins.
pub(crate) fn side_wins(ours: &[NodeId], theirs: &[NodeId]) -> bool {
    let low = |s: &[NodeId]| s.iter().min().copied().unwrap_or(NodeId::MAX);
    ours.len() > theirs.len() || ours.len() == theirs.len() && low(ours) < low(theirs)
}

#[cfg(test)]
mod tests;
