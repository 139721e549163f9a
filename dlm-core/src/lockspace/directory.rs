//! The resource directory: which node masters a name. Every name has one directory
//! node, picked by hashing the name over the members (`dlm_hash2nodeid`), which records
//! the first node to look the name up as its master; the master's Remove forgets it
//! when the name is tossed. An owner that does not know a name's master asks the
//! directory first (`lookup`), then sends its waiting operations there. Recovery
//! rebuilds the directory from the members' Masters messages (`recovery`).

use super::master::MRes;
use super::Lockspace;
use crate::io::Output;
use crate::membership::NodeId;
use crate::message::{Msg, Name};
use crate::resource::Resource;

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

impl Lockspace {
    /// Ask the directory for the master of `name`: one lookup in flight per name.
    pub(super) fn lookup(&mut self, name: &Name, now: u64, out: &mut Vec<Output>) {
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

    /// A lookup at this node as the directory: the first asker becomes the master.
    pub(super) fn on_lookup(
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

    /// The directory's answer to this node's lookup: send what waited on the name.
    pub(super) fn on_lookup_reply(
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

    /// A master let `name` go (tossed it): forget it, unless the entry is from another
    /// generation or names another master by now.
    pub(super) fn on_remove(&mut self, from: NodeId, gen: u32, name: Name) {
        if gen == self.gen && self.dir.get(&name) == Some(&from) {
            self.dir.remove(&name);
        }
    }
}
