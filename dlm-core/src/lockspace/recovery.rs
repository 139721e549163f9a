//! Recovery after a change of the lockspace's members (the kernel's `dlm_recoverd`
//! driven by dlm_controld, here in one sans-IO state machine over the lockspace's CPG
//! group, whose total order makes every member see the same messages in the same order):
//!
//! 1. Stop (`confchg`): locking pauses; calls and peer traffic are held.
//! 2. Conditions: quorum and the fencing of departed nodes (`check_conditions`).
//! 3. Start barrier: every member multicasts Start; when all are in, the generation
//!    advances, the departed nodes' locks are purged from the resources mastered here
//!    and what was in flight to departed masters is settled (`maybe_all_started`).
//! 4. Masters: every member lists the names it masters and those that lost their
//!    master; the directory is rebuilt from that, and the first to claim a masterless
//!    name in CPG order masters it (`masters_done`).
//! 5. Locks: owners send their locks on moved names to the new masters, which rebuild
//!    the queues, the conversions and the value blocks (invalidated when a writer may
//!    have died holding them).
//! 6. Done barrier: locking resumes; held traffic and calls run (`resume`).
//!
//! A change during any step starts over at 1; what a cut-short round rebuilt is dropped.

use std::collections::{BTreeMap as HashMap, BTreeSet, BTreeSet as HashSet};

use super::{dir_node, Lockspace, Op, Overlap};
use crate::flags::{Flags, Status};
use crate::io::Output;
use crate::membership::NodeId;
use crate::message::{LsCpg, Name, RecoverLock};
use crate::mode::Mode;
use crate::resource::{MasterLock, Queue};

/// Where recovery stands (dlm_controld's and the kernel's phases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Stopped, waiting for quorum and fencing (`wait quorum`, `wait fencing`).
    Conditions,
    /// Start sent: waiting for every member's.
    Start,
    /// Directory and masters.
    Masters,
    /// Locks sent to new masters.
    Locks,
    /// Rebuilt: waiting for every member to be.
    Done,
}

/// One round's state: what every member said so far, and what this node must rebuild.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    pub(super) phase: Option<Phase>,
    /// Nodes removed since the last completed recovery, and whether they need fencing.
    pub(super) removed: Vec<(NodeId, bool)>,
    pub(super) starts: HashMap<NodeId, u32>,
    pub(super) got: HashSet<NodeId>,
    pub(super) masters: HashMap<Name, NodeId>,
    pub(super) mastered_by: HashSet<Name>,
    pub(super) new_masters: HashSet<Name>,
    /// Resources whose master left, as this node knew them before recovery.
    pub(super) moved: HashSet<Name>,
}

impl Lockspace {
    /// A configuration change of this lockspace's group: stop and start recovery over.
    pub fn confchg(&mut self, members: Vec<NodeId>, left: &[(NodeId, bool)], now: u64) {
        if self.running() {
            self.recovery_started = now;
        }
        for (n, fence) in left {
            if let Some(r) = self.rec.removed.iter_mut().find(|r| r.0 == *n) {
                r.1 |= *fence;
            } else {
                self.rec.removed.push((*n, *fence));
            }
        }
        self.members = members;
        self.rec.phase = Some(Phase::Conditions);
        self.rec.starts.clear();
        self.rec.got.clear();
        self.rec.masters.clear();
        self.rec.mastered_by.clear();
        // What a cut-short round began to rebuild is incomplete (some owners' locks may
        // never have arrived): dropped, and rebuilt from every owner in the next round.
        for name in std::mem::take(&mut self.rec.new_masters) {
            self.masters.remove(&name);
        }
    }

    /// Stopped and waiting: send Start once the conditions hold.
    pub fn check_conditions(&mut self, ok: bool, out: &mut Vec<Output>) {
        // Nothing to recover before the group's first configuration includes this node.
        if self.rec.phase == Some(Phase::Conditions) && ok && self.members.contains(&self.me) {
            self.rec.phase = Some(Phase::Start);
            out.push(Output::McastLs {
                ls: self.name.clone(),
                msg: LsCpg::Start { gen: self.gen },
            });
            self.maybe_all_started(out);
        }
    }

    /// A recovery message from a member, in CPG order.
    pub fn on_cpg(&mut self, from: NodeId, msg: LsCpg, now: u64, out: &mut Vec<Output>) {
        if !self.members.contains(&from) {
            return;
        }
        match msg {
            LsCpg::Start { gen } => {
                self.rec.starts.insert(from, gen);
                self.maybe_all_started(out);
            }
            LsCpg::Masters {
                mastered,
                orphaned,
                last,
            } => self.on_masters(from, mastered, orphaned, last, out),
            LsCpg::Locks { locks, last } => self.on_locks(from, locks, last, out),
            LsCpg::Done => {
                if self.rec.phase != Some(Phase::Done) {
                    return;
                }
                self.rec.got.insert(from);
                if self.all_got() {
                    self.resume(now, out);
                }
            }
        }
    }

