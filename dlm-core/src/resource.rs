//! One resource as its master holds it: the grant, convert and wait queues, the value
//! block, and the kernel's grant rules (fs/dlm/lock.c `_can_be_granted`, `can_be_granted`,
//! `do_request`, `do_convert`, `do_unlock`, `do_cancel`, `grant_pending_locks`, basts,
//! `conversion_deadlock_detect`, `set_lvb_lock`/`set_lvb_unlock`). Pure state: the
//! lockspace turns the events into callbacks or messages.

use std::collections::BTreeMap as HashMap;

use crate::flags::{Flags, Status, SBF_ALTMODE, SBF_DEMOTED, SBF_VALNOTVALID};
use crate::membership::NodeId;
use crate::mode::{LvbOp, Mode};

pub const LVB_LEN: usize = 32;
pub type Lvb = [u8; LVB_LEN];

/// A lock, cluster-wide: its owner node and the owner's lock id.
pub type LockId = (NodeId, u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Grant,
    Convert,
    Wait,
}

/// The master copy of a lock (`DLM_IFL_MSTCPY` in the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterLock {
    pub id: LockId,
    pub grmode: Option<Mode>,
    pub rqmode: Option<Mode>,
    /// The flags of the operation in progress (lock or convert).
    pub flags: Flags,
    /// Whether the owner wants blocking callbacks.
    pub bast: bool,
    /// The highest mode already signalled in a bast (`lkb_highbast`), -1 for none.
    pub highbast: i8,
    /// The value block the owner sent with its last operation.
    pub lvb: Option<Lvb>,
    pub lvbseq: u32,
    pub sbflags: u8,
    pub queue: Queue,
}

impl MasterLock {
    pub fn new(id: LockId, mode: Mode, flags: Flags, bast: bool, lvb: Option<Lvb>) -> Self {
        MasterLock {
            id,
            grmode: None,
            rqmode: Some(mode),
            flags,
            bast,
            highbast: -1,
            lvb,
            lvbseq: 0,
            sbflags: 0,
            queue: Queue::Wait,
        }
    }
}

/// What the master tells a lock's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A completion: the operation's outcome, the lock's granted mode afterwards, and
    /// the resource's value block when the grant read it.
    Cast {
        id: LockId,
        status: Status,
        mode: Option<Mode>,
        sbflags: u8,
        lvb: Option<(Lvb, u32)>,
    },
    /// The request or conversion waits on the master's queue.
    Queued { id: LockId },
    /// A blocking callback: `mode` is the mode that is blocked.
    Bast { id: LockId, mode: Mode },
    /// A cancel found nothing to cancel (the lock was granted meanwhile).
    CancelNoop { id: LockId },
}

/// Why a master refused an operation outright (a protocol error by the owner).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NoSuchLock,
    Busy,
}

#[derive(Clone, Debug, Default)]
pub struct Resource {
    locks: HashMap<LockId, MasterLock>,
    grant: Vec<LockId>,
    convert: Vec<LockId>,
    wait: Vec<LockId>,
    pub lvb: Option<Lvb>,
    pub lvbseq: u32,
    pub valnotvalid: bool,
    /// Set by recovery: conversions may be granted regardless of queue order once.
    pub recover_grant: bool,
}

impl Resource {
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    pub fn lock(&self, id: LockId) -> Option<&MasterLock> {
        self.locks.get(&id)
    }

    /// The queues in order, for dumps and invariant checks.
    pub fn queue(&self, q: Queue) -> impl Iterator<Item = &MasterLock> {
        let ids = match q {
            Queue::Grant => &self.grant,
            Queue::Convert => &self.convert,
            Queue::Wait => &self.wait,
        };
        ids.iter().map(|id| &self.locks[id])
    }

    pub fn locks(&self) -> impl Iterator<Item = &MasterLock> {
        self.locks.values()
    }

    // ---- queue handling -------------------------------------------------------------

    fn list(&mut self, q: Queue) -> &mut Vec<LockId> {
        match q {
            Queue::Grant => &mut self.grant,
            Queue::Convert => &mut self.convert,
            Queue::Wait => &mut self.wait,
        }
    }

    fn unlink(&mut self, id: LockId) {
        let q = self.locks[&id].queue;
        self.list(q).retain(|x| *x != id);
    }

    /// `add_lkb`: the grant queue is kept ordered by granted mode, highest first
    /// (`lkb_add_ordered`); the others are FIFO unless HEADQUE.
    fn link(&mut self, id: LockId, q: Queue) {
        let lk = self.locks.get_mut(&id).expect("lock");
        lk.queue = q;
        let (gr, head) = (lk.grmode, lk.flags.has(Flags::HEADQUE));
        match q {
            Queue::Grant => {
                let at = self
                    .grant
                    .iter()
                    .position(|o| self.locks[o].grmode < gr)
                    .unwrap_or(self.grant.len());
                self.grant.insert(at, id);
            }
            _ if head => self.list(q).insert(0, id),
            _ => self.list(q).push(id),
        }
    }

