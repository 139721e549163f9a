//! One lockspace on one node: the process copies of this node's locks (owner side), the
//! resources it masters (master side), its share of the resource directory, and its
//! part in recovery. Sans-IO: every call appends `Output`s; messages to itself are
//! handled at once (a local master costs no message).

mod dump;

use std::collections::{BTreeMap as HashMap, BTreeSet, BTreeSet as HashSet};

use crate::api::{Callback, ClientId, Errno, Request};
use crate::flags::{libc_errno::*, Flags, Status, SBF_VALNOTVALID};
use crate::membership::NodeId;
use crate::message::{LsCpg, Msg, Name, RecoverLock};
use crate::mode::{LvbOp, Mode};
use crate::node::Output;
use crate::resource::{Event, LockId, Lvb, MasterLock, Queue, Refused, Resource};

/// The directory node of `name` among the sorted `members` (`dlm_hash2nodeid`: the
/// high bits of the name's hash pick a member, every member weight 1).
pub fn dir_node(name: &[u8], members: &[NodeId]) -> NodeId {
    // FNV-1a: stable across builds and machines, which the directory needs.
    let mut h: u32 = 0x811c_9dc5;
    for b in name {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    members[((h >> 16) as usize) % members.len()]
}

/// The operation an owner has outstanding at the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Request,
    Convert,
    Unlock,
}

/// A cancel or forced unlock asked for while the operation's first reply was pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overlap {
    Cancel,
    ForceUnlock,
}

/// A process copy: this node's view of one of its locks.
#[derive(Clone, Debug)]
struct PLock {
    name: Name,
    /// `None` for an orphan (a PERSISTENT lock whose client went away).
    client: Option<ClientId>,
    grmode: Option<Mode>,
    rqmode: Option<Mode>,
    flags: Flags,
    bast: bool,
    persistent: bool,
    /// The caller's value block for the operation under way (what a write writes).
    lvb: Option<Lvb>,
    /// The resource's value as this lock last read or wrote it, with its sequence
    /// number: what recovery rebuilds the value from. Kept apart from `lvb` so that a
    /// caller's buffer nobody wrote is never taken for the resource's value (the kernel
    /// recovers from the caller's buffer, which can resurrect bytes no one wrote).
    value: Option<Lvb>,
    lvbseq: u32,
    op: Option<Op>,
    /// The master queued the request or conversion (it waits there).
    queued: bool,
    /// `op` went to a master and no answer came yet. A master lookup's reply sends only
    /// the operations not in flight: one refused with NotMaster is resent on its own,
    /// so that a burst of refusals does not send every waiting request once per refusal
    /// (each copy would be queued at the master again).
    in_flight: bool,
    overlap: Option<Overlap>,
    cancel_sent: bool,
    /// A forced unlock went to the master while the request or conversion waited.
    force_sent: bool,
    /// Resend `op` once recovery is done (its master left).
    resend: bool,
    /// A middle conversion (PR↔CW) lost with its master: the granted mode is unknown
    /// until the new master decides (the kernel sets the owner's grmode to IV).
    uncertain: bool,
    /// Callback suppression state (fs/dlm/ast.c `dlm_may_skip_callback`).
    last_cast: Option<Mode>,
    last_bast: Option<Mode>,
    last_was_bast: bool,
}

impl PLock {
    /// What the lock holds of the resource's value after a grant from `from` to `to`
    /// (`set_lvb_lock`'s table, seen from the owner): what it read (`cast`, `None`
    /// when the resource had no value), or what it wrote.
    fn hold_value(&mut self, from: Option<Mode>, to: Mode, cast: Option<(Lvb, u32)>, sbflags: u8) {
        if !self.flags.has(Flags::VALBLK) {
            return;
        }
        match Mode::lvb_op(from, to) {
            // A value read while marked not valid is not one to rebuild from.
            LvbOp::Read if sbflags & SBF_VALNOTVALID != 0 => self.value = None,
            LvbOp::Read => {
                self.value = cast.map(|(v, _)| v);
                if let Some((_, seq)) = cast {
                    self.lvbseq = seq;
                }
            }
            LvbOp::Write if self.flags.has(Flags::IVVALBLK) => self.value = None,
            LvbOp::Write => {
                self.value = self.lvb;
                self.lvbseq = self.lvbseq.wrapping_add(1);
            }
            LvbOp::None => {}
        }
    }
}

