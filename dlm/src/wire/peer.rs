//! Lock traffic between two daemons: `Msg`, and `PeerFrame` around it on the TCP link.

use super::codec::{put_ls, put_name, Codec, Reader};
use super::PeerFrame;
use crate::message::Msg;
use crate::Result;

impl Codec for PeerFrame {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            PeerFrame::Hello { node, protocol } => {
                out.push(1);
                node.put(out);
                protocol.put(out);
            }
            PeerFrame::Msg(m) => {
                out.push(2);
                m.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Hello", |r| {
                Ok(PeerFrame::Hello {
                    node: r.get("node")?,
                    protocol: r.get("protocol")?,
                })
            }),
            2 => r.within("Msg", |r| Ok(PeerFrame::Msg(r.get("msg")?))),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

// Field order on the wire is the order of the fields in `message.rs`; `get` reads them
// in the order the struct literals list them (Rust evaluates those left to right).
impl Codec for Msg {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Msg::Lookup { ls, gen, name, id } => {
                out.push(1);
                put_ls(out, ls);
                gen.put(out);
                put_name(out, name);
                id.put(out);
            }
            Msg::LookupReply {
                ls,
                gen,
                name,
                id,
                master,
            } => {
                out.push(2);
                put_ls(out, ls);
                gen.put(out);
                put_name(out, name);
                id.put(out);
                master.put(out);
            }
            Msg::Remove { ls, gen, name } => {
                out.push(3);
                put_ls(out, ls);
                gen.put(out);
                put_name(out, name);
            }
            Msg::Request {
                ls,
                name,
                lkid,
                mode,
                flags,
                bast,
                lvb,
            } => {
                out.push(4);
                put_ls(out, ls);
                put_name(out, name);
                lkid.put(out);
                mode.put(out);
                flags.put(out);
                bast.put(out);
                lvb.put(out);
            }
            Msg::Convert {
                ls,
                name,
                lkid,
                mode,
                flags,
                lvb,
                reply,
            } => {
                out.push(5);
                put_ls(out, ls);
                put_name(out, name);
                lkid.put(out);
                mode.put(out);
                flags.put(out);
                lvb.put(out);
                reply.put(out);
            }
            Msg::Unlock {
                ls,
                name,
                lkid,
                flags,
                lvb,
            } => {
                out.push(6);
                put_ls(out, ls);
                put_name(out, name);
                lkid.put(out);
                flags.put(out);
                lvb.put(out);
            }
            Msg::Cancel { ls, name, lkid } => {
                out.push(7);
                put_ls(out, ls);
                put_name(out, name);
                lkid.put(out);
            }
            Msg::NotMaster { ls, name, lkid } => {
                out.push(8);
                put_ls(out, ls);
                put_name(out, name);
                lkid.put(out);
            }
            Msg::Cast {
                ls,
                lkid,
                status,
                mode,
                sbflags,
                lvb,
            } => {
                out.push(9);
                put_ls(out, ls);
                lkid.put(out);
                status.put(out);
                mode.put(out);
                sbflags.put(out);
                lvb.put(out);
            }
            Msg::Queued { ls, lkid } => {
                out.push(10);
                put_ls(out, ls);
                lkid.put(out);
            }
            Msg::Bast { ls, lkid, mode } => {
                out.push(11);
                put_ls(out, ls);
                lkid.put(out);
                mode.put(out);
            }
            Msg::CancelNoop { ls, lkid } => {
                out.push(12);
                put_ls(out, ls);
                lkid.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Lookup", |r| {
                Ok(Msg::Lookup {
                    ls: r.ls()?,
                    gen: r.get("gen")?,
                    name: r.name()?,
                    id: r.get("id")?,
                })
            }),
            2 => r.within("LookupReply", |r| {
                Ok(Msg::LookupReply {
                    ls: r.ls()?,
                    gen: r.get("gen")?,
                    name: r.name()?,
                    id: r.get("id")?,
                    master: r.get("master")?,
                })
            }),
            3 => r.within("Remove", |r| {
                Ok(Msg::Remove {
                    ls: r.ls()?,
                    gen: r.get("gen")?,
                    name: r.name()?,
                })
            }),
            4 => r.within("Request", |r| {
                Ok(Msg::Request {
                    ls: r.ls()?,
                    name: r.name()?,
                    lkid: r.get("lkid")?,
                    mode: r.get("mode")?,
                    flags: r.get("flags")?,
                    bast: r.get("bast")?,
                    lvb: r.get("lvb")?,
                })
            }),
            5 => r.within("Convert", |r| {
                Ok(Msg::Convert {
                    ls: r.ls()?,
                    name: r.name()?,
                    lkid: r.get("lkid")?,
                    mode: r.get("mode")?,
                    flags: r.get("flags")?,
                    lvb: r.get("lvb")?,
                    reply: r.get("reply")?,
                })
            }),
            6 => r.within("Unlock", |r| {
                Ok(Msg::Unlock {
                    ls: r.ls()?,
                    name: r.name()?,
                    lkid: r.get("lkid")?,
                    flags: r.get("flags")?,
                    lvb: r.get("lvb")?,
                })
            }),
            7 => r.within("Cancel", |r| {
                Ok(Msg::Cancel {
                    ls: r.ls()?,
                    name: r.name()?,
                    lkid: r.get("lkid")?,
                })
            }),
            8 => r.within("NotMaster", |r| {
                Ok(Msg::NotMaster {
                    ls: r.ls()?,
                    name: r.name()?,
                    lkid: r.get("lkid")?,
                })
            }),
            9 => r.within("Cast", |r| {
                Ok(Msg::Cast {
                    ls: r.ls()?,
                    lkid: r.get("lkid")?,
                    status: r.get("status")?,
                    mode: r.get("mode")?,
                    sbflags: r.get("sbflags")?,
                    lvb: r.get("lvb")?,
                })
            }),
            10 => r.within("Queued", |r| {
                Ok(Msg::Queued {
                    ls: r.ls()?,
                    lkid: r.get("lkid")?,
                })
            }),
            11 => r.within("Bast", |r| {
                Ok(Msg::Bast {
                    ls: r.ls()?,
                    lkid: r.get("lkid")?,
                    mode: r.get("mode")?,
                })
            }),
            12 => r.within("CancelNoop", |r| {
                Ok(Msg::CancelNoop {
                    ls: r.ls()?,
                    lkid: r.get("lkid")?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}