    fn relink(&mut self, id: LockId, q: Queue) {
        self.unlink(id);
        self.link(id, q);
    }

    // ---- the grant rules ------------------------------------------------------------

    /// `queue_conflict`: a lock on `q` (other than `lk`) whose granted mode blocks
    /// `lk`'s requested mode.
    fn queue_conflict(&self, q: &[LockId], lk: &MasterLock) -> bool {
        let rq = lk.rqmode.expect("requested");
        q.iter()
            .filter(|o| **o != lk.id)
            .filter_map(|o| self.locks[o].grmode)
            .any(|gr| !gr.compatible(rq))
    }

    /// `_can_be_granted`, rule for rule (dlm.md 1.3).
    fn can_be_granted_(&self, lk: &MasterLock, now: bool, recover: bool) -> bool {
        let conv = lk.grmode.is_some();
        let f = lk.flags;
        if f.has(Flags::EXPEDITE) {
            return true;
        }
        if self.queue_conflict(&self.grant, lk) || self.queue_conflict(&self.convert, lk) {
            return false;
        }
        if conv && recover {
            return true;
        }
        if now && conv {
            // VMS 6-3: a compatible conversion is granted in place, unless QUECVT asks
            // for FIFO behind other conversions.
            return !f.has(Flags::QUECVT) || self.convert.is_empty();
        }
        if f.has(Flags::NOORDER) {
            return true;
        }
        if !now && conv {
            return self.convert.first() == Some(&lk.id);
        }
        if !now {
            return self.convert.is_empty() && self.wait.first() == Some(&lk.id);
        }
        // VMS 6-4: a new request waits behind every queued one.
        self.convert.is_empty() && self.wait.is_empty()
    }

    /// `conversion_deadlock_detect`: `lk` converting would wait for a conversion that
    /// waits for it.
    fn conversion_deadlock(&self, lk: &MasterLock) -> bool {
        let gr = lk.grmode.expect("granted");
        let rq = lk.rqmode.expect("requested");
        let mut ahead = true;
        for o in &self.convert {
            if *o == lk.id {
                ahead = false;
                continue;
            }
            let o = &self.locks[o];
            let blocks_other = !gr.compatible(o.rqmode.expect("converting"));
            let blocked_by_other = !o.grmode.expect("granted").compatible(rq);
            if blocks_other && (ahead || blocked_by_other) {
                return true;
            }
        }
        false
    }

    /// `can_be_granted`: the rules, then conversion deadlock handling (CONVDEADLK demotes
    /// to NL) and the alternate modes (ALTPR/ALTCW). Returns (grantable, deadlock).
    fn can_be_granted(&mut self, id: LockId, now: bool, recover: bool) -> (bool, bool) {
        let lk = self.locks[&id].clone();
        if self.can_be_granted_(&lk, now, recover) {
            return (true, false);
        }
        let conv = lk.grmode.is_some();
        if conv && !lk.flags.has(Flags::NOQUEUE) && self.conversion_deadlock(&lk) {
            if lk.flags.has(Flags::CONVDEADLK) {
                let l = self.locks.get_mut(&id).expect("lock");
                l.grmode = Some(Mode::NL);
                l.sbflags |= SBF_DEMOTED;
                return (false, false);
            }
            return (false, true);
        }
        let rq = lk.rqmode.expect("requested");
        let alt = if rq != Mode::PR && lk.flags.has(Flags::ALTPR) {
            Some(Mode::PR)
        } else if rq != Mode::CW && lk.flags.has(Flags::ALTCW) {
            Some(Mode::CW)
        } else {
            None
        };
        if let Some(alt) = alt {
            let mut try_alt = lk.clone();
            try_alt.rqmode = Some(alt);
            if self.can_be_granted_(&try_alt, now, false) {
                let l = self.locks.get_mut(&id).expect("lock");
                l.rqmode = Some(alt);
                l.sbflags |= SBF_ALTMODE;
                return (true, false);
            }
        }
        (false, false)
    }

