//! Deterministic simulation of a cluster of lock-manager cores: an in-memory network
//! (FIFO per pair of nodes, like TCP), a model of corosync (views per connected
//! component, CPG groups with one total order per view, votequorum by majority), a
//! power-off fence device, random clients, partitions, crashes and restarts — all driven
//! by one seeded RNG and a virtual clock. After every step the invariants are checked;
//! a failure names its seed, and the same seed replays the same run.
//!
//! Three kinds of crash: a node losing power (everything on it stops); a daemon killed
//! while corosync stays up (its groups see it leave with procdown), restarted later with
//! corosync alive; and corosync killed (the daemon exits with it), both restarted
//! quickly. The clients of a dead daemon get an error at once, but may still be inside
//! their critical sections: what they held counts as held until the node is powered off
//! (fenced). Nodes may also boot one after another, each corosync first forming a ring
//! of its own that merges with the others later.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use crate::api::{Callback, Request};
use crate::flags::{Flags, Status, SBF_VALNOTVALID};
use crate::io::{Input, Output};
use crate::membership::{lockspace_group, Confchg, LeaveReason, NodeId, Quorum, DAEMON_GROUP};
use crate::message::{DaemonCpg, LsCpg, Msg};
use crate::mode::{Mode, MODES};
use crate::node::{CoreConfig, Node};
use crate::resource::{Lvb, Queue};

/// xorshift64*: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// What happens at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Deliver the front of the link from → to.
    Link(NodeId, NodeId),
    /// Process the next corosync event in a node's inbox.
    Inbox(NodeId),
    /// corosync notices the connectivity changed (token timeout).
    Membership,
    /// A fence device finished powering a node off.
    FenceDone {
        actor: NodeId,
        actor_inc: u32,
        victim: NodeId,
    },
    /// Power on (a node that is off) and start what is not running.
    Restart(NodeId),
    /// Start the daemon again on a node whose corosync runs, if it is still the same
    /// power-on (`power`).
    DaemonRestart(NodeId, u32),
    /// Start corosync again after it was killed, if the node was not powered off since.
    CorosyncRestart(NodeId, u32),
    /// Another node's daemon had corosync remove this node from the cluster, if it is
    /// still the same power-on.
    Kicked(NodeId, u32),
    /// Reconnect a node whose ring formed apart at boot.
    Heal(NodeId),
    /// The operator power-cycles a node whose daemon refuses to start, if it is still
    /// the same power-on.
    Reboot(NodeId, u32),
    Tick,
    /// A random client action or fault.
    Chaos,
}

/// A client's call not yet answered.
#[derive(Clone, Debug)]
struct Pending {
    client: u64,
    ls: String,
    lkid: u32,
    /// An unlock or conversion with a value: (resource, flags, value, target mode),
    /// the oracle's `last_call` once accepted.
    call: Option<Call>,
}

/// An unlock or conversion call: (resource, flags, value, target mode; None to unlock).
type Call = (Vec<u8>, u32, Lvb, Option<Mode>);

/// A lock a dead daemon's client still holds: (lockspace, resource, lock, mode, the
/// other mode of a middle conversion).
type Zombie = (String, Vec<u8>, u32, Mode, Option<Mode>);

struct SimNode {
    /// The daemon.
    core: Option<Node>,
    inc: u32,
    /// corosync runs (the node is powered and in the membership of its component).
    up: bool,
    /// Power-ons so far: a restart planned before a power-off is void after it.
    power: u32,
    /// Locks the clients of dead daemons held: still held for the invariants until the
    /// node is powered off.
    zombies: Vec<Zombie>,
    /// The dead daemon left its lock-state file (daemon/lockstate.rs): no daemon starts
    /// until the node is powered off.
    marked: bool,
    /// What this node's corosync delivers, in its order: confchgs, quorum, messages.
    inbox: VecDeque<Input>,
    inbox_busy: bool,
    /// CPG groups joined, and the members last reported for each.
    groups: BTreeMap<String, Vec<NodeId>>,
    /// Clients on this node: id → locks it holds (lkid → mode) as callbacks said.
    clients: BTreeMap<u64, BTreeMap<(String, u32), Option<Mode>>>,
    pending: BTreeMap<u64, Pending>,
    view: Vec<NodeId>,
}

#[derive(Clone, Debug)]
enum Payload {
    Ls(String, LsCpg),
    Daemon(DaemonCpg),
}

/// The knobs of one run.
#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: u32,
    pub steps: u32,
    pub resources: u32,
    /// Faults (cuts, crashes) on or off.
    pub faults: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            nodes: 3,
            steps: 400,
            resources: 4,
            faults: true,
        }
    }
}

pub struct Sim {
    pub seed: u64,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    nodes: BTreeMap<NodeId, SimNode>,
    links: BTreeMap<(NodeId, NodeId), VecDeque<(u64, Msg)>>,
    cut: BTreeSet<NodeId>,
    next_client: u64,
    next_req: u64,
    /// Per (lockspace, resource): the stamp of the newest value a PW/EX holder's
    /// completed write stored, and every value a call asked to store (values are call
    /// numbers).
    written: BTreeMap<(String, Vec<u8>), u64>,
    /// Who wrote the newest value, for the failure message: (value, node, lock).
    written_by: BTreeMap<(String, Vec<u8>), (u64, NodeId, u32)>,
    ever: BTreeSet<(String, Vec<u8>, u64)>,
    /// Each value's stamp: when its node accepted the call (a counter). Calls held while
    /// a lockspace recovers run later than their numbers say, so call numbers do not
    /// order writes; acceptance does (the next writer is granted only after it).
    stamps: BTreeMap<(String, Vec<u8>, u64), u64>,
    /// Calls that may store a value, by (node, request), until the node accepts them
    /// (kept when their client goes away: the node may still run them).
    to_stamp: BTreeMap<(NodeId, u64), (String, Vec<u8>, u64)>,
    /// The last unlock or conversion call per (node, lockspace, lock): resource, flags,
    /// value, target mode (None for an unlock).
    last_call: BTreeMap<(NodeId, String, u32), Call>,
    next_call: Option<Call>,
    /// Nodes powered off by fencing, and whether that was after each of their failures.
    pub log: Vec<String>,
    params: Params,
    ring: u64,
    /// Log every input and output (HYDRA_SIM_TRACE=1), for replaying a failing seed.
    trace: bool,
}

