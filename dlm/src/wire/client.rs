//! The client protocol on the unix socket: `ClientFrame` (libdlm calls and dlm_tool
//! queries) and `DaemonFrame` (replies, callbacks, query text).

use super::codec::{put_ls, put_name, put_text, Codec, Reader};
use crate::api::{Callback, ClientFrame, DaemonFrame, Errno, Query, Request};
use crate::Result;

/// The Hello's tag, the same in every version of the protocol (tag 0 and a `u16`), so
/// that two versions can always tell each other which they speak.
const HELLO_TAG: u8 = 0;

impl Codec for ClientFrame {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            ClientFrame::Hello { protocol } => {
                out.push(HELLO_TAG);
                protocol.put(out);
            }
            ClientFrame::Call { req, request } => {
                out.push(1);
                req.put(out);
                request.put(out);
            }
            ClientFrame::Query { req, query } => {
                out.push(2);
                req.put(out);
                query.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            HELLO_TAG => r.within("Hello", |r| {
                Ok(ClientFrame::Hello {
                    protocol: r.get("protocol")?,
                })
            }),
            1 => r.within("Call", |r| {
                Ok(ClientFrame::Call {
                    req: r.get("req")?,
                    request: r.get("request")?,
                })
            }),
            2 => r.within("Query", |r| {
                Ok(ClientFrame::Query {
                    req: r.get("req")?,
                    query: r.get("query")?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

impl Codec for Request {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Request::Join { ls } => {
                out.push(1);
                put_ls(out, ls);
            }
            Request::Leave { ls, force } => {
                out.push(2);
                put_ls(out, ls);
                force.put(out);
            }
            Request::Lock {
                ls,
                name,
                mode,
                flags,
                lvb,
                bast,
                lkid,
            } => {
                out.push(3);
                put_ls(out, ls);
                put_name(out, name);
                mode.put(out);
                flags.put(out);
                lvb.put(out);
                bast.put(out);
                lkid.put(out);
            }
            Request::Unlock {
                ls,
                lkid,
                flags,
                lvb,
            } => {
                out.push(4);
                put_ls(out, ls);
                lkid.put(out);
                flags.put(out);
                lvb.put(out);
            }
            Request::FenceAck { node } => {
                out.push(5);
                node.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Join", |r| Ok(Request::Join { ls: r.ls()? })),
            2 => r.within("Leave", |r| {
                Ok(Request::Leave {
                    ls: r.ls()?,
                    force: r.get("force")?,
                })
            }),
            3 => r.within("Lock", |r| {
                Ok(Request::Lock {
                    ls: r.ls()?,
                    name: r.name()?,
                    mode: r.get("mode")?,
                    flags: r.get("flags")?,
                    lvb: r.get("lvb")?,
                    bast: r.get("bast")?,
                    lkid: r.get("lkid")?,
                })
            }),
            4 => r.within("Unlock", |r| {
                Ok(Request::Unlock {
                    ls: r.ls()?,
                    lkid: r.get("lkid")?,
                    flags: r.get("flags")?,
                    lvb: r.get("lvb")?,
                })
            }),
            5 => r.within("FenceAck", |r| {
                Ok(Request::FenceAck {
                    node: r.get("node")?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

impl Codec for Query {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Query::Ls { name, nodes } => {
                out.push(1);
                name.is_some().put(out);
                if let Some(ls) = name {
                    put_ls(out, ls);
                }
                nodes.put(out);
            }
            Query::Status { verbose } => {
                out.push(2);
                verbose.put(out);
            }
            Query::Dump => out.push(3),
            Query::DumpConfig => out.push(4),
            Query::Lockdump { ls, master_copies } => {
                out.push(5);
                put_ls(out, ls);
                master_copies.put(out);
            }
            Query::Lockdebug { ls } => {
                out.push(6);
                put_ls(out, ls);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Ls", |r| {
                Ok(Query::Ls {
                    name: match r.get("name")? {
                        true => Some(r.ls()?),
                        false => None,
                    },
                    nodes: r.get("nodes")?,
                })
            }),
            2 => r.within("Status", |r| {
                Ok(Query::Status {
                    verbose: r.get("verbose")?,
                })
            }),
            3 => Ok(Query::Dump),
            4 => Ok(Query::DumpConfig),
            5 => r.within("Lockdump", |r| {
                Ok(Query::Lockdump {
                    ls: r.ls()?,
                    master_copies: r.get("master_copies")?,
                })
            }),
            6 => r.within("Lockdebug", |r| Ok(Query::Lockdebug { ls: r.ls()? })),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

impl Codec for DaemonFrame {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            DaemonFrame::Hello { protocol } => {
                out.push(HELLO_TAG);
                protocol.put(out);
            }
            DaemonFrame::Reply { req, result } => {
                out.push(1);
                req.put(out);
                put_result(out, result, |v, out| v.put(out));
            }
            DaemonFrame::Callback { ls, cb } => {
                out.push(2);
                put_ls(out, ls);
                cb.put(out);
            }
            DaemonFrame::Text { req, result } => {
                out.push(3);
                req.put(out);
                put_result(out, result, |s, out| put_text(out, s));
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            HELLO_TAG => r.within("Hello", |r| {
                Ok(DaemonFrame::Hello {
                    protocol: r.get("protocol")?,
                })
            }),
            1 => r.within("Reply", |r| {
                Ok(DaemonFrame::Reply {
                    req: r.get("req")?,
                    result: get_result(r, |r| r.get("lkid"))?,
                })
            }),
            2 => r.within("Callback", |r| {
                Ok(DaemonFrame::Callback {
                    ls: r.ls()?,
                    cb: r.get("cb")?,
                })
            }),
            3 => r.within("Text", |r| {
                Ok(DaemonFrame::Text {
                    req: r.get("req")?,
                    result: get_result(r, |r| r.text("text"))?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}

/// A call's outcome: 0 and the value, or 1 and the errno.
fn put_result<T>(out: &mut Vec<u8>, v: &Result<T, Errno>, ok: impl FnOnce(&T, &mut Vec<u8>)) {
    match v {
        Ok(v) => {
            out.push(0);
            ok(v, out);
        }
        Err(e) => {
            out.push(1);
            e.put(out);
        }
    }
}

fn get_result<T>(
    r: &mut Reader<'_>,
    ok: impl FnOnce(&mut Reader<'_>) -> Result<T>,
) -> Result<Result<T, Errno>> {
    // Same byte as a bool: 0 for Ok, 1 for Err.
    Ok(match r.get("result")? {
        false => Ok(ok(r)?),
        true => Err(r.get("errno")?),
    })
}

impl Codec for Errno {
    fn put(&self, out: &mut Vec<u8>) {
        self.code.put(out);
        put_text(out, &self.detail);
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        Ok(Errno {
            code: r.get("errno code")?,
            detail: r.text("errno detail")?,
        })
    }
}

impl Codec for Callback {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Callback::Completion {
                lkid,
                status,
                mode,
                sbflags,
                lvb,
            } => {
                out.push(1);
                lkid.put(out);
                status.put(out);
                mode.put(out);
                sbflags.put(out);
                lvb.put(out);
            }
            Callback::Blocking { lkid, mode } => {
                out.push(2);
                lkid.put(out);
                mode.put(out);
            }
        }
    }

    fn get(r: &mut Reader<'_>, _field: &str) -> Result<Self> {
        let (tag, at) = r.tag()?;
        match tag {
            1 => r.within("Completion", |r| {
                Ok(Callback::Completion {
                    lkid: r.get("lkid")?,
                    status: r.get("status")?,
                    mode: r.get("mode")?,
                    sbflags: r.get("sbflags")?,
                    lvb: r.get("lvb")?,
                })
            }),
            2 => r.within("Blocking", |r| {
                Ok(Callback::Blocking {
                    lkid: r.get("lkid")?,
                    mode: r.get("mode")?,
                })
            }),
            _ => Err(r.unknown_tag(tag, at)),
        }
    }
}