    /// `set_lvb_lock`: the value block side of a grant. Returns what the owner reads.
    fn set_lvb_lock(&mut self, id: LockId) -> Option<(Lvb, u32)> {
        let lk = &self.locks[&id];
        let (gr, rq, f) = (lk.grmode, lk.rqmode.expect("requested"), lk.flags);
        let mut read = None;
        match Mode::lvb_op(gr, rq) {
            LvbOp::Read => {
                if f.has(Flags::VALBLK) {
                    if let Some(v) = self.lvb {
                        read = Some((v, self.lvbseq));
                        self.locks.get_mut(&id).expect("lock").lvbseq = self.lvbseq;
                    }
                }
            }
            LvbOp::Write => {
                if f.has(Flags::IVVALBLK) {
                    self.valnotvalid = true;
                } else if let (true, Some(v)) = (f.has(Flags::VALBLK), lk.lvb) {
                    self.write_lvb(v);
                    self.locks.get_mut(&id).expect("lock").lvbseq = self.lvbseq;
                }
            }
            LvbOp::None => {}
        }
        if self.valnotvalid {
            self.locks.get_mut(&id).expect("lock").sbflags |= SBF_VALNOTVALID;
        }
        read
    }

    fn write_lvb(&mut self, v: Lvb) {
        self.lvb = Some(v);
        self.lvbseq = self.lvbseq.wrapping_add(1);
        self.valnotvalid = false;
    }

    /// `grant_lock`: move to the grant queue in the requested mode; the completion.
    fn grant(&mut self, id: LockId, ev: &mut Vec<Event>) {
        let lvb = self.set_lvb_lock(id);
        let l = self.locks.get_mut(&id).expect("lock");
        l.grmode = l.rqmode.take();
        l.highbast = -1;
        let (mode, sbflags) = (l.grmode, std::mem::take(&mut l.sbflags));
        self.relink(id, Queue::Grant);
        ev.push(Event::Cast {
            id,
            status: Status::Granted,
            mode,
            sbflags,
            lvb,
        });
    }

    /// A completion that leaves the lock as it is (EAGAIN, EDEADLK, ECANCEL).
    fn cast(&mut self, id: LockId, status: Status, ev: &mut Vec<Event>) {
        let l = self.locks.get_mut(&id).expect("lock");
        ev.push(Event::Cast {
            id,
            status,
            mode: l.grmode,
            sbflags: std::mem::take(&mut l.sbflags),
            lvb: None,
        });
    }

    /// `modes_require_bast`, with the PR/CW special case.
    fn requires_bast(gr: &MasterLock, rq: Mode) -> bool {
        let g = gr.grmode.expect("granted");
        if matches!((g, rq), (Mode::PR, Mode::CW) | (Mode::CW, Mode::PR)) {
            return gr.highbast < Mode::EX as i8;
        }
        gr.highbast < rq as i8 && !g.compatible(rq)
    }

    /// `send_bast_queue` over the grant queue, and the convert queue too with
    /// NOQUEUEBAST (`send_blocking_asts_all`).
    fn send_basts(&mut self, id: LockId, all: bool, ev: &mut Vec<Event>) {
        let rq = self.locks[&id].rqmode.expect("requested");
        let mut targets = self.grant.clone();
        if all {
            targets.extend(self.convert.iter().copied());
        }
        for t in targets.into_iter().filter(|t| *t != id) {
            let gr = &self.locks[&t];
            if gr.bast && Self::requires_bast(gr, rq) {
                ev.push(Event::Bast { id: t, mode: rq });
                self.locks.get_mut(&t).expect("lock").highbast = rq as i8;
            }
        }
    }

    // ---- operations -----------------------------------------------------------------

    /// `do_request` + `do_request_effects`. The lock must be new to this resource.
    pub fn request(&mut self, mut lk: MasterLock) -> Vec<Event> {
        let id = lk.id;
        let mut ev = Vec::new();
        lk.grmode = None;
        lk.highbast = -1;
        // On no queue while it is judged (its `queue` only matters once linked).
        self.locks.insert(id, lk);
        let (ok, _) = self.can_be_granted(id, true, false);
        if ok {
            self.grant(id, &mut ev);
            return ev;
        }
        let f = self.locks[&id].flags;
        if !f.has(Flags::NOQUEUE) {
            self.link(id, Queue::Wait);
            ev.push(Event::Queued { id });
            self.send_basts(id, false, &mut ev);
            return ev;
        }
        self.cast(id, Status::Again, &mut ev);
        if f.has(Flags::NOQUEUEBAST) {
            self.send_basts(id, true, &mut ev);
        }
        self.locks.remove(&id);
        ev
    }

