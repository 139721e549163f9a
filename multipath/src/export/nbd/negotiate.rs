//! Option haggling (fixed newstyle negotiation), sans-IO: one option in, the replies
//! to send and what happens next out.
//!
//! Served: `EXPORT_NAME`, `GO`, `INFO` (with `NBD_INFO_EXPORT` and
//! `NBD_INFO_BLOCK_SIZE`), `LIST`, `ABORT`. Refused with `NBD_REP_ERR_UNSUP`:
//! `STRUCTURED_REPLY` (every reply is a simple reply), the metadata-context options
//! (they need structured replies) and any unknown option; `STARTTLS` gets
//! `NBD_REP_ERR_POLICY` (NOTLS mode: the socket is local, its permissions guard it).

use bytes::{Buf, BufMut, BytesMut};

use super::wire::*;

/// What the negotiation needs to know about an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    pub size: u64,
    /// Every request's offset and length must be a multiple of it.
    pub min_block: u32,
    pub preferred_block: u32,
    pub read_only: bool,
}

impl ExportInfo {
    /// The transmission flags this server announces for the export.
    ///
    /// `CAN_MULTI_CONN` is safe because a `BlockDevice` flush covers every write
    /// completed before it from any caller (see the trait's contract), which is what
    /// the flag promises across connections.
    pub fn transmission_flags(&self) -> u16 {
        let mut flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_CAN_MULTI_CONN;
        if self.read_only {
            flags |= FLAG_READ_ONLY;
        } else {
            flags |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
        }
        flags
    }
}

/// The exports a connection may choose from.
pub trait Exports {
    /// The export called `name` (`""` is the default export).
    fn lookup(&self, name: &str) -> Option<ExportInfo>;
    /// Every export's name, for `NBD_OPT_LIST`.
    fn names(&self) -> Vec<String>;
}

/// What the connection does after an option's replies are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next option.
    Options,
    /// Enter the transmission phase on this export.
    Transmit(String),
    /// Close the connection (ABORT, or an `EXPORT_NAME` that cannot be answered).
    Close(String),
}

/// Answer one option: append the replies to `out`, say what comes next.
pub fn answer(
    opt: &ClientOption,
    no_zeroes: bool,
    exports: &dyn Exports,
    out: &mut BytesMut,
) -> Next {
    match opt.code {
        OPT_EXPORT_NAME => export_name(opt, no_zeroes, exports, out),
        OPT_GO | OPT_INFO => info(opt, exports, out),
        OPT_LIST => {
            if !opt.data.is_empty() {
                error(
                    out,
                    opt.code,
                    REP_ERR_INVALID,
                    "NBD_OPT_LIST carries no data",
                );
                return Next::Options;
            }
            for name in exports.names() {
                let mut data = Vec::with_capacity(4 + name.len());
                data.put_u32(name.len() as u32);
                data.put_slice(name.as_bytes());
                put_option_reply(out, opt.code, REP_SERVER, &data);
            }
            put_option_reply(out, opt.code, REP_ACK, b"");
            Next::Options
        }
        OPT_ABORT => {
            put_option_reply(out, opt.code, REP_ACK, b"");
            Next::Close("the client aborted the negotiation".into())
        }
        OPT_STARTTLS => {
            error(
                out,
                opt.code,
                REP_ERR_POLICY,
                "TLS is not offered on a local socket",
            );
            Next::Options
        }
        OPT_STRUCTURED_REPLY => {
            error(
                out,
                opt.code,
                REP_ERR_UNSUP,
                "structured replies are not implemented",
            );
            Next::Options
        }
        code => {
            error(
                out,
                code,
                REP_ERR_UNSUP,
                &format!("option {code} is not supported"),
            );
            Next::Options
        }
    }
}

fn error(out: &mut BytesMut, option: u32, reply: u32, message: &str) {
    put_option_reply(out, option, reply, message.as_bytes());
}

