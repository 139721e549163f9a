//! Read-only views of a lockspace's internals for the daemon's text answers: where a
//! stopped lockspace's recovery barrier stands (`dlm_tool ls`), and its locks and
//! resources in the layouts `dlm_tool lockdump` and `dlm_tool lockdebug` print from the
//! kernel's debugfs files (dlm_tool/main.c `do_lockdump`, `do_lockdebug`, `print_rsb`,
//! `print_lkb`, `print_lvb`, `print_rsb_toss`, `do_waiters`).
//!
//! Where hydra's model differs from the kernel's, the nearest value is shown:
//! - a master copy has no lock id of its own here (the master names a lock by its owner
//!   and the owner's id), so the owner's id is shown as both `id` and remote id;
//! - the kernel's `res_nodeid` 0 ("this node") is shown for resources mastered here and
//!   -1 while a lookup is out, as the kernel does.

use std::fmt::Write as _;

use super::{dir_node, Lockspace, Op, PLock, Phase};
use crate::api::ClientId;
use crate::membership::NodeId;
use crate::mode::Mode;
use crate::resource::{Lvb, MasterLock, Queue};

/// The kernel's message numbers (fs/dlm/dlm_internal.h `DLM_MSG_*`), which dlm_tool
/// prints for an operation waiting for a reply.
const MSG_REQUEST: u32 = 1;
const MSG_CONVERT: u32 = 2;
const MSG_UNLOCK: u32 = 3;
const MSG_CANCEL: u32 = 4;
const MSG_LOOKUP: u32 = 11;

/// dlm_tool's `msg_str` (padded to 7 as it prints them).
fn msg_str(msg: u32) -> &'static str {
    match msg {
        MSG_REQUEST => "request",
        MSG_CONVERT => "convert",
        MSG_UNLOCK => "unlock ",
        MSG_CANCEL => "cancel ",
        MSG_LOOKUP => "lookup ",
        _ => "unknown",
    }
}

/// dlm_tool's `mode_str`: "IV" for none.
fn mode_str(m: Option<Mode>) -> &'static str {
    m.map_or("IV", Mode::name)
}

/// The queue a process copy is shown on (its status in the kernel's terms).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Granted,
    Convert,
    Waiting,
    Lookup,
}

impl Lockspace {
    /// While a recovery barrier (Start, Masters, Locks, Done) is open: how many members'
    /// messages for it are not delivered yet (dlm_controld's `wait messages N`). `None`
    /// while running or waiting for quorum and fencing.
    pub fn barrier_waiting(&self) -> Option<usize> {
        let members = self.members.iter();
        match self.rec.phase? {
            Phase::Conditions => None,
            Phase::Start => Some(members.filter(|m| !self.rec.starts.contains_key(m)).count()),
            Phase::Masters | Phase::Locks | Phase::Done => {
                Some(members.filter(|m| !self.rec.got.contains(m)).count())
            }
        }
    }

    /// Whether `node`'s Start for the recovery in progress has been delivered.
    pub fn start_received(&self, node: NodeId) -> bool {
        self.rec.starts.contains_key(&node)
    }

    /// `dlm_tool lockdump [-M]`: one line per lock of this node (`master` is the
    /// resource's master, 0 for this node, -1 while looking it up), and with
    /// `master_copies` the master copies of other nodes' locks (`MSTCPY <owner>`). `pid`
    /// gives a client's process id.
    pub fn lockdump(&self, master_copies: bool, pid: &dyn Fn(ClientId) -> u32) -> String {
        let mut out = String::new();
        for (lkid, l) in &self.locks {
            let shown = self.shown(l);
            let rq = if shown == Shown::Granted {
                None
            } else {
                l.rqmode
            };
            let _ = writeln!(
                out,
                "id {lkid:08x} gr {} rq {} pid {} master {} \"{}\"",
                mode_str(l.grmode),
                mode_str(rq),
                l.client.map_or(0, pid),
                self.res_nodeid(&l.name),
                plain(&l.name)
            );
        }
        if master_copies {
            for (name, m) in &self.masters {
                for q in [Queue::Grant, Queue::Convert, Queue::Wait] {
                    for lk in m.res.queue(q).filter(|lk| lk.id.0 != self.me) {
                        let rq = if q == Queue::Grant { None } else { lk.rqmode };
                        let _ = writeln!(
                            out,
                            "id {:08x} gr {} rq {} pid 0 MSTCPY {} \"{}\"",
                            lk.id.1,
                            mode_str(lk.grmode),
                            mode_str(rq),
                            lk.id.0,
                            plain(name)
                        );
                    }
                }
            }
        }
        out
    }