    /// `do_convert` + `do_convert_effects`.
    pub fn convert(
        &mut self,
        id: LockId,
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
    ) -> Result<Vec<Event>, Refused> {
        let l = self.locks.get_mut(&id).ok_or(Refused::NoSuchLock)?;
        if l.queue != Queue::Grant {
            return Err(Refused::Busy);
        }
        l.rqmode = Some(mode);
        l.flags = flags;
        if lvb.is_some() {
            l.lvb = lvb;
        }
        let mut ev = Vec::new();
        let (ok, deadlk) = self.can_be_granted(id, true, false);
        if ok {
            self.grant(id, &mut ev);
            self.grant_pending(&mut ev);
            return Ok(ev);
        }
        let f = self.locks[&id].flags;
        if deadlk && !f.has(Flags::NODLCKWT) {
            self.revert(id);
            self.cast(id, Status::Deadlock, &mut ev);
            return Ok(ev);
        }
        if self.locks[&id].sbflags & SBF_DEMOTED != 0 {
            // CONVDEADLK demoted us to NL: others may now go first, then maybe we.
            self.grant_pending_convert(&mut ev);
            let lk = self.locks[&id].clone();
            if self.can_be_granted_(&lk, true, false) {
                self.grant(id, &mut ev);
                return Ok(ev);
            }
        }
        if !f.has(Flags::NOQUEUE) {
            self.relink(id, Queue::Convert);
            ev.push(Event::Queued { id });
            self.send_basts(id, false, &mut ev);
            return Ok(ev);
        }
        self.locks.get_mut(&id).expect("lock").rqmode = None;
        self.cast(id, Status::Again, &mut ev);
        if f.has(Flags::NOQUEUEBAST) {
            // The basts name the mode that could not be had.
            self.locks.get_mut(&id).expect("lock").rqmode = Some(mode);
            self.send_basts(id, true, &mut ev);
            self.locks.get_mut(&id).expect("lock").rqmode = None;
        }
        Ok(ev)
    }

    /// `do_unlock` (+ `set_lvb_unlock`), then grant what became grantable. FORCEUNLOCK
    /// and orphan purges unlock a lock in any state.
    pub fn unlock(
        &mut self,
        id: LockId,
        flags: Flags,
        lvb: Option<Lvb>,
    ) -> Result<Vec<Event>, Refused> {
        let l = self.locks.get(&id).ok_or(Refused::NoSuchLock)?;
        if l.queue != Queue::Grant && !flags.has(Flags::FORCEUNLOCK) {
            return Err(Refused::Busy);
        }
        if l.grmode >= Some(Mode::PW) && l.queue != Queue::Wait {
            if flags.has(Flags::IVVALBLK) {
                self.valnotvalid = true;
            } else if let (true, Some(v)) = (flags.has(Flags::VALBLK), lvb) {
                self.write_lvb(v);
            }
        }
        let mut ev = Vec::new();
        self.unlink(id);
        let l = self.locks.remove(&id).expect("lock");
        ev.push(Event::Cast {
            id,
            status: Status::Unlock,
            mode: None,
            sbflags: l.sbflags,
            lvb: None,
        });
        self.grant_pending(&mut ev);
        Ok(ev)
    }

    /// `revert_lock`: a conversion goes back to its granted mode; a waiting request is
    /// removed. Returns whether there was something to revert.
    fn revert(&mut self, id: LockId) -> bool {
        match self.locks[&id].queue {
            Queue::Grant => {
                // A conversion judged in place that failed.
                self.locks.get_mut(&id).expect("lock").rqmode = None;
                true
            }
            Queue::Convert => {
                self.locks.get_mut(&id).expect("lock").rqmode = None;
                self.relink(id, Queue::Grant);
                true
            }
            Queue::Wait => {
                self.unlink(id);
                self.locks.get_mut(&id).expect("lock").rqmode = None;
                true
            }
        }
    }

    /// `do_cancel` + effects.
    pub fn cancel(&mut self, id: LockId) -> Result<Vec<Event>, Refused> {
        let q = self.locks.get(&id).ok_or(Refused::NoSuchLock)?.queue;
        let mut ev = Vec::new();
        if q == Queue::Grant {
            ev.push(Event::CancelNoop { id });
            return Ok(ev);
        }
        self.revert(id);
        if q == Queue::Wait {
            let l = self.locks.remove(&id).expect("lock");
            ev.push(Event::Cast {
                id,
                status: Status::Cancel,
                mode: None,
                sbflags: l.sbflags,
                lvb: None,
            });
        } else {
            self.cast(id, Status::Cancel, &mut ev);
        }
        self.grant_pending(&mut ev);
        Ok(ev)
    }

