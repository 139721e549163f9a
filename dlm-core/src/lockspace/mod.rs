//! One lockspace on one node, sans-IO: every call appends [`Output`]s; messages to
//! itself are handled at once (a local master costs no message).
//!
//! A lockspace plays four parts at once, one file each, all on the one [`Lockspace`]
//! (they share its tables, so they are steps of one state machine, not separate ones):
//! - `owner`: the process copies of this node's locks, the client calls on them
//!   (lock, convert, unlock, cancel, adopt) and the callbacks (ASTs) they end in;
//! - `master`: the resources this node masters, fed the owners' operations; the grant
//!   queue, compatibility and conversion deadlock rules themselves are
//!   [`crate::resource`]'s;
//! - `directory`: this node's share of the resource directory (name → master), and the
//!   owner's lookups against it;
//! - `recovery`: the stop/start barriers after a membership change, the purge of what
//!   departed nodes held, the rebuild of moved resources on new masters and the value
//!   block's invalidation.
//!
//! This file holds the state they share, the routing of peer messages to them, and
//! read-only views for dumps and the simulation's invariant checks.

mod directory;
mod dump;
mod master;
mod owner;
mod recovery;

use std::collections::BTreeMap as HashMap;

use crate::api::{ClientId, Request};
use crate::flags::Flags;
use crate::io::Output;
use crate::membership::NodeId;
use crate::message::{Msg, Name};
use crate::mode::Mode;
use crate::resource::Resource;

pub use directory::dir_node;
use master::MRes;
use owner::{ORes, Op, Overlap, PLock};
pub use recovery::Phase;
use recovery::Recovery;

pub struct Lockspace {
    pub name: String,
    me: NodeId,
    pub members: Vec<NodeId>,
    /// Recovery generation, agreed at every recovery's Start barrier.
    pub gen: u32,
    /// Whether this node finished its first recovery (the join).
    pub joined: bool,
    locks: HashMap<u32, PLock>,
    owned: HashMap<Name, ORes>,
    masters: HashMap<Name, MRes>,
    dir: HashMap<Name, NodeId>,
    next_lkid: u32,
    next_lookup: u64,
    rec: Recovery,
    held_msgs: Vec<(NodeId, Msg)>,
    held_requests: Vec<(ClientId, u64, Request)>,
    pub join_waiters: Vec<(ClientId, u64)>,
    toss_ms: u64,
    /// Entries per recovery message (CoreConfig::recover_chunk).
    recover_chunk: usize,
    recovery_started: u64,
}

impl Lockspace {
    pub fn new(name: String, me: NodeId, toss_ms: u64, recover_chunk: usize) -> Self {
        Lockspace {
            name,
            me,
            members: Vec::new(),
            gen: 0,
            joined: false,
            locks: HashMap::new(),
            owned: HashMap::new(),
            masters: HashMap::new(),
            dir: HashMap::new(),
            next_lkid: 1,
            next_lookup: 1,
            rec: Recovery {
                phase: Some(Phase::Conditions),
                ..Recovery::default()
            },
            held_msgs: Vec::new(),
            held_requests: Vec::new(),
            join_waiters: Vec::new(),
            toss_ms,
            recover_chunk: recover_chunk.max(1),
            recovery_started: 0,
        }
    }

    pub fn running(&self) -> bool {
        self.rec.phase.is_none()
    }

    pub fn phase(&self) -> Option<Phase> {
        self.rec.phase
    }

    /// Past its first Start barrier: from here on it may grant locks (what makes a
    /// daemon stateful, as dlm_controld's `start_kernel` does).
    pub fn has_run(&self) -> bool {
        self.joined
            || matches!(
                self.rec.phase,
                Some(Phase::Masters | Phase::Locks | Phase::Done)
            )
    }

    /// Nodes removed since the last recovery that must be fenced first.
    pub fn awaiting_fence(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.rec.removed.iter().filter(|r| r.1).map(|r| r.0)
    }

    pub fn lock_count(&self) -> usize {
        self.locks.len()
    }

    fn send_to_master(&mut self, master: NodeId, msg: Msg, now: u64, out: &mut Vec<Output>) {
        if master == self.me {
            self.on_msg(self.me, msg, now, out);
        } else {
            out.push(Output::Send { to: master, msg });
        }
    }

    fn send_to_owner(&mut self, owner: NodeId, msg: Msg, now: u64, out: &mut Vec<Output>) {
        if owner == self.me {
            self.on_msg(self.me, msg, now, out);
        } else {
            out.push(Output::Send { to: owner, msg });
        }
    }

