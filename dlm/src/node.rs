//! One node's lock manager, sans-IO: every lockspace it joined, its view of the cluster
//! (daemon group members, quorum) and the fencing state that gates recovery
//! (dlm_controld's `daemon_fence_work`, in CPG order). Drivers feed `Input`s and carry
//! out `Output`s; no clock and no sockets here.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Callback, ClientId, Errno, Request};
use crate::flags::libc_errno::{EBUSY, EINVAL, ENOENT};
use crate::lockspace::Lockspace;
use crate::membership::{lockspace_group, Confchg, NodeId, Quorum, DAEMON_GROUP};
use crate::message::{DaemonCpg, LsCpg, Msg};

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
    Log(String),
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
    /// (dlm_controld's "wait ringid").
    pub ring: u64,
}

/// Startup fencing's wait: configured nodes not (cleanly) in the daemon group yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Startup {
    /// When this daemon joined the daemon group.
    pub joined_at: u64,
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

    fn need_fencing(&mut self, node: NodeId, members: &[NodeId]) {
        if self.config.enable_fencing && node != self.me {
            let n = self.fencing.entry(node).or_default();
            n.uncovered = true;
            n.failures += 1;
            n.actors = members.iter().copied().filter(|m| *m != node).collect();
            n.startup = false;
            n.ring = self.quorum_ring;
        }
    }

    fn confchg(&mut self, c: Confchg, out: &mut Vec<Output>) {
        let witnesses = if c.group == DAEMON_GROUP {
            c.members.clone()
        } else {
            self.daemon_members.clone()
        };
        for (n, why) in &c.left {
            if why.needs_fencing() && !self.fencing.get(n).is_some_and(|f| f.uncovered) {
                self.need_fencing(*n, &witnesses);
            }
        }
        if c.group == DAEMON_GROUP {
            if c.joined.contains(&self.me) {
                // A daemon that just started holds no lock state.
                out.push(Output::McastDaemon(DaemonCpg::Hello));
                if self.startup.is_none()
                    && self.config.enable_fencing
                    && self.config.enable_startup_fencing
                {
                    let nodes: BTreeSet<NodeId> = self
                        .config
                        .nodes
                        .iter()
                        .copied()
                        .filter(|n| *n != self.me && !c.members.contains(n))
                        .collect();
                    if !nodes.is_empty() {
                        out.push(Output::Log(format!(
                            "startup: nodes {nodes:?} are not running the daemon: fenced \
                             unless they join within post_join_delay"
                        )));
                    }
                    self.startup = Some(Startup {
                        joined_at: self.now,
                        nodes,
                    });
                }
            }
            for (n, why) in &c.left {
                out.push(Output::Log(format!(
                    "daemon group: node {n} left (reason {})",
                    why.code()
                )));
                // An actor that went away leaves its fencing to the next one.
                for need in self.fencing.values_mut() {
                    if need.started_by == Some(*n) {
                        need.started_by = None;
                        need.uncovered = true;
                    }
                }
            }
            self.daemon_members = c.members;
            return;
        }
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
                    out.push(Output::Log(format!("fence status {node} failed: retrying")));
                } else if !need.uncovered {
                    self.fencing.remove(&node);
                }
            }
            DaemonCpg::Hello => {
                if let Some(s) = &mut self.startup {
                    s.nodes.remove(&from);
                }
                if self.fencing.remove(&from).is_some() {
                    out.push(Output::Log(format!(
                        "node {from} rejoined cleanly: counts as fenced"
                    )));
                }
            }
            DaemonCpg::FenceAck { node } => {
                if self.fencing.remove(&node).is_some() {
                    out.push(Output::Log(format!(
                        "fence_ack {node}: recorded as fenced by an admin"
                    )));
                }
            }
        }
    }

    /// After every input: run fencing if this node is the actor, and let lockspaces
    /// whose conditions now hold start recovery.
    fn drive(&mut self, out: &mut Vec<Output>) {
        let may_fence = !self.config.enable_quorum_fencing || self.quorate;
        if let Some(s) = &mut self.startup {
            let due = s.joined_at + self.config.post_join_delay_ms;
            if may_fence && !s.nodes.is_empty() && self.now >= due {
                let nodes = std::mem::take(&mut s.nodes);
                for n in nodes {
                    out.push(Output::Log(format!(
                        "startup: node {n} did not join within post_join_delay: fencing"
                    )));
                    // Only this daemon (and others that started with it) lack the node's
                    // history, so it runs the agents itself; FenceStart's order keeps
                    // two such daemons from both running them.
                    self.need_fencing(n, &[self.me]);
                    if let Some(need) = self.fencing.get_mut(&n) {
                        need.startup = true;
                        // Not a failure seen in some ring: no newer ring to wait for.
                        need.ring = 0;
                    }
                }
            }
        }
        let startup_done = self.startup.as_ref().is_some_and(|s| s.nodes.is_empty())
            && !self.fencing.values().any(|f| f.startup);
        if may_fence {
            let members = &self.daemon_members;
            let me = self.me;
            let due: Vec<NodeId> = self
                .fencing
                .iter()
                .filter(|(n, need)| {
                    need.actors.iter().find(|a| members.contains(a)) == Some(&me)
                        && (self.quorum_ring > need.ring || !self.quorum_members.contains(n))
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
            let fenced =
                startup_done && ls.awaiting_fence().all(|n| !self.fencing.contains_key(&n));
            ls.check_conditions(quorum_ok && fenced, out);
        }
    }
}