    /// `grant_pending_convert`: returns the highest mode still blocked and whether a CW
    /// is among them.
    fn grant_pending_convert(&mut self, ev: &mut Vec<Event>) -> (i8, bool) {
        let recover = self.recover_grant;
        let mut quit = false;
        loop {
            let (mut restart_grant, mut restart_demote) = (false, false);
            let (mut hi, mut cw) = (-1i8, false);
            for id in self.convert.clone() {
                let demoted = self.locks[&id].sbflags & SBF_DEMOTED != 0;
                let (ok, deadlk) = self.can_be_granted(id, false, recover);
                if ok {
                    self.grant(id, ev);
                    restart_grant = true;
                    continue;
                }
                if !demoted && self.locks[&id].sbflags & SBF_DEMOTED != 0 {
                    restart_demote = true;
                    continue;
                }
                let l = &self.locks[&id];
                let rq = l.rqmode.expect("converting");
                if deadlk {
                    if l.flags.has(Flags::NODLCKWT) && l.highbast < rq as i8 && l.bast {
                        ev.push(Event::Bast { id, mode: rq });
                        self.locks.get_mut(&id).expect("lock").highbast = rq as i8;
                    }
                    continue;
                }
                hi = hi.max(rq as i8);
                cw |= rq == Mode::CW;
            }
            if restart_grant || (restart_demote && !quit) {
                quit |= restart_demote && !restart_grant;
                continue;
            }
            return (hi, cw);
        }
    }

    /// `grant_pending_wait`.
    fn grant_pending_wait(&mut self, ev: &mut Vec<Event>) -> (i8, bool) {
        let (mut hi, mut cw) = (-1i8, false);
        for id in self.wait.clone() {
            if self.can_be_granted(id, false, false).0 {
                self.grant(id, ev);
            } else {
                let rq = self.locks[&id].rqmode.expect("waiting");
                hi = hi.max(rq as i8);
                cw |= rq == Mode::CW;
            }
        }
        (hi, cw)
    }

    /// `grant_pending_locks`: conversions first, then waiting requests; then basts to
    /// the holders that block the highest mode left waiting.
    pub fn grant_pending(&mut self, ev: &mut Vec<Event>) {
        let (h1, cw1) = self.grant_pending_convert(ev);
        let (h2, cw2) = self.grant_pending_wait(ev);
        let (high, cw) = (h1.max(h2), cw1 || cw2);
        if high < 0 {
            return;
        }
        let high_mode = Mode::from_u8(high as u8).expect("mode");
        for id in self.grant.clone() {
            let l = &self.locks[&id];
            let g = l.grmode.expect("granted");
            let needs = if g == Mode::PR && cw {
                l.highbast < Mode::EX as i8
            } else {
                l.highbast < high && !g.compatible(high_mode)
            };
            if l.bast && needs {
                let mode = if cw && high_mode == Mode::PR && g == Mode::PR {
                    Mode::CW
                } else {
                    high_mode
                };
                ev.push(Event::Bast { id, mode });
                self.locks.get_mut(&id).expect("lock").highbast = high;
            }
        }
    }

    // ---- recovery -------------------------------------------------------------------

    /// Drop every lock owned by `node` (`purge_dead_list`): a purged PW/EX holder with a
    /// value block makes the value block invalid. Returns whether anything went.
    pub fn purge_node(&mut self, node: NodeId) -> bool {
        let gone: Vec<LockId> = self
            .locks
            .keys()
            .filter(|id| id.0 == node)
            .copied()
            .collect();
        for id in &gone {
            let l = &self.locks[id];
            if l.flags.has(Flags::VALBLK) && l.grmode >= Some(Mode::PW) {
                self.valnotvalid = true;
            }
            self.unlink(*id);
            self.locks.remove(id);
        }
        !gone.is_empty()
    }

    /// Rebuild a master copy from an owner's process copy on a new master
    /// (`dlm_recover_master_copy`).
    pub fn recover_lock(&mut self, lk: MasterLock) {
        let (id, q) = (lk.id, lk.queue);
        self.locks.insert(id, lk);
        self.link(id, q);
    }

    /// `recover_conversion`: a middle conversion (PR↔CW) whose granted mode the owner
    /// could not know takes a granted mode that fits the rebuilt grant queue.
    pub fn recover_conversion(&mut self) {
        let held = self
            .queue(Queue::Grant)
            .filter_map(|l| l.grmode)
            .find(|m| matches!(m, Mode::PR | Mode::CW));
        for id in self.convert.clone() {
            let l = self.locks.get_mut(&id).expect("lock");
            if l.grmode.is_none() {
                l.grmode = Some(held.unwrap_or(l.rqmode.expect("converting")));
            }
        }
        // A conversion the old master demoted to NL (CONVDEADLK) comes back with its old
        // granted mode: the owner hears of a demotion only with the conversion's
        // completion (SBF_DEMOTED), as in the kernel. The old master may have granted a
        // lock after the demotion that conflicts with that stale mode, so a converting
        // CONVDEADLK lock whose granted mode conflicts with another's was demoted: it
        // is demoted here again. No other lock can come back with a mode above the one
        // it holds (down-conversions complete at the owner first).
        for id in self.convert.clone() {
            let l = &self.locks[&id];
            let Some(gr) = l.grmode.filter(|_| l.flags.has(Flags::CONVDEADLK)) else {
                continue;
            };
            let conflict = self
                .grant
                .iter()
                .chain(self.convert.iter())
                .filter(|o| **o != id)
                .filter_map(|o| self.locks[o].grmode)
                .any(|g| !g.compatible(gr));
            if conflict {
                let l = self.locks.get_mut(&id).expect("lock");
                l.grmode = Some(Mode::NL);
                l.sbflags |= SBF_DEMOTED;
            }
        }
    }