    /// A member's Masters message (or one part of it): the names it masters and those
    /// it lost the master of, which the first to claim in CPG order masters.
    fn on_masters(
        &mut self,
        from: NodeId,
        mastered: Vec<Name>,
        orphaned: Vec<Name>,
        last: bool,
        out: &mut Vec<Output>,
    ) {
        if self.rec.phase != Some(Phase::Masters) {
            return;
        }
        for n in mastered {
            self.rec.masters.insert(n.clone(), from);
            self.rec.mastered_by.insert(n);
        }
        for n in orphaned {
            if !self.rec.mastered_by.contains(&n) {
                // First lookup wins, in CPG order (the same on every node).
                self.rec.masters.entry(n).or_insert(from);
            }
        }
        if !last {
            return;
        }
        self.rec.got.insert(from);
        if self.all_got() {
            self.masters_done(out);
        }
    }

    /// A member's locks on names that moved (or one part of them): the new masters
    /// rebuild those resources. With every member's last part in, conversions and value
    /// blocks are settled and this node is done.
    fn on_locks(
        &mut self,
        from: NodeId,
        locks: Vec<RecoverLock>,
        last: bool,
        out: &mut Vec<Output>,
    ) {
        if self.rec.phase != Some(Phase::Locks) {
            return;
        }
        for rl in locks {
            if !self.rec.new_masters.contains(&rl.name) {
                continue;
            }
            let m = self.masters.entry(rl.name.clone()).or_default();
            m.res.recover_lock(MasterLock {
                id: (from, rl.lkid),
                grmode: rl.grmode,
                rqmode: rl.rqmode,
                flags: rl.flags,
                bast: rl.bast,
                highbast: -1,
                lvb: rl.lvb,
                lvbseq: rl.lvbseq,
                sbflags: 0,
                queue: rl.queue,
            });
        }
        if !last {
            return;
        }
        self.rec.got.insert(from);
        if self.all_got() {
            for name in self.rec.new_masters.clone() {
                let m = self.masters.get_mut(&name).expect("new master");
                m.res.recover_conversion();
                m.res.recover_lvb();
            }
            self.rec.got.clear();
            self.rec.phase = Some(Phase::Done);
            out.push(Output::McastLs {
                ls: self.name.clone(),
                msg: LsCpg::Done,
            });
        }
    }

    fn all_got(&self) -> bool {
        self.members.iter().all(|m| self.rec.got.contains(m))
    }

    /// Every member has stopped and met its conditions: the Start barrier. Purge what
    /// the removed nodes held, settle what was in flight to departed masters, and tell
    /// everyone which names this node masters and which lost theirs.
    fn maybe_all_started(&mut self, out: &mut Vec<Output>) {
        if self.rec.phase != Some(Phase::Start)
            || !self.members.iter().all(|m| self.rec.starts.contains_key(m))
        {
            return;
        }
        self.gen = self
            .rec
            .starts
            .values()
            .copied()
            .max()
            .unwrap_or(0)
            .wrapping_add(1);
        let removed: Vec<NodeId> = self.rec.removed.iter().map(|r| r.0).collect();
        self.purge(&removed);
        let moved = self.forget_lost_masters(&removed);
        self.settle_in_flight(&moved, out);
        self.rec.moved = moved.clone();
        self.send_masters(moved, out);
    }

    /// Drop what the removed nodes held on resources mastered here, the directory (it is
    /// rebuilt), and their traffic held since the stop.
    fn purge(&mut self, removed: &[NodeId]) {
        for m in self.masters.values_mut() {
            for n in removed {
                m.res.purge_node(*n);
            }
        }
        self.dir.clear();
        // Traffic from removed nodes is from before they left (a node that left and came
        // back speaks only after this recovery).
        self.held_msgs.retain(|(from, _)| !removed.contains(from));
    }