    /// `dlm_tool lockdebug`: every resource with locks (its master, value block and
    /// queues), then the resources kept without locks (the toss list), then the
    /// operations waiting for a reply.
    pub fn lockdebug(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<&Vec<u8>> = self
            .owned
            .iter()
            .filter(|(_, o)| !o.locks.is_empty())
            .map(|(n, _)| n)
            .chain(
                self.masters
                    .iter()
                    .filter(|(_, m)| !m.res.is_empty())
                    .map(|(n, _)| n),
            )
            .collect();
        names.sort();
        names.dedup();
        for name in &names {
            out.push('\n');
            self.debug_resource(name, &mut out);
        }
        out.push('\n');
        let mut toss: Vec<&Vec<u8>> = self
            .owned
            .iter()
            .filter(|(_, o)| o.locks.is_empty() && o.lookup.is_none() && o.master.is_some())
            .map(|(n, _)| n)
            .chain(
                self.masters
                    .iter()
                    .filter(|(_, m)| m.res.is_empty())
                    .map(|(n, _)| n),
            )
            .filter(|n| !names.contains(n))
            .collect();
        toss.sort();
        toss.dedup();
        for name in toss {
            resource_line(name, &mut out);
            let master = if self.masters.contains_key(name) {
                self.me
            } else {
                self.owned[name].master.unwrap_or(self.me)
            };
            let dir = if self.members.is_empty() {
                self.me
            } else {
                dir_node(name, &self.members)
            };
            let at = |n: NodeId, what: &str| {
                if n == self.me {
                    what.to_string()
                } else {
                    format!("{what}:{n}")
                }
            };
            let _ = writeln!(out, "{} {}\n", at(master, "Master"), at(dir, "Dir"));
        }
        let mut header = false;
        for (lkid, name, node, msg) in self.waiters() {
            if !header {
                out.push_str("\nExpecting reply\n");
                header = true;
            }
            let _ = writeln!(
                out,
                "nodeid {node:2} msg {} lkid {lkid:08x} resource \"{}\"",
                msg_str(msg),
                plain(name)
            );
        }
        out
    }

    fn debug_resource(&self, name: &[u8], out: &mut String) {
        resource_line(name, out);
        let master = match self.masters.get(name) {
            Some(_) => "Master".to_string(),
            None => match self.owned.get(name).and_then(|o| o.master) {
                Some(m) if m == self.me => "Master".to_string(),
                Some(m) => format!("Master:{m}"),
                None => "Lookup".to_string(),
            },
        };
        let _ = writeln!(out, "{master:<16} ");
        if let Some(m) = self.masters.get(name) {
            if let Some(lvb) = &m.res.lvb {
                lvb_lines(lvb, m.res.lvbseq, out);
            }
            for (q, title) in [
                (Queue::Grant, "Granted"),
                (Queue::Convert, "Convert"),
                (Queue::Wait, "Waiting"),
            ] {
                let mut first = true;
                for lk in m.res.queue(q) {
                    if std::mem::take(&mut first) {
                        let _ = writeln!(out, "{title}");
                    }
                    self.master_copy_line(lk, q, out);
                }
            }
            return;
        }
        let Some(o) = self.owned.get(name) else {
            return;
        };
        for (shown, title) in [
            (Shown::Granted, "Granted"),
            (Shown::Convert, "Convert"),
            (Shown::Waiting, "Waiting"),
            (Shown::Lookup, "Lookup"),
        ] {
            let mut first = true;
            for lkid in &o.locks {
                let Some(l) = self.locks.get(lkid) else {
                    continue;
                };
                if self.shown(l) != shown {
                    continue;
                }
                if std::mem::take(&mut first) {
                    let _ = writeln!(out, "{title}");
                }
                let gr = match shown {
                    Shown::Granted | Shown::Convert => mode_str(l.grmode),
                    Shown::Waiting | Shown::Lookup => "--",
                };
                let rq = match shown {
                    Shown::Granted => "    ".to_string(),
                    _ => format!("({})", mode_str(l.rqmode)),
                };
                let remote = match o.master {
                    Some(m) if m != self.me => format!("Master: {m:3} {lkid:08x}"),
                    _ => " ".repeat(20),
                };
                let wait = match self.waiting_for(l) {
                    Some((_, msg)) => format!(" wait {msg:02}"),
                    None => " ".repeat(8),
                };
                let _ = writeln!(out, "{lkid:08x} {gr} {rq} {remote} {wait} ");
            }
        }
    }

    fn master_copy_line(&self, lk: &MasterLock, q: Queue, out: &mut String) {
        let gr = match q {
            Queue::Grant | Queue::Convert => mode_str(lk.grmode),
            Queue::Wait => "--",
        };
        let rq = match q {
            Queue::Grant => "    ".to_string(),
            _ => format!("({})", mode_str(lk.rqmode)),
        };
        let (owner, lkid) = lk.id;
        let remote = if owner == self.me {
            " ".repeat(20)
        } else {
            format!("Remote: {owner:3} {lkid:08x}")
        };
        let _ = writeln!(out, "{lkid:08x} {gr} {rq} {remote} {} ", " ".repeat(8));
    }