    /// `recover_lvb` on a new master (dlm.md 1.6): a surviving holder above CR has the
    /// authoritative value; otherwise the newest copy is taken and marked invalid.
    pub fn recover_lvb(&mut self) {
        let mut with: Vec<&MasterLock> = self
            .grant
            .iter()
            .chain(self.convert.iter())
            .map(|id| &self.locks[id])
            .filter(|l| l.flags.has(Flags::VALBLK))
            .collect();
        if with.is_empty() {
            return;
        }
        // A lock above CR blocks every writer but itself, so its copy is the value. Its
        // owner sends no copy when it read none or read one marked not valid: then the
        // value stays not valid (the kernel would take the holder's buffer as valid).
        if let Some(big) = with.iter().find(|l| l.grmode > Some(Mode::CR)) {
            self.lvb = big.lvb;
            self.lvbseq = big.lvbseq;
            self.valnotvalid = big.lvb.is_none();
            return;
        }
        // Only NL/CR holders: the newest copy by sequence number (with wrap-around, as
        // the kernel compares), marked not valid since a writer may have gone.
        with.retain(|l| l.lvb.is_some());
        with.sort_by(|a, b| (b.lvbseq.wrapping_sub(a.lvbseq) as i32).cmp(&0));
        if let Some(best) = with.first() {
            self.lvb = best.lvb;
            self.lvbseq = best.lvbseq;
        }
        self.valnotvalid = true;
    }

