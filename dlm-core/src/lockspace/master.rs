//! Master side: the resources this node masters, fed the lock operations owners send
//! (request, convert, unlock, cancel), with the outcomes sent back to the owners as
//! casts, basts and queued notes. What may be granted, in which order, and when a
//! conversion deadlocks is [`crate::resource`]'s (the kernel's `_can_be_granted`,
//! `grant_pending_locks`): this file only routes to and from it, and lets an unused
//! resource go (the toss list).

use super::{dir_node, Lockspace};
use crate::flags::Flags;
use crate::io::Output;
use crate::membership::NodeId;
use crate::message::{Msg, Name};
use crate::resource::{Event, LockId, MasterLock, Refused, Resource};

/// A resource mastered here, with since when it has had no locks (for the toss).
#[derive(Clone, Debug, Default)]
pub(super) struct MRes {
    pub(super) res: Resource,
    pub(super) empty_since: Option<u64>,
}

impl Lockspace {
    /// An owner's operation arriving at this node as the resource's master. A request
    /// for a name not mastered here is refused with NotMaster (the owner asked a node
    /// the directory named before it heard of it, or after it let the name go).
    pub(super) fn on_master_msg(
        &mut self,
        from: NodeId,
        msg: Msg,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        match msg {
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
            _ => unreachable!("routed here by Lockspace::on_msg: master messages only"),
        }
    }

    /// An owner's operation on a lock of a resource this node masters: apply it and send
    /// the outcome to the owners; a refusal is the owner's protocol error, logged.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn master_op(
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

    /// Turn a master's events into messages to the locks' owners. `skip` is a
    /// down-conversion's own completion, which its owner already delivered.
    pub(super) fn route(
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

    /// Let go of resources that stayed empty for `toss_ms` (the kernel's toss list): the
    /// master forgets the name and tells the directory, so that the next lock on it may
    /// be mastered anywhere.
    pub(super) fn toss_masters(&mut self, now: u64, out: &mut Vec<Output>) {
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
    }
}