    /// Where a process copy is shown: granted (also while a conversion is on its way),
    /// converting once the master queued the conversion, waiting, or waiting for the
    /// directory to name a master.
    fn shown(&self, l: &PLock) -> Shown {
        if l.grmode.is_some() {
            return if l.op == Some(Op::Convert) && l.queued {
                Shown::Convert
            } else {
                Shown::Granted
            };
        }
        if l.uncertain {
            // A middle conversion lost with its master: it waits on the new one.
            return Shown::Convert;
        }
        match self.owned.get(&l.name).and_then(|o| o.master) {
            None => Shown::Lookup,
            Some(_) => Shown::Waiting,
        }
    }

    /// The kernel's `res_nodeid` for a name: 0 if mastered here, the master, or -1 while
    /// it is being looked up.
    fn res_nodeid(&self, name: &[u8]) -> i64 {
        if self.masters.contains_key(name) {
            return 0;
        }
        match self.owned.get(name).and_then(|o| o.master) {
            Some(m) if m == self.me => 0,
            Some(m) => i64::from(m),
            None => -1,
        }
    }

    /// The remote node and message a lock of this node waits on, if any.
    fn waiting_for(&self, l: &PLock) -> Option<(NodeId, u32)> {
        let o = self.owned.get(&l.name)?;
        let master = o.master.filter(|m| *m != self.me)?;
        if l.cancel_sent {
            return Some((master, MSG_CANCEL));
        }
        if l.queued || l.resend {
            return None;
        }
        let msg = match l.op? {
            Op::Request => MSG_REQUEST,
            Op::Convert => MSG_CONVERT,
            Op::Unlock => MSG_UNLOCK,
        };
        Some((master, msg))
    }

    /// dlm_tool's "Expecting reply" list: (lkid, resource, node, message) for every
    /// operation sent to another node and not answered, and every lookup out to another
    /// directory node (shown on the resource's first lock, like `res_first_lkid`).
    fn waiters(&self) -> Vec<(u32, &Vec<u8>, NodeId, u32)> {
        let mut w = Vec::new();
        for (name, o) in &self.owned {
            if o.lookup.is_some() && !self.members.is_empty() {
                let dir = dir_node(name, &self.members);
                if dir != self.me {
                    if let Some(first) = o.locks.iter().next() {
                        w.push((*first, name, dir, MSG_LOOKUP));
                    }
                }
            }
        }
        for (lkid, l) in &self.locks {
            if let Some((node, msg)) = self.waiting_for(l) {
                w.push((*lkid, &l.name, node, msg));
            }
        }
        w
    }
}

/// `Resource len NN  "name"`, or the name in hex when it has unprintable bytes (the
/// kernel's debugfs picks "str" or "hex" the same way).
fn resource_line(name: &[u8], out: &mut String) {
    if name.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        let _ = writeln!(
            out,
            "Resource len {:2}  \"{}\"",
            name.len(),
            String::from_utf8_lossy(name)
        );
    } else {
        let hex: Vec<String> = name.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "Resource len {:2} hex {}", name.len(), hex.join(" "));
    }
}

/// A name between quotes on one line: unprintable bytes as '.'.
fn plain(name: &[u8]) -> String {
    name.iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// `LVB len 32 seq N` and the bytes in hex, 16 to a line (dlm_tool's `print_lvb`).
fn lvb_lines(lvb: &Lvb, seq: u32, out: &mut String) {
    let _ = writeln!(out, "LVB len {} seq {seq}", lvb.len());
    for (i, b) in lvb.iter().enumerate() {
        let _ = write!(out, "{b:02x}");
        out.push_str(if i + 1 == lvb.len() {
            "\n"
        } else if (i + 1) % 16 == 0 {
            " \n"
        } else {
            " "
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_blocks_print_sixteen_bytes_a_line() {
        let mut lvb = [0u8; 32];
        for (i, b) in lvb.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut out = String::new();
        lvb_lines(&lvb, 7, &mut out);
        assert_eq!(
            out,
            "LVB len 32 seq 7\n\
             00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f \n\
             10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f\n"
        );
    }

    #[test]
    fn names_with_unprintable_bytes_are_shown_in_hex() {
        let mut out = String::new();
        resource_line(b"my lock", &mut out);
        resource_line(b"a\0b", &mut out);
        assert_eq!(
            out,
            "Resource len  7  \"my lock\"\nResource len  3 hex 61 00 62\n"
        );
        assert_eq!(plain(b"a\0b"), "a.b");
    }
}
