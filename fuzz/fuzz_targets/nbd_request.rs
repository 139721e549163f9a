//! The NBD server's sans-IO side on arbitrary bytes: as a stream of options (each
//! answered against a fixed export table) and as a stream of transmission requests
//! (each checked against an export). Nothing panics; every option reply is well
//! framed; a checked request never lets a command past the export's end, its block
//! alignment or the payload limit; bytes fed one at a time parse as fed at once.
#![no_main]
use bytes::{Buf, BytesMut};
use hydra_multipath::export::nbd::negotiate::{answer, ExportInfo, Exports, Next};
use hydra_multipath::export::nbd::transmit::{check, Command};
use hydra_multipath::export::nbd::wire::*;
use libfuzzer_sys::fuzz_target;

const INFO: ExportInfo = ExportInfo {
    size: 1 << 30,
    min_block: 512,
    preferred_block: 4096,
    read_only: false,
};

struct Table;
impl Exports for Table {
    fn lookup(&self, name: &str) -> Option<ExportInfo> {
        match name {
            "" | "lun" => Some(INFO),
            "ro" => Some(ExportInfo { read_only: true, ..INFO }),
            _ => None,
        }
    }
    fn names(&self) -> Vec<String> {
        vec!["lun".into(), "ro".into()]
    }
}

fn options(data: &[u8]) -> Vec<ClientOption> {
    let mut buf = BytesMut::from(data);
    let mut got = Vec::new();
    while let Ok(Some(opt)) = parse_option(&mut buf) {
        assert!(opt.data.len() <= MAX_OPTION_LEN as usize);
        let mut out = BytesMut::new();
        let next = answer(&opt, opt.code % 2 == 0, &Table, &mut out);
        if opt.code == OPT_EXPORT_NAME {
            // The only option answered without option-reply framing.
            if let Next::Transmit(_) = next {
                assert!(out.len() == 10 || out.len() == 134);
            } else {
                assert!(out.is_empty());
            }
        } else {
            let mut rest = &out[..];
            while !rest.is_empty() {
                assert!(rest.len() >= 20);
                assert_eq!(rest.get_u64(), OPT_REPLY_MAGIC);
                assert_eq!(rest.get_u32(), opt.code);
                let _ty = rest.get_u32();
                let len = rest.get_u32() as usize;
                assert!(rest.len() >= len);
                rest.advance(len);
            }
        }
        got.push(opt);
    }
    got
}

fn requests(data: &[u8], info: &ExportInfo) -> Vec<Request> {
    let mut buf = BytesMut::from(data);
    let mut got = Vec::new();
    while let Ok(Some(req)) = parse_request(&mut buf) {
        assert_eq!(req.payload.len(), if req.command == CMD_WRITE { req.len as usize } else { 0 });
        got.push(req.clone());
        let (offset, len) = (req.offset, req.len);
        match check(req, info) {
            Ok(Command::Read { offset: o, len: l }) => {
                assert!((o, l) == (offset, len) && l <= MAX_PAYLOAD);
                assert!(o + u64::from(l) <= info.size && o % 512 == 0 && l % 512 == 0);
            }
            Ok(Command::Write { offset: o, data, .. }) => {
                assert!(!info.read_only);
                assert!(o + data.len() as u64 <= info.size && o % 512 == 0 && data.len() % 512 == 0);
            }
            Ok(Command::Trim { offset: o, len: l, .. } | Command::WriteZeroes { offset: o, len: l, .. }) => {
                assert!(!info.read_only);
                assert!(o + u64::from(l) <= info.size && o % 512 == 0 && l % 512 == 0);
            }
            Ok(Command::Flush | Command::Disconnect) | Err(_) => {}
        }
    }
    got
}

/// The same bytes fed one by one parse to the same frames.
fn trickled<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    whole: &[T],
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, Malformed>,
) {
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    'feed: for &b in data {
        buf.extend_from_slice(&[b]);
        loop {
            match parse(&mut buf) {
                Ok(Some(x)) => got.push(x),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    assert_eq!(got, whole);
}

fuzz_target!(|data: &[u8]| {
    let opts = options(data);
    let reqs = requests(data, &INFO);
    requests(data, &ExportInfo { read_only: true, ..INFO });
    if data.len() <= 4096 {
        trickled(data, &opts, parse_option);
        trickled(data, &reqs, parse_request);
    }
    let _ = parse_client_flags(data);
});