    /// Forget the masters that left (and those a cut-short round never settled): the
    /// names with locks of this node on them have moved, and are returned.
    fn forget_lost_masters(&mut self, removed: &[NodeId]) -> HashSet<Name> {
        // A master that left is gone even if its node is back: the new one knows nothing.
        let alive: Vec<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|m| !removed.contains(m))
            .collect();
        let mut moved = HashSet::new();
        // Names that lost their master in a round a newer change cut short have not got
        // one yet, whatever that round assigned: their locks go to a master again.
        let lost_before = std::mem::take(&mut self.rec.moved);
        for (name, o) in &mut self.owned {
            o.lookup = None;
            match o.master {
                _ if lost_before.contains(name) && !o.locks.is_empty() => {
                    moved.insert(name.clone());
                    o.master = None;
                }
                Some(m) if alive.contains(&m) => {}
                Some(_) if !o.locks.is_empty() => {
                    moved.insert(name.clone());
                    o.master = None;
                }
                _ => o.master = None,
            }
        }
        moved
    }

    /// Operations in flight to a master that left, or never sent: requests and
    /// conversions go again after recovery (a middle conversion's outcome is the new
    /// master's to decide), unlocks, forced unlocks and cancels complete here
    /// (`dlm_recover_waiters_pre`).
    fn settle_in_flight(&mut self, moved: &HashSet<Name>, out: &mut Vec<Output>) {
        let mut done = Vec::new();
        for (lkid, l) in &mut self.locks {
            let lost_master = moved.contains(&l.name);
            let unsent =
                self.owned.get(&l.name).is_some_and(|o| o.master.is_none()) && !lost_master;
            if !(lost_master || unsent) {
                continue;
            }
            match l.op {
                // Never reached (or lost with) the master: sent again after recovery.
                Some(Op::Request) if !l.queued => l.resend = true,
                Some(Op::Convert) if !l.queued => {
                    l.resend = true;
                    let middle = matches!(
                        (l.grmode, l.rqmode),
                        (Some(Mode::PR), Some(Mode::CW)) | (Some(Mode::CW), Some(Mode::PR))
                    );
                    if middle && lost_master {
                        // The dead master may have granted it: the new one decides.
                        l.resend = false;
                        l.queued = true;
                        l.uncertain = true;
                        l.grmode = None;
                    }
                }
                // Unlocks to a departed master complete here (dlm_recover_waiters_pre).
                Some(Op::Unlock) if lost_master => done.push((*lkid, Status::Unlock)),
                _ => {}
            }
            if l.force_sent && lost_master {
                // A forced unlock lost with the master completes here, like an unlock.
                done.push((*lkid, Status::Unlock));
            } else if l.cancel_sent && lost_master {
                done.push((*lkid, Status::Cancel));
            }
        }
        for (lkid, status) in done {
            let Some(l) = self.locks.get_mut(&lkid) else {
                continue;
            };
            if status == Status::Cancel && l.op == Some(Op::Convert) {
                l.op = None;
                l.rqmode = None;
                l.queued = false;
                l.cancel_sent = false;
                let m = l.grmode;
                self.callback(lkid, status, m, 0, None, out);
            } else {
                self.drop_lock(lkid, status, out);
            }
        }
    }

    /// This node's Masters message: the names it masters, then those that lost their
    /// master (`moved`).
    fn send_masters(&mut self, moved: HashSet<Name>, out: &mut Vec<Output>) {
        let mastered: Vec<Name> = self.masters.keys().cloned().collect();
        let orphaned: Vec<Name> = moved.into_iter().collect();
        self.rec.got.clear();
        self.rec.phase = Some(Phase::Masters);
        // Mastered names first, as one big message would list them; CPG keeps the order.
        let n = self.recover_chunk;
        let parts = mastered
            .chunks(n)
            .map(|c| (c.to_vec(), Vec::new()))
            .chain(orphaned.chunks(n).map(|c| (Vec::new(), c.to_vec())))
            .collect();
        self.mcast_chunks(parts, out, |(mastered, orphaned), last| LsCpg::Masters {
            mastered,
            orphaned,
            last,
        });
    }

    /// Every member's Masters message is in: the directory and the new masters are
    /// known. Send the locks on resources that moved to their new masters.
    fn masters_done(&mut self, out: &mut Vec<Output>) {
        let me = self.me;
        for (name, m) in &self.rec.masters {
            if dir_node(name, &self.members) == me {
                self.dir.insert(name.clone(), *m);
            }
            if *m == me && !self.rec.mastered_by.contains(name) {
                self.rec.new_masters.insert(name.clone());
                self.masters.entry(name.clone()).or_default();
            }
        }
        let mut locks = Vec::new();
        for name in &self.rec.moved {
            let master = self.rec.masters.get(name).copied();
            if let Some(o) = self.owned.get_mut(name) {
                o.master = master;
            }
        }
        for (lkid, l) in &self.locks {
            if !self.rec.moved.contains(&l.name) || l.resend && l.grmode.is_none() {
                continue;
            }
            let (queue, rqmode) = match (l.op, l.queued, l.resend) {
                (Some(Op::Request), true, _) => (Queue::Wait, l.rqmode),
                (Some(Op::Convert), true, _) => (Queue::Convert, l.rqmode),
                _ => (Queue::Grant, None),
            };
            locks.push(RecoverLock {
                name: l.name.clone(),
                lkid: *lkid,
                grmode: l.grmode,
                rqmode,
                queue,
                flags: l.flags,
                bast: l.bast,
                lvb: l.value,
                lvbseq: l.lvbseq,
            });
        }
        self.rec.got.clear();
        self.rec.phase = Some(Phase::Locks);
        let parts = locks
            .chunks(self.recover_chunk)
            .map(<[_]>::to_vec)
            .collect();
        self.mcast_chunks(parts, out, |locks, last| LsCpg::Locks { locks, last });
    }

    /// Multicast a recovery message in parts (at most `recover_chunk` entries each, so
    /// each stays far below corosync's CPG message limit), `last` set on the final one;
    /// with no parts, one empty message still tells the others this node is done.
    fn mcast_chunks<P: Default>(
        &self,
        mut parts: Vec<P>,
        out: &mut Vec<Output>,
        make: impl Fn(P, bool) -> LsCpg,
    ) {
        if parts.is_empty() {
            parts.push(P::default());
        }
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            out.push(Output::McastLs {
                ls: self.name.clone(),
                msg: make(part, i + 1 == n),
            });
        }
    }

    /// Every member rebuilt: locking resumes. Grant what became grantable, send again
    /// what was lost with departed masters, then the traffic and calls held meanwhile.
    fn resume(&mut self, now: u64, out: &mut Vec<Output>) {
        self.rec = Recovery::default();
        out.push(Output::Log(format!(
            "{}: dlm_recover generation {} done: {} ms, members {:?}",
            self.name,
            self.gen,
            now.saturating_sub(self.recovery_started),
            self.members
        )));
        self.grant_recovered(now, out);
        self.resend_lost(now, out);
        self.release_forced(now, out);
        if !self.joined {
            self.joined = true;
            for (client, req) in std::mem::take(&mut self.join_waiters) {
                out.push(Output::Reply {
                    client,
                    req,
                    result: Ok(0),
                });
            }
        }
        for (from, msg) in std::mem::take(&mut self.held_msgs) {
            self.on_msg(from, msg, now, out);
        }
        for (client, id, req) in std::mem::take(&mut self.held_requests) {
            self.request(client, id, req, now, out);
        }
    }

    /// Grant what became grantable on the resources mastered here (purged holders,
    /// rebuilt queues).
    fn grant_recovered(&mut self, now: u64, out: &mut Vec<Output>) {
        let names: Vec<Name> = self.masters.keys().cloned().collect();
        for name in names {
            let m = self.masters.get_mut(&name).expect("master");
            let ev = m.res.recover_grant();
            self.route(&name, ev, None, now, out);
        }
    }

    /// Send again what was lost with departed masters or never sent: one lookup per
    /// name whose master is not known yet.
    fn resend_lost(&mut self, now: u64, out: &mut Vec<Output>) {
        let redo: Vec<(Name, u32)> = self
            .locks
            .iter()
            .filter(|(_, l)| {
                l.resend
                    || (l.op.is_some()
                        && !l.queued
                        && self.owned.get(&l.name).is_some_and(|o| o.master.is_none()))
            })
            .map(|(id, l)| (l.name.clone(), *id))
            .collect();
        for (_, lkid) in &redo {
            let l = self.locks.get_mut(lkid).expect("lock");
            l.resend = false;
            // Whatever was in flight went to a master that is gone or forgot it.
            l.in_flight = false;
        }
        let mut looked_up = BTreeSet::new();
        for (name, lkid) in redo {
            if looked_up.contains(&name) || !self.locks.contains_key(&lkid) {
                continue;
            }
            if self.owned[&name].master.is_some() {
                self.send_op(lkid, now, out);
            } else {
                looked_up.insert(name);
                // One lookup per name: its reply (at once when this node is the
                // directory) sends every operation waiting on the name.
                self.send_op(lkid, now, out);
            }
        }
    }

    /// The unlocks of locks whose client went away while recovery ran.
    fn release_forced(&mut self, now: u64, out: &mut Vec<Output>) {
        let forced: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| l.client.is_none() && l.overlap == Some(Overlap::ForceUnlock))
            .map(|(id, _)| *id)
            .collect();
        for lkid in forced {
            // An earlier unlock here, mastered locally, may have ended this lock already.
            let Some(l) = self.locks.get_mut(&lkid) else {
                continue;
            };
            l.overlap = None;
            match l.op {
                None => self.start_unlock(lkid, Flags(0), now, out),
                Some(Op::Unlock) => {}
                Some(_) => self.cancel_or_force(lkid, Overlap::ForceUnlock, now, out),
            }
        }
    }
}