    /// A lock message from `from` (possibly this node), to the part it is for. Held
    /// while recovery runs.
    pub fn on_msg(&mut self, from: NodeId, msg: Msg, now: u64, out: &mut Vec<Output>) {
        if !self.running() {
            self.held_msgs.push((from, msg));
            return;
        }
        if !self.members.contains(&from) {
            return; // from a node that left: its traffic ended with it
        }
        match msg {
            // To this node as the directory, or to an owner from the directory.
            Msg::Lookup { gen, name, id, .. } => self.on_lookup(from, gen, name, id, now, out),
            Msg::LookupReply {
                gen,
                name,
                id,
                master,
                ..
            } => self.on_lookup_reply(gen, name, id, master, now, out),
            Msg::Remove { gen, name, .. } => self.on_remove(from, gen, name),
            // To this node as a master.
            Msg::Request { .. } | Msg::Convert { .. } | Msg::Unlock { .. } | Msg::Cancel { .. } => {
                self.on_master_msg(from, msg, now, out)
            }
            // To this node as an owner.
            Msg::NotMaster { name, lkid, .. } => self.on_not_master(name, lkid, now, out),
            Msg::Cast {
                lkid,
                status,
                mode,
                sbflags,
                lvb,
                ..
            } => self.on_cast(lkid, status, mode, sbflags, lvb, now, out),
            Msg::Queued { lkid, .. } => self.on_queued(lkid, now, out),
            Msg::Bast { lkid, mode, .. } => self.bast(lkid, mode, out),
            Msg::CancelNoop { lkid, .. } => self.on_cancel_noop(lkid),
        }
    }

    /// Time passes: resources unused for `toss_ms` are let go (the kernel's toss list),
    /// by their master and by their owners' records.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Output>) {
        if !self.running() {
            return;
        }
        self.toss_masters(now, out);
        self.toss_owned(now);
    }

    // ---- views for dumps and the simulation's invariant checks ---------------------------

    /// The locks this node's clients may rely on: granted, and not being unlocked
    /// (an unlocking client gave its lock up when it asked): (name, lkid, mode).
    pub fn held(&self) -> impl Iterator<Item = (&Name, u32, Mode)> {
        self.locks
            .iter()
            .filter(|(_, l)| l.op != Some(Op::Unlock) && !l.force_sent)
            .filter_map(|(id, l)| {
                // A conversion with CONVDEADLK lets the master demote the granted mode
                // to NL while it waits (DLM_SBF_DEMOTED tells the holder at the end).
                let demotable = l.op == Some(Op::Convert) && l.flags.has(Flags::CONVDEADLK);
                l.grmode
                    .map(|m| (&l.name, *id, if demotable { Mode::NL } else { m }))
            })
    }

    /// A conversion of `lkid` waiting for its master's answer that the master may grant
    /// in a mode not above the granted one: a middle conversion (PR↔CW), or one allowed
    /// to end in ALTPR's or ALTCW's mode. The master may already have granted that mode
    /// (and others compatible with it), so the holder has either mode until the answer
    /// comes, as in the kernel. Returns that other mode.
    pub fn middle_conversion(&self, lkid: u32) -> Option<Mode> {
        let l = self.locks.get(&lkid)?;
        if l.op != Some(Op::Convert) {
            return None;
        }
        match (l.grmode, l.rqmode) {
            (Some(Mode::PR), Some(Mode::CW)) | (Some(Mode::CW), Some(Mode::PR)) => l.rqmode,
            _ if l.flags.has(Flags::ALTPR) => Some(Mode::PR),
            _ if l.flags.has(Flags::ALTCW) => Some(Mode::CW),
            _ => None,
        }
    }

    /// The resource a lock of this node is on.
    pub fn resource_of(&self, lkid: u32) -> Option<&Name> {
        self.locks.get(&lkid).map(|l| &l.name)
    }

    /// Locks with an operation still outstanding: (lkid, name).
    pub fn outstanding(&self) -> impl Iterator<Item = (u32, &Name)> {
        self.locks
            .iter()
            .filter(|(_, l)| l.op.is_some())
            .map(|(id, l)| (*id, &l.name))
    }

    /// Locks without a client (orphans, or released after the client went away).
    pub fn orphans(&self) -> usize {
        self.locks.values().filter(|l| l.client.is_none()).count()
    }

    /// Resources mastered here.
    pub fn mastered(&self) -> impl Iterator<Item = (&Name, &Resource)> {
        self.masters.iter().map(|(n, m)| (n, &m.res))
    }

    /// Release everything of this node at once (a forced leave).
    pub fn forget_all(&mut self) {
        self.locks.clear();
        self.owned.clear();
    }
}
