//! Recovery and fencing traffic, multicast through corosync CPG: one bare payload per
//! CPG message (CPG keeps message boundaries, so there is no length prefix).

use super::codec::{put_name, put_vec, Codec, Reader};
use crate::message::{DaemonCpg, LsCpg, RecoverLock};
use crate::Result;

/// The fewest bytes a `RecoverLock` takes (empty name, every option absent): bounds the
/// count of a `Locks` vector before it is allocated.
const RECOVER_LOCK_MIN: usize = 2 + 4 + 1 + 1 + 1 + 4 + 1 + 1 + 4;
/// An empty resource name is its `u16` length.
const NAME_MIN: usize = 2;

impl Codec for LsCpg {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            LsCpg::Start { gen } => {
                out.push(1);
                gen.put(out);
            }
            LsCpg::Masters {
                mastered,
                orphaned,
                last,
            } => {
                out.push(2);
                put_vec(out, mastered, |n, out| put_name(out, n));
                put_vec(out, orphaned, |n, out| put_name(out, n));
                last.put(out);
            }
            LsCpg::Locks { locks, last } => {
                out.push(3);
                put_vec(out, locks, |l, out| l.put(out));
                last.put(out);
            }
            LsCpg::Done => out.push(4),
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Start", |r| Ok(LsCpg::Start { gen: r.get("gen")? })),
            2 => r.within("Masters", |r| {
                Ok(LsCpg::Masters {
                    mastered: r.vec("mastered", NAME_MIN, Reader::name)?,
                    orphaned: r.vec("orphaned", NAME_MIN, Reader::name)?,
                    last: r.get("last")?,
                })
            }),
            3 => r.within("Locks", |r| {
                Ok(LsCpg::Locks {
                    locks: r.vec("locks", RECOVER_LOCK_MIN, |r| {
                        r.within("RecoverLock", |r| r.get("lock"))
                    })?,
                    last: r.get("last")?,
                })
            }),
            4 => Ok(LsCpg::Done),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

impl Codec for RecoverLock {
    fn put(&self, out: &mut Vec<u8>) {
        put_name(out, &self.name);
        self.lkid.put(out);
        self.grmode.put(out);
        self.rqmode.put(out);
        self.queue.put(out);
        self.flags.put(out);
        self.bast.put(out);
        self.lvb.put(out);
        self.lvbseq.put(out);
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        Ok(RecoverLock {
            name: r.name()?,
            lkid: r.get("lkid")?,
            grmode: r.get("grmode")?,
            rqmode: r.get("rqmode")?,
            queue: r.get("queue")?,
            flags: r.get("flags")?,
            bast: r.get("bast")?,
            lvb: r.get("lvb")?,
            lvbseq: r.get("lvbseq")?,
        })
    }
}

impl Codec for DaemonCpg {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            DaemonCpg::FenceStart { node } => {
                out.push(1);
                node.put(out);
            }
            DaemonCpg::FenceResult { node, ok } => {
                out.push(2);
                node.put(out);
                ok.put(out);
            }
            DaemonCpg::FenceAck { node } => {
                out.push(3);
                node.put(out);
            }
            DaemonCpg::Hello { stateful, side } => {
                out.push(4);
                stateful.put(out);
                side.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("FenceStart", |r| {
                Ok(DaemonCpg::FenceStart {
                    node: r.get("node")?,
                })
            }),
            2 => r.within("FenceResult", |r| {
                Ok(DaemonCpg::FenceResult {
                    node: r.get("node")?,
                    ok: r.get("ok")?,
                })
            }),
            3 => r.within("FenceAck", |r| {
                Ok(DaemonCpg::FenceAck {
                    node: r.get("node")?,
                })
            }),
            4 => r.within("Hello", |r| {
                Ok(DaemonCpg::Hello {
                    stateful: r.get("stateful")?,
                    side: r.get("side")?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}