/// `NBD_OPT_EXPORT_NAME`: the reply is the size and flags, then (unless the client set
/// NO_ZEROES) 124 zero bytes; there is no error reply, so an unknown export closes.
fn export_name(
    opt: &ClientOption,
    no_zeroes: bool,
    exports: &dyn Exports,
    out: &mut BytesMut,
) -> Next {
    let Ok(name) = std::str::from_utf8(&opt.data) else {
        return Next::Close("NBD_OPT_EXPORT_NAME: the name is not UTF-8".into());
    };
    let Some(info) = exports.lookup(name) else {
        return Next::Close(format!("NBD_OPT_EXPORT_NAME: no export named {name:?}"));
    };
    out.put_u64(info.size);
    out.put_u16(info.transmission_flags());
    if !no_zeroes {
        out.put_bytes(0, 124);
    }
    Next::Transmit(name.to_owned())
}

/// `NBD_OPT_INFO` and `NBD_OPT_GO`: data is a 32-bit name length, the name, a 16-bit
/// count of information requests and the requests. The server answers with
/// `NBD_INFO_EXPORT` (always) and `NBD_INFO_BLOCK_SIZE` (always: the protocol lets a
/// server send it unasked, and a client that ignores it still gets EINVAL rather than
/// wrong data for a misaligned request), then `NBD_REP_ACK`; GO then transmits.
fn info(opt: &ClientOption, exports: &dyn Exports, out: &mut BytesMut) -> Next {
    let mut data = &opt.data[..];
    let parsed = (|| {
        if data.len() < 4 {
            return Err("shorter than its name length".to_owned());
        }
        let name_len = data.get_u32() as usize;
        if data.len() < name_len + 2 {
            return Err(format!("name length {name_len} runs past the option's end"));
        }
        let name = std::str::from_utf8(&data[..name_len])
            .map_err(|_| "the name is not UTF-8".to_owned())?;
        data.advance(name_len);
        let count = data.get_u16() as usize;
        if data.len() != 2 * count {
            return Err(format!(
                "{count} information requests in {} bytes",
                data.len()
            ));
        }
        Ok(name)
    })();
    let name = match parsed {
        Ok(name) => name,
        Err(why) => {
            let what = if opt.code == OPT_GO {
                "NBD_OPT_GO"
            } else {
                "NBD_OPT_INFO"
            };
            error(out, opt.code, REP_ERR_INVALID, &format!("{what}: {why}"));
            return Next::Options;
        }
    };
    let Some(info) = exports.lookup(name) else {
        error(
            out,
            opt.code,
            REP_ERR_UNKNOWN,
            &format!("no export named {name:?}"),
        );
        return Next::Options;
    };
    let mut export = Vec::with_capacity(12);
    export.put_u16(INFO_EXPORT);
    export.put_u64(info.size);
    export.put_u16(info.transmission_flags());
    put_option_reply(out, opt.code, REP_INFO, &export);
    let mut block = Vec::with_capacity(14);
    block.put_u16(INFO_BLOCK_SIZE);
    block.put_u32(info.min_block);
    block.put_u32(info.preferred_block);
    block.put_u32(MAX_PAYLOAD);
    put_option_reply(out, opt.code, REP_INFO, &block);
    put_option_reply(out, opt.code, REP_ACK, b"");
    if opt.code == OPT_GO {
        Next::Transmit(name.to_owned())
    } else {
        Next::Options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    struct One;
    const INFO: ExportInfo = ExportInfo {
        size: 1 << 20,
        min_block: 512,
        preferred_block: 4096,
        read_only: false,
    };
    impl Exports for One {
        fn lookup(&self, name: &str) -> Option<ExportInfo> {
            (name == "a" || name.is_empty()).then_some(INFO)
        }
        fn names(&self) -> Vec<String> {
            vec!["a".into()]
        }
    }

    fn run(code: u32, data: &'static [u8]) -> (Next, BytesMut) {
        let mut out = BytesMut::new();
        let opt = ClientOption {
            code,
            data: Bytes::from_static(data),
        };
        (answer(&opt, true, &One, &mut out), out)
    }

    /// Split option replies into (option, type, data).
    fn replies(mut out: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        let mut v = Vec::new();
        while !out.is_empty() {
            assert_eq!(out.get_u64(), OPT_REPLY_MAGIC);
            let (opt, ty, len) = (out.get_u32(), out.get_u32(), out.get_u32() as usize);
            v.push((opt, ty, out[..len].to_vec()));
            out.advance(len);
        }
        v
    }

    #[test]
    fn go_golden_bytes() {
        let (next, out) = run(OPT_GO, b"\x00\x00\x00\x01a\x00\x01\x00\x03");
        assert_eq!(next, Next::Transmit("a".into()));
        let flags = 0x0001 | 0x0004 | 0x0008 | 0x0020 | 0x0040 | 0x0100;
        assert_eq!(
            replies(&out),
            vec![
                (
                    7,
                    REP_INFO,
                    [
                        &[0, 0][..],
                        &(1u64 << 20).to_be_bytes(),
                        &(flags as u16).to_be_bytes()
                    ]
                    .concat()
                ),
                (
                    7,
                    REP_INFO,
                    b"\x00\x03\x00\x00\x02\x00\x00\x00\x10\x00\x02\x00\x00\x00".to_vec()
                ),
                (7, REP_ACK, vec![]),
            ]
        );
    }

    #[test]
    fn info_stays_in_negotiation_and_default_export_is_found() {
        let (next, out) = run(OPT_INFO, b"\x00\x00\x00\x00\x00\x00");
        assert_eq!(next, Next::Options);
        assert_eq!(replies(&out).last().unwrap().1, REP_ACK);
    }

    #[test]
    fn go_errors_keep_negotiating() {
        let (next, out) = run(OPT_GO, b"\x00\x00\x00\x01b\x00\x00");
        assert_eq!(next, Next::Options);
        let r = replies(&out);
        assert_eq!((r.len(), r[0].1), (1, REP_ERR_UNKNOWN));
        for bad in [
            &b"\x00\x00"[..],
            b"\x00\x00\x00\x09a\x00\x00",
            b"\x00\x00\x00\x01a\x00\x02\x00\x03",
        ] {
            let mut out = BytesMut::new();
            let opt = ClientOption {
                code: OPT_GO,
                data: Bytes::copy_from_slice(bad),
            };
            assert_eq!(answer(&opt, true, &One, &mut out), Next::Options);
            let r = replies(&out);
            assert_eq!(r[0].1, REP_ERR_INVALID, "{bad:?}");
            assert!(String::from_utf8_lossy(&r[0].2).starts_with("NBD_OPT_GO: "));
        }
    }

    #[test]
    fn export_name_with_and_without_zeroes() {
        let (next, out) = run(OPT_EXPORT_NAME, b"a");
        assert_eq!(next, Next::Transmit("a".into()));
        assert_eq!(&out[..], b"\x00\x00\x00\x00\x00\x10\x00\x00\x01\x6d");
        let mut out = BytesMut::new();
        let opt = ClientOption {
            code: OPT_EXPORT_NAME,
            data: Bytes::from_static(b""),
        };
        answer(&opt, false, &One, &mut out);
        assert_eq!(out.len(), 8 + 2 + 124);
        let (next, out) = run(OPT_EXPORT_NAME, b"nope");
        assert!(matches!(next, Next::Close(why) if why.contains("\"nope\"")));
        assert!(out.is_empty());
    }

    #[test]
    fn list_abort_and_refusals() {
        let (next, out) = run(OPT_LIST, b"");
        assert_eq!(next, Next::Options);
        assert_eq!(
            replies(&out),
            vec![
                (3, REP_SERVER, b"\x00\x00\x00\x01a".to_vec()),
                (3, REP_ACK, vec![])
            ]
        );
        assert_eq!(replies(&run(OPT_LIST, b"x").1)[0].1, REP_ERR_INVALID);
        let (next, out) = run(OPT_ABORT, b"");
        assert!(matches!(next, Next::Close(_)));
        assert_eq!(replies(&out), vec![(2, REP_ACK, vec![])]);
        assert_eq!(
            replies(&run(OPT_STRUCTURED_REPLY, b"").1)[0].1,
            REP_ERR_UNSUP
        );
        assert_eq!(replies(&run(OPT_STARTTLS, b"").1)[0].1, REP_ERR_POLICY);
        assert_eq!(replies(&run(10, b"").1)[0].1, REP_ERR_UNSUP);
    }

    #[test]
    fn read_only_flags() {
        let ro = ExportInfo {
            read_only: true,
            ..INFO
        };
        assert_eq!(
            ro.transmission_flags(),
            0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0100
        );
    }
}