const TOKEN_MS: u64 = 1000;
const LS: [&str; 2] = ["ls0", "ls1"];

impl Sim {
    pub fn new(seed: u64, params: Params) -> Self {
        let mut s = Sim {
            seed,
            rng: Rng::new(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            next_client: 1,
            next_req: 1,
            written: BTreeMap::new(),
            written_by: BTreeMap::new(),
            ever: BTreeSet::new(),
            stamps: BTreeMap::new(),
            to_stamp: BTreeMap::new(),
            last_call: BTreeMap::new(),
            next_call: None,
            log: Vec::new(),
            params: params.clone(),
            ring: 0,
            trace: std::env::var_os("HYDRA_SIM_TRACE").is_some(),
        };
        for id in 1..=params.nodes {
            s.nodes.insert(
                id,
                SimNode {
                    core: None,
                    inc: 0,
                    up: false,
                    power: 0,
                    zombies: Vec::new(),
                    marked: false,
                    inbox: VecDeque::new(),
                    inbox_busy: false,
                    groups: BTreeMap::new(),
                    clients: BTreeMap::new(),
                    pending: BTreeMap::new(),
                    view: Vec::new(),
                },
            );
        }
        // Half the seeds boot the nodes one after another, and half let each corosync
        // form a ring of its own first. Without faults the gaps stay within
        // post_join_delay, so that nobody may be fenced.
        let staggered = s.rng.chance(500);
        let apart = s.rng.chance(500);
        let (gap, alone) = if params.faults {
            (1500, 2000)
        } else {
            (300, 200)
        };
        let mut t = 0;
        for id in 1..=params.nodes {
            if staggered && id > 1 {
                t += s.rng.below(gap);
            }
            if apart {
                s.cut.insert(id);
                let d = t + s.rng.below(alone);
                s.at(d, Ev::Heal(id));
            }
            if t == 0 {
                s.nodes.get_mut(&id).expect("node").up = true;
                s.boot(id);
            } else {
                s.at(t, Ev::Restart(id));
            }
        }
        s.at(0, Ev::Membership);
        s.at(100, Ev::Tick);
        s.at(50, Ev::Chaos);
        s
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay, self.seq, ev)));
    }

    fn config(&self) -> CoreConfig {
        CoreConfig {
            toss_ms: 2_000,
            fence_retry_ms: 500,
            post_join_delay_ms: 1_000,
            nodes: self.nodes.keys().copied().collect(),
            // Tiny recovery messages, so that every recovery sends several chunks.
            recover_chunk: 2,
            ..CoreConfig::default()
        }
    }

    fn boot(&mut self, id: NodeId) {
        let config = self.config();
        let n = self.nodes.get_mut(&id).expect("node");
        if n.marked {
            self.log.push(format!(
                "{} daemon of node {id} refuses to start: its predecessor held lockspaces",
                self.now
            ));
            // As the refusal says, an operator reboots the node (if nobody fenced it).
            let (power, d) = (n.power, 3000 + self.rng.below(3000));
            self.at(d, Ev::Reboot(id, power));
            return;
        }
        n.inc += 1;
        let mut core = Node::new(id, config);
        let out = core.start();
        n.core = Some(core);
        n.groups.clear();
        n.inbox.clear();
        n.inbox_busy = false;
        n.view.clear();
        // A new incarnation has new TCP connections: what peers queued for the dead one
        // while it was cut off is gone (held messages would otherwise block the link).
        self.links.retain(|(a, b), _| *a != id && *b != id);
        // One system client joins both lockspaces, as `dlm_tool join` would.
        let sys = self.next_client;
        self.next_client += 1;
        self.nodes
            .get_mut(&id)
            .expect("node")
            .clients
            .insert(sys, BTreeMap::new());
        self.outputs(id, out);
        for ls in LS {
            self.call(id, sys, Request::Join { ls: ls.to_string() }, 0);
        }
        self.at(0, Ev::Membership);
    }

    /// The node loses power: daemon, corosync and clients stop.
    fn crash(&mut self, id: NodeId, why: &str) {
        let n = &self.nodes[&id];
        if !n.up && n.core.is_none() && n.zombies.is_empty() && !n.marked {
            return;
        }
        self.daemon_gone(id, false);
        let n = self.nodes.get_mut(&id).expect("node");
        n.up = false;
        n.power += 1;
        n.zombies.clear();
        n.marked = false;
        self.log
            .push(format!("{} node {id} down ({why})", self.now));
        self.at(0, Ev::Membership);
    }

    /// The daemon stops; its clients' locks stay held as zombies unless the node is
    /// going down with it. Returns the CPG groups it was in.
    fn daemon_gone(&mut self, id: NodeId, zombies: bool) -> Vec<String> {
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(core) = n.core.take() else {
            return Vec::new();
        };
        if zombies {
            n.marked = core.lockspaces.values().any(|l| l.has_run());
            for (lsn, ls) in &core.lockspaces {
                for (name, lkid, mode) in ls.held() {
                    let alt = ls.middle_conversion(lkid);
                    n.zombies.push((lsn.clone(), name.clone(), lkid, mode, alt));
                }
            }
        }
        n.clients.clear();
        n.pending.clear();
        n.inbox.clear();
        let groups = std::mem::take(&mut n.groups).into_keys().collect();
        self.links.retain(|(a, b), _| *a != id && *b != id);
        groups
    }

    /// kill -9 of the daemon; corosync stays, and tells the daemon's groups it left
    /// (procdown). It is started again later, with corosync still up.
    fn daemon_crash(&mut self, id: NodeId) {
        if !self.nodes[&id].up {
            return;
        }
        let groups = self.daemon_gone(id, true);
        self.log
            .push(format!("{} daemon of node {id} killed", self.now));
        for g in groups {
            let view = self.component_of(id);
            if let Some(&other) = view.iter().find(|m| self.nodes[m].groups.contains_key(&g)) {
                self.group_changed(other, &g, LeaveReason::ProcDown);
            }
        }
        let (power, d) = (self.nodes[&id].power, 100 + self.rng.below(4000));
        self.at(d, Ev::DaemonRestart(id, power));
    }

    /// kill -9 of corosync: the daemon loses it and exits; both are started again soon.
    fn corosync_crash(&mut self, id: NodeId) {
        if !self.nodes[&id].up {
            return;
        }
        self.daemon_gone(id, true);
        self.nodes.get_mut(&id).expect("node").up = false;
        self.log
            .push(format!("{} corosync of node {id} killed", self.now));
        self.at(0, Ev::Membership);
        let (power, d) = (self.nodes[&id].power, 200 + self.rng.below(1500));
        self.at(d, Ev::CorosyncRestart(id, power));
    }

    fn alive(&self, id: NodeId) -> bool {
        self.nodes[&id].core.is_some()
    }

    // ---- driving a core ------------------------------------------------------------------

    fn input(&mut self, id: NodeId, input: Input) {
        let now = self.now;
        let Some(core) = self.nodes.get_mut(&id).and_then(|n| n.core.as_mut()) else {
            return;
        };
        if self.trace {
            self.log.push(format!("{now} n{id} <- {input:?}"));
        }
        let out = core.handle(input, now);
        if self.trace {
            for o in &out {
                self.log.push(format!("{now} n{id} -> {o:?}"));
            }
        }
        self.outputs(id, out);
    }

    fn call(&mut self, id: NodeId, client: u64, request: Request, lkid: u32) {
        let ls = match &request {
            Request::Lock { ls, .. }
            | Request::Unlock { ls, .. }
            | Request::Join { ls }
            | Request::Leave { ls, .. } => ls.clone(),
            Request::FenceAck { .. } => String::new(),
        };
        let req = self.next_req;
        self.next_req += 1;
        if let Some((name, _, v, _)) = &self.next_call {
            let n = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
            self.to_stamp
                .insert((id, req), (ls.clone(), name.clone(), n));
        }
        self.nodes.get_mut(&id).expect("node").pending.insert(
            req,
            Pending {
                client,
                ls,
                lkid,
                call: self.next_call.take(),
            },
        );
        self.input(
            id,
            Input::Client {
                client,
                req,
                request,
            },
        );
    }

    /// A call the node accepted: the oracle now expects its completion, and a value it
    /// stores gets its place in the order of writes.
    fn accepted(&mut self, id: NodeId, req: u64) {
        if let Some(p) = self.nodes.get_mut(&id).expect("node").pending.get_mut(&req) {
            if let Some(c) = p.call.take() {
                self.last_call.insert((id, p.ls.clone(), p.lkid), c);
            }
        }
        if let Some(key) = self.to_stamp.remove(&(id, req)) {
            let stamp = self.stamps.len() as u64 + 1;
            self.stamps.insert(key, stamp);
        }
    }

    fn outputs(&mut self, id: NodeId, out: Vec<Output>) {
        self.register_calls(id, &out);
        self.carry_out(id, out);
    }

    /// Tell the oracle which calls the core accepted and which completions belong to
    /// them, in the order the core ran them.
    fn register_calls(&mut self, id: NodeId, out: &[Output]) {
        // Calls are accepted (their Reply) in the order the core ran them, and a call
        // run at once pushes its completion just before its Reply. So a completion
        // belongs to the call whose Reply follows it for the same lock in this batch,
        // if any, else to the lock's last accepted call: register that call first.
        let lock_of = |o: &Output, sim: &Self| -> Option<(String, u32, Option<u64>)> {
            match o {
                Output::Callback {
                    ls,
                    cb: Callback::Completion { lkid, .. },
                    ..
                } => Some((ls.clone(), *lkid, None)),
                Output::Reply {
                    req,
                    result: Ok(lkid),
                    ..
                } => {
                    let p = sim.nodes[&id].pending.get(req)?;
                    let l = if p.lkid != 0 { p.lkid } else { *lkid };
                    Some((p.ls.clone(), l, Some(*req)))
                }
                _ => None,
            }
        };
        let keys: Vec<_> = out.iter().map(|o| lock_of(o, self)).collect();
        let mut early = BTreeSet::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some((ls, l, None)) = k {
                let next = keys[i + 1..]
                    .iter()
                    .flatten()
                    .find(|(ls2, l2, _)| ls2 == ls && l2 == l);
                if let Some((_, _, Some(req))) = next {
                    early.insert((i, *req));
                }
            }
        }
        let mut accepted = BTreeSet::new();
        for (i, k) in keys.iter().enumerate() {
            let req = match k {
                Some((_, _, Some(req))) if !accepted.contains(req) => Some(*req),
                Some((_, _, None)) => early.iter().find(|(j, _)| *j == i).map(|(_, r)| *r),
                _ => None,
            };
            if let Some(req) = req {
                accepted.insert(req);
                self.accepted(id, req);
            }
            if let Some(o @ Output::Callback { .. }) = out.get(i) {
                if let Output::Callback { client, ls, cb } = o.clone() {
                    self.callback(id, client, ls, cb);
                }
            }
        }
    }

    /// What a node's core asked for: messages onto the links, CPG traffic, replies,
    /// fence runs, log lines.
    fn carry_out(&mut self, id: NodeId, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let delay = 1 + self.rng.below(4);
                    let q = self.links.entry((id, to)).or_default();
                    let t = q.back().map_or(0, |b| b.0).max(self.now + delay);
                    let was_empty = q.is_empty();
                    q.push_back((t, msg));
                    if was_empty {
                        let d = t - self.now;
                        self.at(d, Ev::Link(id, to));
                    }
                }
                Output::McastLs { ls, msg } => {
                    self.mcast(id, &lockspace_group(&ls), Payload::Ls(ls, msg))
                }
                Output::McastDaemon(msg) => self.mcast(id, DAEMON_GROUP, Payload::Daemon(msg)),
                Output::CpgJoin(g) => self.cpg_join(id, g),
                Output::CpgLeave(g) => self.cpg_leave(id, g),
                Output::Reply { req, result, .. } => {
                    let n = self.nodes.get_mut(&id).expect("node");
                    if let Some(p) = n.pending.remove(&req) {
                        if let (Ok(lkid), Some(c)) = (&result, n.clients.get_mut(&p.client)) {
                            if p.lkid == 0 && *lkid != 0 {
                                c.entry((p.ls.clone(), *lkid)).or_insert(None);
                            }
                        }
                    }
                }
                Output::Callback { .. } => {} // handled above, in order
                Output::Fence { node } => {
                    let inc = self.nodes[&id].inc;
                    let delay = 20 + self.rng.below(300);
                    self.at(
                        delay,
                        Ev::FenceDone {
                            actor: id,
                            actor_inc: inc,
                            victim: node,
                        },
                    );
                }
                Output::Kick { node } => {
                    // corosync_cfg_kill_node: the victim's corosync exits a moment later
                    // (if it is still the same power-on); modelled as its kill -9.
                    let power = self.nodes[&node].power;
                    let delay = 5 + self.rng.below(100);
                    self.at(delay, Ev::Kicked(node, power));
                }
                Output::Log(l) => self.log.push(format!("{} n{id}: {l}", self.now)),
            }
        }
    }

    fn callback(&mut self, id: NodeId, client: u64, ls: String, cb: Callback) {
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(c) = n.clients.get_mut(&client) else {
            return;
        };
        if let Callback::Completion {
            lkid,
            status,
            mode,
            sbflags,
            lvb,
        } = cb
        {
            let prev = c.get(&(ls.clone(), lkid)).copied().flatten();
            match status {
                Status::Granted => {
                    c.insert((ls.clone(), lkid), mode);
                }
                _ if mode.is_none() => {
                    c.remove(&(ls.clone(), lkid));
                }
                _ => {
                    c.insert((ls.clone(), lkid), mode);
                }
            }
            self.value_block(id, &ls, lkid, status, prev, mode, sbflags, lvb);
        }
    }

    /// A call that may store its value (a master may grant readers the value before the
    /// writer hears its own completion).
    fn may_write(&mut self, ls: &str, name: &[u8], f: u32, v: &Lvb) {
        if f & Flags::VALBLK != 0 && f & Flags::IVVALBLK == 0 {
            let n = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
            self.ever.insert((ls.to_string(), name.to_vec(), n));
        }
    }

    /// The value block oracle. A completed unlock or down-conversion from PW/EX with
    /// VALBLK stores the call's value; a reader that excludes writers (PR and up) and is
    /// not told VALNOTVALID sees a stored value at least as new (by stamp) as the newest
    /// completed write.
    #[allow(clippy::too_many_arguments)]
    fn value_block(
        &mut self,
        id: NodeId,
        ls: &str,
        lkid: u32,
        status: Status,
        prev: Option<Mode>,
        mode: Option<Mode>,
        sbflags: u8,
        lvb: Option<Lvb>,
    ) {
        let call = self.last_call.get(&(id, ls.to_string(), lkid)).cloned();
        if let (Some((name, f, v, to)), Some(p)) = (call, prev) {
            let wrote = match (status, to) {
                (Status::Unlock, None) => true,
                (Status::Granted, Some(t)) => Mode::lvb_op(Some(p), t) == crate::mode::LvbOp::Write,
                _ => false,
            };
            if wrote && p >= Mode::PW && f & Flags::VALBLK != 0 && f & Flags::IVVALBLK == 0 {
                let n = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                let next = self.stamps.len() as u64 + 1;
                let stamp = *self
                    .stamps
                    .entry((ls.to_string(), name.clone(), n))
                    .or_insert(next);
                let key = (ls.to_string(), name.clone());
                let w = self.written.entry(key.clone()).or_default();
                if stamp > *w {
                    *w = stamp;
                    self.written_by.insert(key, (n, id, lkid));
                }
            }
        }
        if let (Status::Granted, Some(m), Some(v)) = (status, mode, lvb) {
            if m >= Mode::PR && m != Mode::CW && sbflags & SBF_VALNOTVALID == 0 {
                if let Some(name) = self.lock_name(id, ls, lkid) {
                    let n = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                    let newest = self
                        .written
                        .get(&(ls.to_string(), name.clone()))
                        .copied()
                        .unwrap_or(0);
                    let stored = n == 0 || self.ever.contains(&(ls.to_string(), name.clone(), n));
                    let stamp = self
                        .stamps
                        .get(&(ls.to_string(), name.clone(), n))
                        .copied()
                        .unwrap_or(0);
                    assert!(
                        stored && stamp >= newest,
                        "seed {}: lock {lkid:#x} on node {id} read value {n} (stamp {stamp}) of {ls}/{}, newest written has stamp {newest} (value, node, lock {:?})\n{}",
                        self.seed,
                        String::from_utf8_lossy(&name),
                        self.written_by.get(&(ls.to_string(), name.clone())),
                        self.tail_log()
                    );
                }
            }
        }
    }

    fn lock_name(&self, id: NodeId, ls: &str, lkid: u32) -> Option<Vec<u8>> {
        let core = self.nodes[&id].core.as_ref()?;
        core.lockspaces.get(ls)?.resource_of(lkid).cloned()
    }

    // ---- corosync model ------------------------------------------------------------------

    fn component_of(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes[&id].view.clone()
    }

    fn mcast(&mut self, from: NodeId, group: &str, p: Payload) {
        if !self.nodes[&from].groups.contains_key(group) {
            return;
        }
        for m in self.component_of(from) {
            if self.nodes[&m].groups.contains_key(group) {
                let input = match p.clone() {
                    Payload::Ls(ls, msg) => Input::LsCpg { ls, from, msg },
                    Payload::Daemon(msg) => Input::DaemonCpg { from, msg },
                };
                self.deliver(m, input);
            }
        }
    }

    fn deliver(&mut self, to: NodeId, input: Input) {
        let n = self.nodes.get_mut(&to).expect("node");
        n.inbox.push_back(input);
        if !n.inbox_busy {
            n.inbox_busy = true;
            let d = self.rng.below(3);
            self.at(d, Ev::Inbox(to));
        }
    }

    fn group_members(&self, view: &[NodeId], group: &str) -> Vec<NodeId> {
        view.iter()
            .copied()
            .filter(|m| self.nodes[m].groups.contains_key(group))
            .collect()
    }

    /// Tell every member of `group` in `id`'s view its new membership.
    fn group_changed(&mut self, id: NodeId, group: &str, left_reason: LeaveReason) {
        let view = self.component_of(id);
        let members = self.group_members(&view, group);
        for m in &members {
            self.report_group(*m, group, &members, left_reason);
        }
        // The node that left hears nothing more of the group.
    }

    fn report_group(
        &mut self,
        m: NodeId,
        group: &str,
        members: &[NodeId],
        left_reason: LeaveReason,
    ) {
        let old = self.nodes[&m]
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default();
        if old == members {
            return;
        }
        let joined: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|x| !old.contains(x))
            .collect();
        let left: Vec<(NodeId, LeaveReason)> = old
            .iter()
            .copied()
            .filter(|x| !members.contains(x))
            .map(|x| (x, left_reason))
            .collect();
        self.nodes
            .get_mut(&m)
            .expect("node")
            .groups
            .insert(group.to_string(), members.to_vec());
        self.deliver(
            m,
            Input::Confchg(Confchg {
                group: group.to_string(),
                members: members.to_vec(),
                joined,
                left,
            }),
        );
    }

    fn cpg_join(&mut self, id: NodeId, group: String) {
        self.nodes
            .get_mut(&id)
            .expect("node")
            .groups
            .insert(group.clone(), Vec::new());
        self.group_changed(id, &group, LeaveReason::Leave);
    }

    fn cpg_leave(&mut self, id: NodeId, group: String) {
        self.nodes.get_mut(&id).expect("node").groups.remove(&group);
        let view = self.component_of(id);
        if let Some(&other) = view.iter().find(|m| **m != id) {
            self.group_changed(other, &group, LeaveReason::Leave);
        }
    }

    /// Views from connectivity: alive nodes, links up unless a node is cut off.
    fn membership(&mut self) {
        let alive: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|n| self.nodes[n].up)
            .collect();
        let mut comps: Vec<Vec<NodeId>> = Vec::new();
        let whole: Vec<NodeId> = alive
            .iter()
            .copied()
            .filter(|n| !self.cut.contains(n))
            .collect();
        if !whole.is_empty() {
            comps.push(whole);
        }
        for n in &alive {
            if self.cut.contains(n) {
                comps.push(vec![*n]);
            }
        }
        let total = self.params.nodes as usize;
        for comp in comps {
            let changed = comp.iter().any(|m| self.nodes[m].view != comp);
            if !changed {
                continue;
            }
            self.ring += 1;
            // TCP connections across the new boundary are reset: what was in flight is gone.
            let outside: Vec<NodeId> = self
                .nodes
                .keys()
                .copied()
                .filter(|x| !comp.contains(x))
                .collect();
            self.links.retain(|(a, b), _| {
                !(comp.contains(a) && outside.contains(b)
                    || comp.contains(b) && outside.contains(a))
            });
            for m in &comp {
                self.nodes.get_mut(m).expect("node").view = comp.clone();
            }
            let q = Quorum {
                quorate: comp.len() * 2 > total,
                members: comp.clone(),
                ring_seq: self.ring,
            };
            for m in comp.clone() {
                self.deliver(m, Input::Quorum(q.clone()));
            }
            // Group changes, in one order for everyone: the daemons' group first.
            let mut groups: BTreeSet<String> = BTreeSet::new();
            for m in &comp {
                groups.extend(self.nodes[m].groups.keys().cloned());
            }
            let mut order: Vec<String> = vec![DAEMON_GROUP.to_string()];
            order.extend(groups.into_iter().filter(|g| g != DAEMON_GROUP));
            for g in order {
                let members = self.group_members(&comp, &g);
                for m in &members {
                    self.report_group(*m, &g, &members, LeaveReason::NodeDown);
                }
            }
        }
    }

    // ---- the run --------------------------------------------------------------------------

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Link(from, to) => {
                if !self.link_next(from, to) {
                    return;
                }
            }
            Ev::Inbox(id) => {
                if !self.next_inbox(id) {
                    return;
                }
            }
            Ev::Membership => self.membership(),
            Ev::FenceDone {
                actor,
                actor_inc,
                victim,
            } => {
                if !self.fence_done(actor, actor_inc, victim) {
                    return;
                }
            }
            Ev::Restart(id) => self.restart(id),
            Ev::DaemonRestart(id, power) => {
                let n = &self.nodes[&id];
                if n.power == power && n.up && n.core.is_none() {
                    self.boot(id);
                    if self.alive(id) {
                        self.log
                            .push(format!("{} daemon of node {id} restarted", self.now));
                    }
                }
            }
            Ev::CorosyncRestart(id, power) => {
                let n = self.nodes.get_mut(&id).expect("node");
                if n.power == power && !n.up {
                    n.up = true;
                    self.log
                        .push(format!("{} corosync of node {id} restarted", self.now));
                    self.at(0, Ev::Membership);
                    let d = 100 + self.rng.below(2000);
                    self.at(d, Ev::DaemonRestart(id, power));
                }
            }
            Ev::Kicked(id, power) => {
                if self.nodes[&id].power == power {
                    self.corosync_crash(id);
                }
            }
            Ev::Heal(id) => self.heal(id),
            Ev::Reboot(id, power) => {
                if self.nodes[&id].power == power {
                    self.crash(id, "rebooted by the operator");
                    self.at(500, Ev::Restart(id));
                }
            }
            Ev::Tick => {
                let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                for id in ids {
                    self.input(id, Input::Tick);
                }
                self.at(100, Ev::Tick);
            }
            Ev::Chaos => {
                self.chaos();
                let d = 5 + self.rng.below(40);
                self.at(d, Ev::Chaos);
            }
        }
        self.check();
    }

    /// The next message on the link `from` → `to`, if it is due and the link is not
    /// cut. False when nothing happened (no invariant to check).
    fn link_next(&mut self, from: NodeId, to: NodeId) -> bool {
        let Some(q) = self.links.get_mut(&(from, to)) else {
            return false;
        };
        let Some((t, _)) = q.front() else {
            return false;
        };
        if *t > self.now {
            let d = *t - self.now;
            self.at(d, Ev::Link(from, to));
            return false;
        }
        if self.cut.contains(&from) || self.cut.contains(&to) {
            return false; // held until the link heals (then pumped again)
        }
        let (_, msg) = q.pop_front().expect("front");
        if let Some((t, _)) = q.front() {
            let d = t.saturating_sub(self.now);
            self.at(d, Ev::Link(from, to));
        }
        self.input(to, Input::Peer { from, msg });
        true
    }

    /// The next of a node's queued inputs (corosync's deliveries, in order). False when
    /// there was none.
    fn next_inbox(&mut self, id: NodeId) -> bool {
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(input) = n.inbox.pop_front() else {
            n.inbox_busy = false;
            return false;
        };
        if n.inbox.is_empty() {
            n.inbox_busy = false;
        } else {
            let d = self.rng.below(3);
            self.at(d, Ev::Inbox(id));
        }
        self.input(id, input);
        true
    }

    /// The fence agents `actor` ran for `victim` finish: the victim powers off (and
    /// boots later) unless the device failed. False when the actor is gone since.
    fn fence_done(&mut self, actor: NodeId, actor_inc: u32, victim: NodeId) -> bool {
        if self.nodes[&actor].inc != actor_inc || !self.alive(actor) {
            return false;
        }
        // The device sometimes fails; the actor retries.
        let ok = !self.rng.chance(150);
        if ok {
            self.crash(victim, "fenced");
            let d = 500 + self.rng.below(3000);
            self.at(d, Ev::Restart(victim));
        }
        self.input(actor, Input::FenceDone { node: victim, ok });
        true
    }

    /// A node powers on (corosync up) and its daemon starts.
    fn restart(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node");
        if !n.up {
            n.up = true;
            // A first boot may be apart on purpose (Sim::new heals it later).
            if n.inc > 0 {
                self.cut.remove(&id);
            }
            self.at(0, Ev::Membership);
        }
        if !self.alive(id) {
            self.boot(id);
        }
    }

    fn heal(&mut self, id: NodeId) {
        if self.cut.remove(&id) {
            self.at(TOKEN_MS / 2, Ev::Membership);
            let keys: Vec<(NodeId, NodeId)> = self
                .links
                .keys()
                .copied()
                .filter(|(a, b)| *a == id || *b == id)
                .collect();
            for (a, b) in keys {
                self.at(1, Ev::Link(a, b));
            }
        }
    }

    fn chaos(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        let roll = self.rng.below(1000);
        if self.params.faults && roll < 6 {
            if self.cut.len() + 1 < ids.len() && self.nodes[&id].up {
                self.log.push(format!("{} cut node {id}", self.now));
                self.cut.insert(id);
                self.at(TOKEN_MS, Ev::Membership);
            }
            return;
        }
        if self.params.faults && roll < 14 {
            let cut: Vec<NodeId> = self.cut.iter().copied().collect();
            if let Some(&h) = cut.first() {
                self.log.push(format!("{} heal node {h}", self.now));
                self.heal(h);
            }
            return;
        }
        if self.params.faults && roll < 17 && self.alive(id) {
            self.crash(id, "crash");
            let d = 1000 + self.rng.below(4000);
            self.at(d, Ev::Restart(id));
            return;
        }
        if self.params.faults && roll < 20 && self.alive(id) {
            self.daemon_crash(id);
            return;
        }
        if self.params.faults && roll < 22 && self.alive(id) {
            self.corosync_crash(id);
            return;
        }
        if !self.alive(id) {
            return;
        }
        self.client_op(id);
    }

    fn client_op(&mut self, id: NodeId) {
        let roll = self.rng.below(100);
        let clients: Vec<u64> = self.nodes[&id].clients.keys().copied().collect();
        if roll < 5 || clients.len() < 3 {
            let c = self.next_client;
            self.next_client += 1;
            self.nodes
                .get_mut(&id)
                .expect("node")
                .clients
                .insert(c, BTreeMap::new());
            return;
        }
        let client = clients[1 + self.rng.below(clients.len() as u64 - 1) as usize];
        let ls = LS[self.rng.below(2) as usize].to_string();
        if roll < 7 {
            let n = self.nodes.get_mut(&id).expect("node");
            n.clients.remove(&client);
            // Calls of a client that went away are answered to no one.
            n.pending.retain(|_, p| p.client != client);
            self.input(id, Input::ClientGone(client));
            return;
        }
        let held = self.callable(id, client);
        let mode = MODES[self.rng.below(6) as usize];
        let flags = self.random_flags();
        let value = self.next_req.to_le_bytes();
        let mut lvb = [0u8; 32];
        lvb[..8].copy_from_slice(&value);
        if held.is_empty() || roll < 50 {
            let name = format!("res{}", self.rng.below(self.params.resources as u64)).into_bytes();
            let req = Request::Lock {
                ls,
                name,
                mode,
                flags: Flags(flags & !(Flags::QUECVT | Flags::CONVDEADLK)),
                lvb: Some(lvb),
                bast: true,
                lkid: 0,
            };
            self.call(id, client, req, 0);
            return;
        }
        let ((ls_of, lkid), _) = held[self.rng.below(held.len() as u64) as usize].clone();
        if roll < 75 {
            self.convert(id, client, ls_of, lkid, mode, flags, lvb);
        } else {
            self.unlock(id, client, ls_of, lkid, flags, lvb);
        }
    }

    /// A client's locks it may make a call on now. A libdlm call returns before another
    /// is made on the same lock (calls made while the lockspace recovers wait in the
    /// kernel): no second call on a lock whose last one is unanswered, or the oracle
    /// could not tell which completed.
    fn callable(&self, id: NodeId, client: u64) -> Vec<((String, u32), Option<Mode>)> {
        let node = &self.nodes[&id];
        node.clients[&client]
            .iter()
            .filter(|((ls, lkid), _)| {
                !node
                    .pending
                    .values()
                    .any(|p| p.lkid == *lkid && p.ls == *ls)
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// VALBLK and a random choice of the other flags, each with its own odds.
    fn random_flags(&mut self) -> u32 {
        let mut flags = Flags::VALBLK;
        for (bit, p) in [
            (Flags::NOQUEUE, 150),
            (Flags::QUECVT, 80),
            (Flags::CONVDEADLK, 60),
            (Flags::NODLCKWT, 40),
            (Flags::HEADQUE, 40),
            (Flags::NOORDER, 40),
            (Flags::ALTPR, 30),
            (Flags::ALTCW, 30),
            (Flags::NOQUEUEBAST, 50),
            (Flags::IVVALBLK, 30),
            (Flags::PERSISTENT, 20),
        ] {
            if self.rng.chance(p) {
                flags |= bit;
            }
        }
        flags
    }

    /// A conversion of one of the client's locks.
    #[allow(clippy::too_many_arguments)]
    fn convert(
        &mut self,
        id: NodeId,
        client: u64,
        ls_of: String,
        lkid: u32,
        mode: Mode,
        flags: u32,
        lvb: Lvb,
    ) {
        let name_of = self.lock_name(id, &ls_of, lkid);
        let f = (flags | Flags::CONVERT) & !Flags::PERSISTENT;
        if let Some(name) = name_of {
            self.may_write(&ls_of, &name, f, &lvb);
            self.next_call = Some((name, f, lvb, Some(mode)));
        }
        let req = Request::Lock {
            ls: ls_of,
            name: Vec::new(),
            mode,
            flags: Flags(f),
            lvb: Some(lvb),
            bast: true,
            lkid,
        };
        self.call(id, client, req, lkid);
    }

    /// An unlock, cancel or forced unlock of one of the client's locks.
    fn unlock(&mut self, id: NodeId, client: u64, ls_of: String, lkid: u32, flags: u32, lvb: Lvb) {
        let name_of = self.lock_name(id, &ls_of, lkid);
        let f = match self.rng.below(10) {
            0 | 1 => Flags::CANCEL,
            2 => Flags::FORCEUNLOCK,
            _ => flags & (Flags::VALBLK | Flags::IVVALBLK),
        };
        if let Some(name) = name_of {
            if f & (Flags::CANCEL | Flags::FORCEUNLOCK) == 0 {
                self.may_write(&ls_of, &name, f, &lvb);
                self.next_call = Some((name, f, lvb, None));
            }
        }
        let req = Request::Unlock {
            ls: ls_of,
            lkid,
            flags: Flags(f),
            lvb: Some(lvb),
        };
        self.call(id, client, req, lkid);
    }

    /// The safety invariants, after every step.
    fn check(&self) {
        // Never two incompatible locks granted on one resource anywhere in the cluster
        // (every live node, partitioned or not: only a fence powers a node off).
        type Held = (NodeId, u32, Mode, Option<Mode>);
        let mut held: BTreeMap<(String, Vec<u8>), Vec<Held>> = BTreeMap::new();
        for (id, n) in &self.nodes {
            for (lsn, name, lkid, mode, alt) in &n.zombies {
                held.entry((lsn.clone(), name.clone()))
                    .or_default()
                    .push((*id, *lkid, *mode, *alt));
            }
            let Some(core) = &n.core else { continue };
            for (lsn, ls) in &core.lockspaces {
                for (name, lkid, mode) in ls.held() {
                    let alt = ls.middle_conversion(lkid);
                    held.entry((lsn.clone(), name.clone()))
                        .or_default()
                        .push((*id, lkid, mode, alt));
                }
                for (name, res) in ls.mastered() {
                    let g: Vec<Mode> = res.queue(Queue::Grant).filter_map(|l| l.grmode).collect();
                    for (i, a) in g.iter().enumerate() {
                        for b in &g[i + 1..] {
                            assert!(
                                a.compatible(*b),
                                "seed {}: master n{id} of {lsn}/{} grants {a} and {b}",
                                self.seed,
                                String::from_utf8_lossy(name)
                            );
                        }
                    }
                }
            }
        }
        for ((ls, name), locks) in &held {
            for (i, a) in locks.iter().enumerate() {
                for b in &locks[i + 1..] {
                    // A middle conversion in flight holds one of its two modes.
                    let ok = |x: Mode, y: Mode| x.compatible(y);
                    let fits = ok(a.2, b.2)
                        || a.3.is_some_and(|m| ok(m, b.2))
                        || b.3.is_some_and(|m| ok(a.2, m))
                        || a.3.zip(b.3).is_some_and(|(m, n)| ok(m, n));
                    assert!(
                        fits,
                        "seed {}: t={} {ls}/{}: node {} lock {:#x} holds {} while node {} lock {:#x} holds {}\n{}",
                        self.seed,
                        self.now,
                        String::from_utf8_lossy(name),
                        a.0,
                        a.1,
                        a.2,
                        b.0,
                        b.1,
                        b.2,
                        self.tail_log()
                    );
                }
            }
        }
    }

    pub fn tail_log(&self) -> String {
        if self.trace {
            return self.log.join("\n");
        }
        let from = self.log.len().saturating_sub(40);
        self.log[from..].join("\n")
    }

    fn run_until(&mut self, end: u64, chaos: bool) {
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if t > end {
                self.queue.push(Reverse((t, 0, ev)));
                break;
            }
            self.now = t;
            if !chaos && ev == Ev::Chaos {
                continue;
            }
            self.step(ev);
        }
        self.now = end;
    }

    /// Run: chaos for `steps` × 10 ms of virtual time, then heal everything, restart the
    /// dead, stop the chaos and let the cluster settle; then every call must have been
    /// answered, every operation finished, every lockspace running; then every client
    /// goes away and only orphans may remain.
    pub fn run(&mut self) -> Result<(), String> {
        let busy = self.params.steps as u64 * 10;
        self.run_until(busy, true);
        for id in self.cut.clone() {
            self.heal(id);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            if !self.alive(*id) {
                self.at(0, Ev::Restart(*id));
            }
        }
        // Settle: long enough for detection, fencing retries, restarts and recovery.
        let mut until = self.now + 20_000;
        self.run_until(until, false);
        // Clients release what they hold (waiters are cancelled by going away).
        for id in &ids {
            let clients: Vec<u64> = self.nodes[id].clients.keys().copied().skip(1).collect();
            for c in clients {
                let n = self.nodes.get_mut(id).expect("node");
                n.clients.remove(&c);
                n.pending.retain(|_, p| p.client != c);
                self.input(*id, Input::ClientGone(c));
            }
        }
        until = self.now + 10_000;
        self.run_until(until, false);
        self.verify_end()
    }

    /// After the run settled: every node back, every call answered, every lockspace
    /// running, nothing left outstanding or held but orphans.
    fn verify_end(&self) -> Result<(), String> {
        // Nothing failed: nobody may have been fenced, however the nodes booted.
        if !self.params.faults {
            if let Some(l) = self.log.iter().find(|l| l.ends_with("(fenced)")) {
                return Err(format!(
                    "seed {}: fenced without a fault: {l}\n{}",
                    self.seed,
                    self.tail_log()
                ));
            }
        }
        for (id, n) in &self.nodes {
            let core = n.core.as_ref().ok_or_else(|| {
                format!(
                    "seed {}: node {id} did not come back\n{}",
                    self.seed,
                    self.tail_log()
                )
            })?;
            if !n.pending.is_empty() {
                return Err(format!(
                    "seed {}: node {id}: {} calls never answered\n{}",
                    self.seed,
                    n.pending.len(),
                    self.tail_log()
                ));
            }
            for (name, ls) in &core.lockspaces {
                if !ls.running() {
                    return Err(format!(
                        "seed {}: node {id}: lockspace {name} still recovering ({:?}, fencing {:?})\n{}",
                        self.seed,
                        ls.phase(),
                        core.fencing,
                        self.tail_log()
                    ));
                }
                if let Some((lkid, r)) = ls.outstanding().next() {
                    return Err(format!(
                        "seed {}: node {id}: {name} lock {lkid:#x} on {} never completed\n{}",
                        self.seed,
                        String::from_utf8_lossy(r),
                        self.tail_log()
                    ));
                }
                if ls.lock_count() != ls.orphans() || ls.held().count() != ls.lock_count() {
                    return Err(format!(
                        "seed {}: node {id}: {name} keeps {} locks after its clients left ({} orphans)",
                        self.seed,
                        ls.lock_count(),
                        ls.orphans()
                    ));
                }
            }
        }
        Ok(())
    }
}