/// The owner's record of a resource name: where its master is.
#[derive(Clone, Debug, Default)]
struct ORes {
    master: Option<NodeId>,
    /// The id of the lookup in flight.
    lookup: Option<u64>,
    locks: BTreeSet<u32>,
    idle_since: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct MRes {
    res: Resource,
    empty_since: Option<u64>,
}

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

#[derive(Debug, Default)]
struct Recovery {
    phase: Option<Phase>,
    /// Nodes removed since the last completed recovery, and whether they need fencing.
    removed: Vec<(NodeId, bool)>,
    starts: HashMap<NodeId, u32>,
    got: HashSet<NodeId>,
    masters: HashMap<Name, NodeId>,
    mastered_by: HashSet<Name>,
    new_masters: HashSet<Name>,
    /// Resources whose master left, as this node knew them before recovery.
    moved: HashSet<Name>,
}

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

fn bad(code: i32, detail: impl Into<String>) -> Result<u32, Errno> {
    Err(Errno::new(code, detail))
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

    // ---- client calls ---------------------------------------------------------------

    /// A client call. While the lockspace is stopped, calls wait (as `dlm_lock` blocks
    /// on `ls_in_recovery` in the kernel).
    pub fn request(
        &mut self,
        client: ClientId,
        id: u64,
        req: Request,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if !self.running() {
            self.held_requests.push((client, id, req));
            return;
        }
        let result = match req {
            Request::Lock {
                name,
                mode,
                flags,
                lvb,
                bast,
                lkid,
                ..
            } => self.lock(client, name, mode, flags, lvb, bast, lkid, now, out),
            Request::Unlock {
                lkid, flags, lvb, ..
            } => self.unlock(client, lkid, flags, lvb, now, out),
            _ => bad(EINVAL, "not a lock call"),
        };
        out.push(Output::Reply {
            client,
            req: id,
            result,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn lock(
        &mut self,
        client: ClientId,
        name: Name,
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        bast: bool,
        lkid: u32,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<u32, Errno> {
        if let Err(why) = flags.check_lock(mode, name.len()) {
            return bad(EINVAL, why);
        }
        if flags.has(Flags::CONVERT) {
            return self.convert(client, lkid, mode, flags, lvb, now, out);
        }
        if flags.has(Flags::ORPHAN) {
            return self.adopt(client, &name, mode, out);
        }
        let lkid = self.new_lkid();
        self.locks.insert(
            lkid,
            PLock {
                name: name.clone(),
                client: Some(client),
                grmode: None,
                rqmode: Some(mode),
                flags,
                bast,
                persistent: flags.has(Flags::PERSISTENT),
                lvb: if flags.has(Flags::VALBLK) {
                    Some(lvb.unwrap_or([0; 32]))
                } else {
                    None
                },
                value: None,
                lvbseq: 0,
                op: Some(Op::Request),
                queued: false,
                in_flight: false,
                overlap: None,
                cancel_sent: false,
                force_sent: false,
                resend: false,
                uncertain: false,
                last_cast: None,
                last_bast: None,
                last_was_bast: false,
            },
        );
        let o = self.owned.entry(name).or_default();
        o.locks.insert(lkid);
        o.idle_since = None;
        self.send_op(lkid, now, out);
        Ok(lkid)
    }

    fn new_lkid(&mut self) -> u32 {
        loop {
            let id = self.next_lkid;
            self.next_lkid = self.next_lkid.wrapping_add(1).max(1);
            if !self.locks.contains_key(&id) {
                return id;
            }
        }
    }

    /// `LKF_ORPHAN`: adopt an orphan of the same name and mode (`dlm_user_adopt_orphan`).
    fn adopt(
        &mut self,
        client: ClientId,
        name: &[u8],
        mode: Mode,
        out: &mut Vec<Output>,
    ) -> Result<u32, Errno> {
        let mut other_mode = false;
        let mut found = None;
        for (id, l) in &self.locks {
            if l.client.is_none() && l.name == name && l.op.is_none() {
                if l.grmode == Some(mode) {
                    found = Some(*id);
                    break;
                }
                other_mode = true;
            }
        }
        match found {
            Some(id) => {
                let l = self.locks.get_mut(&id).expect("lock");
                l.client = Some(client);
                let (mode, lvb) = (l.grmode, l.value);
                self.callback(id, Status::Granted, mode, 0, lvb, out);
                Ok(id)
            }
            None if other_mode => bad(EAGAIN, "orphans of that name are held in another mode"),
            None => bad(ENOENT, "no orphan lock of that name"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn convert(
        &mut self,
        client: ClientId,
        lkid: u32,
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<u32, Errno> {
        let Some(l) = self
            .locks
            .get_mut(&lkid)
            .filter(|l| l.client == Some(client))
        else {
            return bad(ENOENT, format!("no lock {lkid:#x} of this client"));
        };
        if l.op.is_some() || l.grmode.is_none() {
            return bad(EBUSY, "the lock is being locked, converted or unlocked");
        }
        let gr = l.grmode.expect("granted");
        if flags.has(Flags::QUECVT) && !gr.quecvt_allowed(mode) {
            return bad(EINVAL, format!("QUECVT not allowed for {gr} to {mode}"));
        }
        l.flags = flags;
        if flags.has(Flags::VALBLK) {
            l.lvb = Some(lvb.or(l.lvb).unwrap_or([0; 32]));
        }
        l.rqmode = Some(mode);
        if gr.is_down_conversion(mode) {
            // Down-conversions cannot wait: completed here at once, the master told
            // without a reply (the kernel's `send_convert` for down-conversions).
            l.hold_value(Some(gr), mode, None, 0);
            l.grmode = Some(mode);
            l.rqmode = None;
            let lvb = l.lvb;
            let name = l.name.clone();
            let master = self.owned[&name].master.expect("granted lock has a master");
            let msg = Msg::Convert {
                ls: self.name.clone(),
                name,
                lkid,
                mode,
                flags,
                lvb: if flags.has(Flags::VALBLK) { lvb } else { None },
                reply: false,
            };
            // Completed before the master hears of it (it may grant others at once).
            self.callback(lkid, Status::Granted, Some(mode), 0, None, out);
            self.send_to_master(master, msg, now, out);
            return Ok(lkid);
        }
        l.op = Some(Op::Convert);
        self.send_op(lkid, now, out);
        Ok(lkid)
    }

    fn unlock(
        &mut self,
        client: ClientId,
        lkid: u32,
        flags: Flags,
        lvb: Option<Lvb>,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<u32, Errno> {
        if let Err(why) = flags.check_unlock() {
            return bad(EINVAL, why);
        }
        let Some(l) = self
            .locks
            .get_mut(&lkid)
            .filter(|l| l.client == Some(client))
        else {
            return bad(ENOENT, format!("no lock {lkid:#x} of this client"));
        };
        if l.op == Some(Op::Unlock) {
            return bad(EINPROGRESS, "already being unlocked");
        }
        if flags.has(Flags::CANCEL) {
            if l.op.is_none() {
                return Ok(lkid); // nothing to cancel: no callback follows
            }
            self.cancel_or_force(lkid, Overlap::Cancel, now, out);
            return Ok(lkid);
        }
        if l.op.is_some() && !flags.has(Flags::FORCEUNLOCK) {
            // Refused before anything changes: the buffer of the operation under way
            // is not this call's to replace.
            return bad(EBUSY, "the lock is being locked or converted");
        }
        if flags.has(Flags::VALBLK) {
            l.lvb = Some(lvb.or(l.lvb).unwrap_or([0; 32]));
        }
        if l.op.is_some() {
            self.cancel_or_force(lkid, Overlap::ForceUnlock, now, out);
            return Ok(lkid);
        }
        l.flags = flags;
        self.start_unlock(lkid, flags, now, out);
        Ok(lkid)
    }

    fn start_unlock(&mut self, lkid: u32, flags: Flags, now: u64, out: &mut Vec<Output>) {
        let l = self.locks.get_mut(&lkid).expect("lock");
        l.op = Some(Op::Unlock);
        l.flags = flags;
        let msg = Msg::Unlock {
            ls: self.name.clone(),
            name: l.name.clone(),
            lkid,
            flags,
            lvb: if flags.has(Flags::VALBLK) {
                l.lvb
            } else {
                None
            },
        };
        match self.owned[&l.name].master {
            Some(master) => self.send_to_master(master, msg, now, out),
            // A request on the same name was bounced (NotMaster: its master had not yet
            // heard the directory's answer) and the master is being looked up again,
            // though this lock was granted: the unlock goes when the lookup answers.
            None => self.send_op(lkid, now, out),
        }
    }

    /// A cancel or forced unlock of a lock whose request or conversion is outstanding.
    fn cancel_or_force(&mut self, lkid: u32, what: Overlap, now: u64, out: &mut Vec<Output>) {
        let l = self.locks.get_mut(&lkid).expect("lock");
        let name = l.name.clone();
        let master = self.owned[&name].master;
        let sent = master.is_some() && !(l.resend || self.owned[&name].lookup.is_some());
        if !sent {
            // Still waiting for a lookup: nothing reached a master.
            let (status, keep) = match (what, l.op) {
                (Overlap::Cancel, Some(Op::Convert)) => (Status::Cancel, true),
                (Overlap::Cancel, _) => (Status::Cancel, false),
                (Overlap::ForceUnlock, _) => (Status::Unlock, false),
            };
            if keep {
                l.op = None;
                l.rqmode = None;
                let m = l.grmode;
                self.callback(lkid, status, m, 0, None, out);
            } else {
                self.drop_lock(lkid, status, out);
            }
            return;
        }
        if !l.queued {
            l.overlap = Some(what);
            return;
        }
        self.send_overlap(lkid, what, now, out);
    }

    fn send_overlap(&mut self, lkid: u32, what: Overlap, now: u64, out: &mut Vec<Output>) {
        let l = self.locks.get_mut(&lkid).expect("lock");
        let master = self.owned[&l.name].master.expect("queued at a master");
        let msg = match what {
            Overlap::Cancel => {
                l.cancel_sent = true;
                Msg::Cancel {
                    ls: self.name.clone(),
                    name: l.name.clone(),
                    lkid,
                }
            }
            Overlap::ForceUnlock => {
                l.force_sent = true;
                Msg::Unlock {
                    ls: self.name.clone(),
                    name: l.name.clone(),
                    lkid,
                    flags: Flags(Flags::FORCEUNLOCK),
                    lvb: None,
                }
            }
        };
        self.send_to_master(master, msg, now, out);
    }

    /// A client went away: its PERSISTENT granted locks become orphans, the rest are
    /// released (the kernel's `dlm_user_purge` on close).
    pub fn client_gone(&mut self, client: ClientId, now: u64, out: &mut Vec<Output>) {
        self.held_requests.retain(|(c, _, _)| *c != client);
        self.join_waiters.retain(|(c, _)| *c != client);
        let mine: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| l.client == Some(client))
            .map(|(id, _)| *id)
            .collect();
        let running = self.running();
        for lkid in mine {
            // Releasing an earlier lock, mastered here, may have ended this one already.
            let Some(l) = self.locks.get_mut(&lkid) else {
                continue;
            };
            l.client = None;
            if l.persistent && l.op.is_none() && l.grmode.is_some() {
                continue; // an orphan now
            }
            if !running {
                // Done after recovery, when masters are known again.
                l.overlap = Some(Overlap::ForceUnlock);
                continue;
            }
            match l.op {
                None => self.start_unlock(lkid, Flags(0), now, out),
                Some(Op::Unlock) => {}
                Some(_) => self.cancel_or_force(lkid, Overlap::ForceUnlock, now, out),
            }
        }
    }

    // ---- owner side: sending -------------------------------------------------------

    /// Send the lock's outstanding operation to its master, looking the master up first
    /// when it is not known.
    fn send_op(&mut self, lkid: u32, now: u64, out: &mut Vec<Output>) {
        let name = self.locks[&lkid].name.clone();
        let o = self.owned.entry(name.clone()).or_default();
        match o.master {
            Some(m) if self.members.contains(&m) => {
                let l = &self.locks[&lkid];
                let msg = match l.op {
                    Some(Op::Request) => Msg::Request {
                        ls: self.name.clone(),
                        name,
                        lkid,
                        mode: l.rqmode.expect("requested"),
                        flags: l.flags,
                        bast: l.bast,
                        lvb: l.lvb.filter(|_| l.flags.has(Flags::VALBLK)),
                    },
                    Some(Op::Convert) => Msg::Convert {
                        ls: self.name.clone(),
                        name,
                        lkid,
                        mode: l.rqmode.expect("requested"),
                        flags: l.flags,
                        lvb: l.lvb.filter(|_| l.flags.has(Flags::VALBLK)),
                        reply: true,
                    },
                    Some(Op::Unlock) => Msg::Unlock {
                        ls: self.name.clone(),
                        name,
                        lkid,
                        flags: l.flags,
                        lvb: l.lvb.filter(|_| l.flags.has(Flags::VALBLK)),
                    },
                    None => return,
                };
                // Before sending: a local master answers within the call.
                self.locks.get_mut(&lkid).expect("lock").in_flight = true;
                self.send_to_master(m, msg, now, out);
            }
            _ => {
                o.master = None;
                if o.lookup.is_none() {
                    self.lookup(&name, now, out);
                }
            }
        }
    }

    fn lookup(&mut self, name: &Name, now: u64, out: &mut Vec<Output>) {
        let id = self.next_lookup;
        self.next_lookup += 1;
        self.owned.get_mut(name).expect("owned").lookup = Some(id);
        if self.masters.contains_key(name) {
            // This node masters the name already. Asking the directory could also race
            // with this node's own Remove of it (sent on toss after this lookup): the
            // reply would name this node while the directory forgets it, and a second
            // master would follow.
            let gen = self.gen;
            return self.on_lookup_reply(gen, name.clone(), id, self.me, now, out);
        }
        let dir = dir_node(name, &self.members);
        let msg = Msg::Lookup {
            ls: self.name.clone(),
            gen: self.gen,
            name: name.clone(),
            id,
        };
        if dir == self.me {
            self.on_msg(self.me, msg, now, out);
        } else {
            out.push(Output::Send { to: dir, msg });
        }
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

    // ---- callbacks --------------------------------------------------------------------

    /// Queue a completion to the lock's client, recording what the bast suppression
    /// rules need.
    fn callback(
        &mut self,
        lkid: u32,
        status: Status,
        mode: Option<Mode>,
        sbflags: u8,
        lvb: Option<Lvb>,
        out: &mut Vec<Output>,
    ) {
        let l = self.locks.get_mut(&lkid).expect("lock");
        l.last_cast = mode;
        l.last_was_bast = false;
        if let Some(client) = l.client {
            out.push(Output::Callback {
                client,
                ls: self.name.clone(),
                cb: Callback::Completion {
                    lkid,
                    status,
                    mode,
                    sbflags,
                    lvb,
                },
            });
        }
    }

    /// A blocking callback, unless `dlm_may_skip_callback` would drop it: the blocked
    /// mode is compatible with the last granted one, or the callback just before was a
    /// bast for the same or (above PR) a more restrictive mode.
    fn bast(&mut self, lkid: u32, mode: Mode, out: &mut Vec<Output>) {
        let Some(l) = self.locks.get_mut(&lkid) else {
            return;
        };
        if l.last_cast.is_some_and(|c| c.compatible(mode)) {
            return;
        }
        if l.last_was_bast {
            if let Some(prev) = l.last_bast {
                if prev == mode || (prev > mode && prev > Mode::PR) {
                    return;
                }
            }
        }
        l.last_bast = Some(mode);
        l.last_was_bast = true;
        if let (Some(client), true) = (l.client, l.bast) {
            out.push(Output::Callback {
                client,
                ls: self.name.clone(),
                cb: Callback::Blocking { lkid, mode },
            });
        }
    }

    /// The lock ends: a final completion, and the owner record forgets it.
    fn drop_lock(&mut self, lkid: u32, status: Status, out: &mut Vec<Output>) {
        self.callback(lkid, status, None, 0, None, out);
        let l = self.locks.remove(&lkid).expect("lock");
        if let Some(o) = self.owned.get_mut(&l.name) {
            o.locks.remove(&lkid);
        }
    }

    // ---- messages ---------------------------------------------------------------------

    /// A lock message from `from` (possibly this node). Held while recovery runs.
    pub fn on_msg(&mut self, from: NodeId, msg: Msg, now: u64, out: &mut Vec<Output>) {
        if !self.running() {
            self.held_msgs.push((from, msg));
            return;
        }
        if !self.members.contains(&from) {
            return; // from a node that left: its traffic ended with it
        }
        match msg {
            Msg::Lookup { gen, name, id, .. } => self.on_lookup(from, gen, name, id, now, out),
            Msg::LookupReply {
                gen,
                name,
                id,
                master,
                ..
            } => self.on_lookup_reply(gen, name, id, master, now, out),
            Msg::Remove { gen, name, .. } => {
                if gen == self.gen && self.dir.get(&name) == Some(&from) {
                    self.dir.remove(&name);
                }
            }
            Msg::Request {
                name,
                lkid,
                mode,
                flags,
                bast,
                lvb,
                ..
            } => {
                let Some(m) = self.masters.get_mut(&name) else {
                    let ls = self.name.clone();
                    self.send_to_owner(from, Msg::NotMaster { ls, name, lkid }, now, out);
                    return;
                };
                if m.res.lock((from, lkid)).is_some() {
                    // A second copy of a request this master has: queuing it again
                    // would put one lock on two queues. Owners send each request once.
                    out.push(Output::Log(format!(
                        "{}: node {from} sent request {lkid:#x} on {} again: dropped",
                        self.name,
                        String::from_utf8_lossy(&name)
                    )));
                    return;
                }
                let ev = m
                    .res
                    .request(MasterLock::new((from, lkid), mode, flags, bast, lvb));
                self.route(&name, ev, None, now, out);
            }
            Msg::Convert {
                name,
                lkid,
                mode,
                flags,
                lvb,
                reply,
                ..
            } => {
                let skip = (!reply).then_some((from, lkid));
                self.master_op(from, "convert", name, lkid, skip, now, out, |r, id| {
                    r.convert(id, mode, flags, lvb)
                });
            }
            Msg::Unlock {
                name,
                lkid,
                flags,
                lvb,
                ..
            } => {
                self.master_op(from, "unlock", name, lkid, None, now, out, |r, id| {
                    match r.unlock(id, flags, lvb) {
                        // A forced unlock that crossed the lock's end (EAGAIN, ECANCEL).
                        Err(Refused::NoSuchLock) if flags.has(Flags::FORCEUNLOCK) => Ok(Vec::new()),
                        done => done,
                    }
                });
            }
            Msg::Cancel { name, lkid, .. } => {
                self.master_op(from, "cancel", name, lkid, None, now, out, |r, id| {
                    r.cancel(id)
                });
            }
            Msg::NotMaster { name, lkid, .. } => {
                let ok = self
                    .locks
                    .get(&lkid)
                    .is_some_and(|l| l.op == Some(Op::Request) && !l.queued && l.name == name);
                if ok {
                    if let Some(o) = self.owned.get_mut(&name) {
                        o.master = None;
                    }
                    self.locks.get_mut(&lkid).expect("lock").in_flight = false;
                    self.send_op(lkid, now, out);
                }
            }
            Msg::Cast {
                lkid,
                status,
                mode,
                sbflags,
                lvb,
                ..
            } => self.on_cast(lkid, status, mode, sbflags, lvb, now, out),
            Msg::Queued { lkid, .. } => {
                if let Some(l) = self.locks.get_mut(&lkid) {
                    l.queued = true;
                    l.in_flight = false;
                    if let Some(what) = l.overlap.take() {
                        self.send_overlap(lkid, what, now, out);
                    }
                }
            }
            Msg::Bast { lkid, mode, .. } => self.bast(lkid, mode, out),
            Msg::CancelNoop { lkid, .. } => {
                if let Some(l) = self.locks.get_mut(&lkid) {
                    l.cancel_sent = false;
                }
            }
        }
    }

    /// An owner's operation on a lock of a resource this node masters: apply it and send
    /// the outcome to the owners; a refusal is the owner's protocol error, logged.
    #[allow(clippy::too_many_arguments)]
    fn master_op(
        &mut self,
        from: NodeId,
        what: &str,
        name: Name,
        lkid: u32,
        skip: Option<LockId>,
        now: u64,
        out: &mut Vec<Output>,
        op: impl FnOnce(&mut Resource, LockId) -> Result<Vec<Event>, Refused>,
    ) {
        let result = match self.masters.get_mut(&name) {
            Some(m) => op(&mut m.res, (from, lkid)).map_err(|r| format!("{r:?}")),
            None => Err("not master".to_string()),
        };
        match result {
            Ok(ev) => self.route(&name, ev, skip, now, out),
            Err(why) => out.push(Output::Log(format!(
                "{}: {what} of lock {lkid:#x} on \"{}\" from node {from} refused: {why}",
                self.name,
                String::from_utf8_lossy(&name),
            ))),
        }
    }

    fn on_lookup(
        &mut self,
        from: NodeId,
        gen: u32,
        name: Name,
        id: u64,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if gen != self.gen || dir_node(&name, &self.members) != self.me {
            return; // from before the last recovery: the sender asks again
        }
        let master = *self.dir.entry(name.clone()).or_insert(from);
        let reply = Msg::LookupReply {
            ls: self.name.clone(),
            gen,
            name,
            id,
            master,
        };
        self.send_to_owner(from, reply, now, out);
    }

    fn on_lookup_reply(
        &mut self,
        gen: u32,
        name: Name,
        id: u64,
        master: NodeId,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if gen != self.gen {
            return;
        }
        if master == self.me {
            // The directory names this node: it masters the name from now on, whether or
            // not it still wants a lock there (the entry exists either way).
            self.masters.entry(name.clone()).or_insert_with(|| MRes {
                res: Resource::default(),
                empty_since: Some(now),
            });
        }
        let Some(o) = self.owned.get_mut(&name) else {
            return;
        };
        if o.lookup != Some(id) {
            return;
        }
        o.lookup = None;
        o.master = Some(master);
        let waiting: Vec<u32> = o.locks.iter().copied().collect();
        for lkid in waiting {
            let l = &self.locks[&lkid];
            if l.op.is_some() && !l.queued && !l.in_flight {
                self.send_op(lkid, now, out);
            }
        }
    }

    /// Turn a master's events into messages to the locks' owners. `skip` is a
    /// down-conversion's own completion, which its owner already delivered.
    fn route(
        &mut self,
        name: &Name,
        ev: Vec<Event>,
        skip: Option<LockId>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if let Some(m) = self.masters.get_mut(name) {
            m.empty_since = m.res.is_empty().then_some(now);
        }
        let ls = self.name.clone();
        for e in ev {
            let (owner, msg) = match e {
                Event::Cast { id, .. } if Some(id) == skip => continue,
                Event::Cast {
                    id,
                    status,
                    mode,
                    sbflags,
                    lvb,
                } => (
                    id.0,
                    Msg::Cast {
                        ls: ls.clone(),
                        lkid: id.1,
                        status,
                        mode,
                        sbflags,
                        lvb,
                    },
                ),
                Event::Queued { id } => (
                    id.0,
                    Msg::Queued {
                        ls: ls.clone(),
                        lkid: id.1,
                    },
                ),
                Event::Bast { id, mode } => (
                    id.0,
                    Msg::Bast {
                        ls: ls.clone(),
                        lkid: id.1,
                        mode,
                    },
                ),
                Event::CancelNoop { id } => (
                    id.0,
                    Msg::CancelNoop {
                        ls: ls.clone(),
                        lkid: id.1,
                    },
                ),
            };
            self.send_to_owner(owner, msg, now, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_cast(
        &mut self,
        lkid: u32,
        status: Status,
        mode: Option<Mode>,
        sbflags: u8,
        lvb: Option<(Lvb, u32)>,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(l) = self.locks.get_mut(&lkid) else {
            return;
        };
        let op = l.op;
        let overlap = l.overlap.take();
        l.queued = false;
        l.in_flight = false;
        l.cancel_sent = false;
        let read = lvb.map(|(v, _)| v);
        let gone = status == Status::Unlock || op == Some(Op::Request) && status != Status::Granted;
        if gone {
            return self.drop_lock(lkid, status, out);
        }
        if let (Status::Granted, Some(to)) = (status, mode) {
            let from = if op == Some(Op::Request) {
                None
            } else {
                l.grmode
            };
            l.hold_value(from, to, lvb, sbflags);
        }
        l.uncertain = false;
        l.grmode = mode;
        l.rqmode = None;
        l.op = None;
        let forced = std::mem::take(&mut l.force_sent);
        let released = l.client.is_none() && !(l.persistent && status == Status::Granted);
        self.callback(lkid, status, mode, sbflags, read, out);
        if forced {
            // The forced unlock is on its way to the master: its completion ends the lock.
            self.locks.get_mut(&lkid).expect("lock").op = Some(Op::Unlock);
        } else if overlap == Some(Overlap::ForceUnlock) || released {
            self.start_unlock(lkid, Flags(0), now, out);
        }
    }

    // ---- time ---------------------------------------------------------------------------

    /// Forget masters of resources nobody used for a while (the kernel's toss list):
    /// a master gives up an empty resource and tells the directory.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Output>) {
        if !self.running() {
            return;
        }
        let toss: Vec<Name> = self
            .masters
            .iter()
            .filter(|(_, m)| {
                m.empty_since
                    .is_some_and(|t| now.saturating_sub(t) >= self.toss_ms)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in toss {
            self.masters.remove(&name);
            let dir = dir_node(&name, &self.members);
            if dir == self.me {
                if self.dir.get(&name) == Some(&self.me) {
                    self.dir.remove(&name);
                }
            } else {
                out.push(Output::Send {
                    to: dir,
                    msg: Msg::Remove {
                        ls: self.name.clone(),
                        gen: self.gen,
                        name,
                    },
                });
            }
        }
        let toss_ms = self.toss_ms;
        self.owned.retain(|_, o| {
            if !o.locks.is_empty() || o.lookup.is_some() {
                o.idle_since = None;
                return true;
            }
            let since = *o.idle_since.get_or_insert(now);
            now.saturating_sub(since) < toss_ms
        });
    }

    // ---- recovery -------------------------------------------------------------------------

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
            } => {
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
            LsCpg::Locks { locks, last } => {
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
        for m in self.masters.values_mut() {
            for n in &removed {
                m.res.purge_node(*n);
            }
        }
        self.dir.clear();
        // Traffic from removed nodes is from before they left (a node that left and came
        // back speaks only after this recovery).
        self.held_msgs.retain(|(from, _)| !removed.contains(from));
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
        self.rec.moved = moved.clone();
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
        let names: Vec<Name> = self.masters.keys().cloned().collect();
        for name in names {
            let m = self.masters.get_mut(&name).expect("master");
            let ev = m.res.recover_grant();
            self.route(&name, ev, None, now, out);
        }
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
        // Client calls and forced unlocks that waited for recovery.
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
