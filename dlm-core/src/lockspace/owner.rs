//! Owner side: the process copies of this node's locks (`PLock`, the kernel's lkb as
//! its owner holds it) and the client calls on them: lock, convert, unlock, cancel,
//! adopt an orphan, and what a client's going away releases. Each operation goes to the
//! resource's master (found through the directory first when not known) and ends in a
//! completion callback; a master's blocking callbacks reach the holder here, suppressed
//! as `dlm_may_skip_callback` does. A client call returns at once; what it waits for
//! comes as callbacks (libdlm's AST model).

use std::collections::BTreeSet;

use super::Lockspace;
use crate::api::{Callback, ClientId, Errno, Request};
use crate::flags::{libc_errno::*, Flags, Status, SBF_VALNOTVALID};
use crate::io::Output;
use crate::membership::NodeId;
use crate::message::{Msg, Name};
use crate::mode::{LvbOp, Mode};
use crate::resource::Lvb;

/// The operation an owner has outstanding at the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Request,
    Convert,
    Unlock,
}

/// A cancel or forced unlock asked for while the operation's first reply was pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overlap {
    Cancel,
    ForceUnlock,
}

/// A process copy: this node's view of one of its locks.
#[derive(Clone, Debug)]
pub(super) struct PLock {
    pub(super) name: Name,
    /// `None` for an orphan (a PERSISTENT lock whose client went away).
    pub(super) client: Option<ClientId>,
    pub(super) grmode: Option<Mode>,
    pub(super) rqmode: Option<Mode>,
    pub(super) flags: Flags,
    pub(super) bast: bool,
    pub(super) persistent: bool,
    /// The caller's value block for the operation under way (what a write writes).
    pub(super) lvb: Option<Lvb>,
    /// The resource's value as this lock last read or wrote it, with its sequence
    /// number: what recovery rebuilds the value from. Kept apart from `lvb` so that a
    /// caller's buffer nobody wrote is never taken for the resource's value (the kernel
    /// recovers from the caller's buffer, which can resurrect bytes no one wrote).
    pub(super) value: Option<Lvb>,
    pub(super) lvbseq: u32,
    pub(super) op: Option<Op>,
    /// The master queued the request or conversion (it waits there).
    pub(super) queued: bool,
    /// `op` went to a master and no answer came yet. A master lookup's reply sends only
    /// the operations not in flight: one refused with NotMaster is resent on its own,
    /// so that a burst of refusals does not send every waiting request once per refusal
    /// (each copy would be queued at the master again).
    pub(super) in_flight: bool,
    pub(super) overlap: Option<Overlap>,
    pub(super) cancel_sent: bool,
    /// A forced unlock went to the master while the request or conversion waited.
    pub(super) force_sent: bool,
    /// Resend `op` once recovery is done (its master left).
    pub(super) resend: bool,
    /// A middle conversion (PR↔CW) lost with its master: the granted mode is unknown
    /// until the new master decides (the kernel sets the owner's grmode to IV).
    pub(super) uncertain: bool,
    /// Callback suppression state (fs/dlm/ast.c `dlm_may_skip_callback`).
    pub(super) last_cast: Option<Mode>,
    pub(super) last_bast: Option<Mode>,
    pub(super) last_was_bast: bool,
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
pub(super) struct ORes {
    pub(super) master: Option<NodeId>,
    /// The id of the lookup in flight.
    pub(super) lookup: Option<u64>,
    pub(super) locks: BTreeSet<u32>,
    pub(super) idle_since: Option<u64>,
}

fn bad(code: i32, detail: impl Into<String>) -> Result<u32, Errno> {
    Err(Errno::new(code, detail))
}

impl Lockspace {
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

    /// `client`'s lock `lkid`; ENOENT for a lock that is not there or not its own.
    fn client_lock(&mut self, client: ClientId, lkid: u32) -> Result<&mut PLock, Errno> {
        self.locks
            .get_mut(&lkid)
            .filter(|l| l.client == Some(client))
            .ok_or_else(|| Errno::new(ENOENT, format!("no lock {lkid:#x} of this client")))
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
        let l = self.client_lock(client, lkid)?;
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
        let l = self.client_lock(client, lkid)?;
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

    pub(super) fn start_unlock(
        &mut self,
        lkid: u32,
        flags: Flags,
        now: u64,
        out: &mut Vec<Output>,
    ) {
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
    pub(super) fn cancel_or_force(
        &mut self,
        lkid: u32,
        what: Overlap,
        now: u64,
        out: &mut Vec<Output>,
    ) {
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

    /// Send the lock's outstanding operation to its master, looking the master up first
    /// when it is not known.
    pub(super) fn send_op(&mut self, lkid: u32, now: u64, out: &mut Vec<Output>) {
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

    /// Queue a completion to the lock's client, recording what the bast suppression
    /// rules need.
    pub(super) fn callback(
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
    pub(super) fn bast(&mut self, lkid: u32, mode: Mode, out: &mut Vec<Output>) {
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
    pub(super) fn drop_lock(&mut self, lkid: u32, status: Status, out: &mut Vec<Output>) {
        self.callback(lkid, status, None, 0, None, out);
        let l = self.locks.remove(&lkid).expect("lock");
        if let Some(o) = self.owned.get_mut(&l.name) {
            o.locks.remove(&lkid);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_cast(
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

    /// The master refused a request: it does not master the name (the directory's
    /// answer reached it later than this request, or it let the name go). Look the
    /// master up again and resend.
    pub(super) fn on_not_master(&mut self, name: Name, lkid: u32, now: u64, out: &mut Vec<Output>) {
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

    /// The master queued the request or conversion: a cancel or forced unlock asked for
    /// meanwhile may go now.
    pub(super) fn on_queued(&mut self, lkid: u32, now: u64, out: &mut Vec<Output>) {
        if let Some(l) = self.locks.get_mut(&lkid) {
            l.queued = true;
            l.in_flight = false;
            if let Some(what) = l.overlap.take() {
                self.send_overlap(lkid, what, now, out);
            }
        }
    }

    /// The cancel found nothing to cancel (the operation had completed).
    pub(super) fn on_cancel_noop(&mut self, lkid: u32) {
        if let Some(l) = self.locks.get_mut(&lkid) {
            l.cancel_sent = false;
        }
    }

    /// Forget the owner records of names without locks or lookups for `toss_ms`.
    pub(super) fn toss_owned(&mut self, now: u64) {
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
}