    /// After recovery: grant what became grantable, conversions regardless of order once
    /// (`dlm_recover_grant`).
    pub fn recover_grant(&mut self) -> Vec<Event> {
        let mut ev = Vec::new();
        self.recover_grant = true;
        self.grant_pending(&mut ev);
        self.recover_grant = false;
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;

    /// Found by simulation seed 80169: the old master demoted a CONVDEADLK conversion
    /// (CR → EX) to NL and then granted EX to another node; it died before the owner
    /// heard of the demotion. Rebuilt from the owners' copies, the resource would hold
    /// CR and EX granted at once; the conversion is demoted again instead.
    #[test]
    fn a_demotion_the_owner_never_heard_of_is_redone_in_recovery() {
        let mut r = Resource::default();
        let mut conv = MasterLock::new((1, 3), EX, Flags(Flags::CONVDEADLK), true, None);
        conv.grmode = Some(CR);
        conv.queue = Queue::Convert;
        let mut held = MasterLock::new((3, 9), EX, Flags(0), true, None);
        held.grmode = Some(EX);
        held.rqmode = None;
        held.queue = Queue::Grant;
        r.recover_lock(conv);
        r.recover_lock(held);
        r.recover_conversion();
        let l = r.lock((1, 3)).unwrap();
        assert_eq!((l.grmode, l.rqmode), (Some(NL), Some(EX)));
        assert_ne!(l.sbflags & SBF_DEMOTED, 0);
        assert_eq!(r.lock((3, 9)).unwrap().grmode, Some(EX));
        // Nothing conflicts any more, and the conversion still waits for EX.
        assert!(r.recover_grant().iter().all(|e| !matches!(
            e,
            Event::Cast {
                id: (1, 3),
                status: Status::Granted,
                ..
            }
        )));
    }

    fn req(r: &mut Resource, n: u32, mode: Mode, flags: u32) -> Vec<Event> {
        r.request(MasterLock::new((1, n), mode, Flags(flags), true, None))
    }

    fn granted(ev: &[Event], n: u32) -> bool {
        ev.iter()
            .any(|e| matches!(e, Event::Cast { id, status: Status::Granted, .. } if id.1 == n))
    }

    fn status(ev: &[Event], n: u32) -> Option<Status> {
        ev.iter().find_map(|e| match e {
            Event::Cast { id, status, .. } if id.1 == n => Some(*status),
            _ => None,
        })
    }

    fn basts(ev: &[Event]) -> Vec<(u32, Mode)> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Bast { id, mode } => Some((id.1, *mode)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn compatible_requests_are_granted_and_conflicts_wait_with_basts() {
        let mut r = Resource::default();
        assert!(granted(&req(&mut r, 1, PR, 0), 1));
        assert!(granted(&req(&mut r, 2, CR, 0), 2));
        let ev = req(&mut r, 3, EX, 0);
        assert!(ev.contains(&Event::Queued { id: (1, 3) }));
        assert_eq!(basts(&ev), vec![(1, EX), (2, EX)]);
        // VMS 6-4: a compatible new request waits behind the queued EX.
        let ev = req(&mut r, 4, CR, 0);
        assert!(ev.contains(&Event::Queued { id: (1, 4) }));
        // A second EX request does not bast again (highbast already EX).
        assert!(basts(&req(&mut r, 5, EX, 0)).is_empty());
        let ev = r.unlock((1, 1), Flags(0), None).unwrap();
        assert_eq!(status(&ev, 1), Some(Status::Unlock));
        assert!(!granted(&ev, 3), "CR 2 still blocks EX");
        let ev = r.unlock((1, 2), Flags(0), None).unwrap();
        assert!(granted(&ev, 3) && !granted(&ev, 4));
    }

    #[test]
    fn noqueue_fails_with_eagain_and_basts_only_with_noqueuebast() {
        let mut r = Resource::default();
        req(&mut r, 1, EX, 0);
        let ev = req(&mut r, 2, PR, Flags::NOQUEUE);
        assert_eq!(status(&ev, 2), Some(Status::Again));
        assert!(basts(&ev).is_empty());
        assert!(r.lock((1, 2)).is_none());
        let ev = req(&mut r, 3, PR, Flags::NOQUEUE | Flags::NOQUEUEBAST);
        assert_eq!(status(&ev, 3), Some(Status::Again));
        assert_eq!(basts(&ev), vec![(1, PR)]);
    }

    #[test]
    fn conversions_go_before_new_requests_and_in_place_when_compatible() {
        let mut r = Resource::default();
        req(&mut r, 1, PR, 0);
        req(&mut r, 2, PR, 0);
        req(&mut r, 3, EX, 0); // waits
                               // 6-3: PR -> CR granted in place although a request waits.
        let ev = r.convert((1, 1), CR, Flags(Flags::CONVERT), None).unwrap();
        assert!(granted(&ev, 1));
        // 2 converts PR -> EX: blocked by 1's CR, queued on the convert queue.
        let ev = r.convert((1, 2), EX, Flags(Flags::CONVERT), None).unwrap();
        assert!(ev.contains(&Event::Queued { id: (1, 2) }));
        // 1 unlocks: the conversion is granted before the waiting request.
        let ev = r.unlock((1, 1), Flags(0), None).unwrap();
        assert!(granted(&ev, 2) && !granted(&ev, 3));
    }

    #[test]
    fn quecvt_waits_behind_other_conversions() {
        let mut r = Resource::default();
        req(&mut r, 1, NL, 0);
        req(&mut r, 2, NL, 0);
        req(&mut r, 3, PR, 0);
        req(&mut r, 4, NL, 0);
        r.convert((1, 1), EX, Flags(Flags::CONVERT), None).unwrap(); // blocked by PR
        let ev = r
            .convert((1, 2), CR, Flags(Flags::CONVERT | Flags::QUECVT), None)
            .unwrap();
        assert!(ev.contains(&Event::Queued { id: (1, 2) }), "{ev:?}");
        let ev = r.convert((1, 4), CR, Flags(Flags::CONVERT), None).unwrap();
        assert!(granted(&ev, 4), "without QUECVT: granted in place");
    }

    #[test]
    fn a_conversion_blocking_one_ahead_of_it_is_a_deadlock() {
        // 2 holds CR and wants CW behind 1's CR->EX, which 2's CR blocks.
        let mut r = Resource::default();
        req(&mut r, 1, CR, 0);
        req(&mut r, 2, CR, 0);
        req(&mut r, 3, CR, 0);
        r.convert((1, 1), EX, Flags(Flags::CONVERT), None).unwrap();
        let ev = r
            .convert((1, 2), CW, Flags(Flags::CONVERT | Flags::QUECVT), None)
            .unwrap();
        assert_eq!(status(&ev, 2), Some(Status::Deadlock));
    }

    #[test]
    fn conversion_deadlock_is_edeadlk_or_demotion() {
        // Both hold PR and want EX: the second conversion deadlocks.
        let mut r = Resource::default();
        req(&mut r, 1, PR, 0);
        req(&mut r, 2, PR, 0);
        r.convert((1, 1), EX, Flags(Flags::CONVERT), None).unwrap();
        let ev = r.convert((1, 2), EX, Flags(Flags::CONVERT), None).unwrap();
        assert_eq!(status(&ev, 2), Some(Status::Deadlock));
        assert_eq!(r.lock((1, 2)).unwrap().grmode, Some(PR), "kept its mode");
        assert_eq!(r.lock((1, 2)).unwrap().queue, Queue::Grant);
        // With CONVDEADLK the second is demoted to NL, which lets the first through.
        let mut r = Resource::default();
        req(&mut r, 1, PR, 0);
        req(&mut r, 2, PR, 0);
        r.convert((1, 1), EX, Flags(Flags::CONVERT), None).unwrap();
        let ev = r
            .convert((1, 2), EX, Flags(Flags::CONVERT | Flags::CONVDEADLK), None)
            .unwrap();
        assert!(granted(&ev, 1), "{ev:?}");
        assert_eq!(r.lock((1, 2)).unwrap().grmode, Some(NL));
        assert_eq!(r.lock((1, 2)).unwrap().queue, Queue::Convert);
        let ev = r.unlock((1, 1), Flags(0), None).unwrap();
        let demoted = ev.iter().any(|e| {
            matches!(e, Event::Cast { id: (1, 2), status: Status::Granted, sbflags, .. } if sbflags & SBF_DEMOTED != 0)
        });
        assert!(demoted, "{ev:?}");
    }

    #[test]
    fn cancel_reverts_conversions_and_removes_requests() {
        let mut r = Resource::default();
        req(&mut r, 1, EX, 0);
        req(&mut r, 2, NL, 0);
        req(&mut r, 3, PR, 0);
        r.convert((1, 2), PR, Flags(Flags::CONVERT), None).unwrap();
        let ev = r.cancel((1, 2)).unwrap();
        assert_eq!(status(&ev, 2), Some(Status::Cancel));
        assert_eq!(r.lock((1, 2)).unwrap().grmode, Some(NL));
        let ev = r.cancel((1, 3)).unwrap();
        assert_eq!(status(&ev, 3), Some(Status::Cancel));
        assert!(r.lock((1, 3)).is_none());
        assert_eq!(
            r.cancel((1, 1)).unwrap(),
            vec![Event::CancelNoop { id: (1, 1) }]
        );
    }

    #[test]
    fn expedite_noorder_and_headque() {
        let mut r = Resource::default();
        req(&mut r, 1, PR, 0);
        req(&mut r, 2, EX, 0); // waits
        assert!(granted(&req(&mut r, 3, NL, Flags::EXPEDITE), 3));
        assert!(granted(&req(&mut r, 4, CR, Flags::NOORDER), 4));
        req(&mut r, 5, EX, Flags::HEADQUE);
        assert_eq!(r.queue(Queue::Wait).next().unwrap().id, (1, 5));
    }

    #[test]
    fn altpr_altcw_grant_the_alternate_mode() {
        let mut r = Resource::default();
        req(&mut r, 1, PR, 0);
        let ev = req(&mut r, 2, CW, Flags::ALTPR);
        let alt = ev.iter().any(|e| {
            matches!(e, Event::Cast { id: (1, 2), status: Status::Granted, mode: Some(PR), sbflags, .. } if sbflags & SBF_ALTMODE != 0)
        });
        assert!(alt, "{ev:?}");
    }

    #[test]
    fn value_block_read_write_invalidate() {
        let mut r = Resource::default();
        let v = [7u8; LVB_LEN];
        r.request(MasterLock::new(
            (1, 1),
            EX,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        // EX -> NL with VALBLK writes.
        r.convert((1, 1), NL, Flags(Flags::CONVERT | Flags::VALBLK), Some(v))
            .unwrap();
        assert_eq!((r.lvb, r.lvbseq), (Some(v), 1));
        // A new PR request reads it.
        let ev = r.request(MasterLock::new(
            (1, 2),
            PR,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::Cast { lvb: Some((l, 1)), .. } if *l == v)));
        // PW unlock with IVVALBLK invalidates: later grants carry VALNOTVALID.
        r.unlock((1, 2), Flags(0), None).unwrap();
        r.request(MasterLock::new(
            (1, 3),
            PW,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        r.unlock((1, 3), Flags(Flags::IVVALBLK), None).unwrap();
        let ev = r.request(MasterLock::new(
            (1, 4),
            CR,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::Cast { sbflags, .. } if sbflags & SBF_VALNOTVALID != 0)));
        // A PW holder writing clears it.
        r.unlock((1, 4), Flags(0), None).unwrap();
        r.request(MasterLock::new(
            (1, 5),
            PW,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        r.unlock((1, 5), Flags(Flags::VALBLK), Some([9; LVB_LEN]))
            .unwrap();
        assert!(!r.valnotvalid);
        assert_eq!(r.lvbseq, 2);
    }

    #[test]
    fn purge_of_a_dead_writer_invalidates_the_value_block() {
        let mut r = Resource::default();
        r.request(MasterLock::new(
            (2, 1),
            EX,
            Flags(Flags::VALBLK),
            true,
            None,
        ));
        r.request(MasterLock::new((1, 1), PR, Flags(0), true, None));
        assert!(r.purge_node(2));
        assert!(r.valnotvalid);
        assert!(granted(&r.recover_grant(), 1));
    }
}
