//! NBD wire format: magics, flags, the frames a client sends (options, requests) and
//! the frames the server sends (option replies, simple replies). Sans-IO: parsers take
//! the bytes received so far and answer "a frame", "not yet" (`Ok(None)`, the normal
//! case on a stream) or [`Malformed`] (the connection must close).
//!
//! Numbers from the NBD protocol, NetworkBlockDevice/nbd doc/proto.md ("Values").

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::export::DeviceError;

/// "NBDMAGIC", the first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": newstyle negotiation, and the magic in front of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic in front of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic in front of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic in front of every simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flags (server → client, 16 bits).
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags (client → server, 32 bits).
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flags (per export, 16 bits).
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
pub const FLAG_READ_ONLY: u16 = 1 << 1;
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
pub const FLAG_SEND_FUA: u16 = 1 << 3;
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Options (client → server during negotiation).
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;

/// Option reply types; errors have bit 31 set.
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_POLICY: u32 = (1 << 31) + 2;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;

/// Information types in `NBD_REP_INFO` (and requested by `NBD_OPT_INFO`/`GO`).
pub const INFO_EXPORT: u16 = 0;
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Commands (transmission requests).
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;

/// Command flags.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

/// The largest payload this server reads or sends in one request (a WRITE's data, a
/// READ's reply), also advertised as the maximum block size. 32 MiB is what the
/// reference server and qemu use.
pub const MAX_PAYLOAD: u32 = 32 << 20;

/// The largest option this server accepts: a name (at most 4096 bytes by the
/// protocol's rule on strings) and its framing, with room to spare.
pub const MAX_OPTION_LEN: u32 = 16 << 10;

/// Size of a transmission request header.
pub const REQUEST_LEN: usize = 28;
/// Size of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Size of an option header.
pub const OPTION_HEADER_LEN: usize = 16;

/// A client broke the protocol; the connection closes (proto.md: "Either side MAY
/// initiate a hard disconnect if it detects a violation … of a mandatory condition").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NBD protocol violation: {0}")]
pub struct Malformed(pub String);

/// Errors carried in the reply's error field: Linux errno numbers, as the protocol
/// fixes them whatever the server's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Errno {
    Perm = 1,
    Io = 5,
    NoMem = 12,
    Inval = 22,
    NoSpc = 28,
    Overflow = 75,
    NotSup = 95,
    Shutdown = 108,
}

impl From<&DeviceError> for Errno {
    /// The mapping documented on [`DeviceError`].
    fn from(e: &DeviceError) -> Errno {
        match e {
            DeviceError::Io(_) => Errno::Io,
            DeviceError::NoSpace => Errno::NoSpc,
            DeviceError::ReservationConflict | DeviceError::ReadOnly => Errno::Perm,
            DeviceError::Invalid(_) => Errno::Inval,
            DeviceError::NotSupported(_) => Errno::NotSup,
            DeviceError::Shutdown => Errno::Shutdown,
        }
    }
}

/// The server's first 18 bytes: NBDMAGIC, IHAVEOPT (newstyle) and the handshake flags.
pub fn greeting() -> [u8; 18] {
    let mut out = [0u8; 18];
    out[..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    out[16..].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    out
}

/// What the client answered to the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFlags {
    /// The server must not send the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
    pub no_zeroes: bool,
}

/// The client's 32-bit flags. A flag we did not offer closes the connection ("the
/// server MUST drop the TCP connection if the client sets an unknown flag"); a client
/// without `FIXED_NEWSTYLE` is refused too, since only fixed newstyle lets us answer
/// options with errors instead of hanging up.
pub fn parse_client_flags(buf: &[u8]) -> Result<Option<ClientFlags>, Malformed> {
    let Some(raw) = buf.get(..4) else {
        return Ok(None);
    };
    let flags = u32::from_be_bytes(raw.try_into().expect("4 bytes"));
    if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(Malformed(format!(
            "client flags {flags:#x}: unknown bits set"
        )));
    }
    if flags & FLAG_C_FIXED_NEWSTYLE == 0 {
        return Err(Malformed(format!(
            "client flags {flags:#x}: no FIXED_NEWSTYLE (old clients are not served)"
        )));
    }
    Ok(Some(ClientFlags {
        no_zeroes: flags & FLAG_C_NO_ZEROES != 0,
    }))
}

/// One option as framed on the wire: its code and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOption {
    pub code: u32,
    pub data: Bytes,
}

/// Take one option off the front of `buf` (check, then parse).
pub fn parse_option(buf: &mut BytesMut) -> Result<Option<ClientOption>, Malformed> {
    if buf.len() < OPTION_HEADER_LEN {
        return Ok(None);
    }
    let magic = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
    if magic != IHAVEOPT {
        return Err(Malformed(format!(
            "option magic {magic:#018x}, expected IHAVEOPT"
        )));
    }
    let code = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(buf[12..16].try_into().expect("4 bytes"));
    if len > MAX_OPTION_LEN {
        return Err(Malformed(format!(
            "option {code} carries {len} bytes, more than {MAX_OPTION_LEN}"
        )));
    }
    let total = OPTION_HEADER_LEN + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(OPTION_HEADER_LEN);
    let data = buf.split_to(len as usize).freeze();
    Ok(Some(ClientOption { code, data }))
}

/// Append an option reply: magic, the option it answers, its type, its data.
pub fn put_option_reply(out: &mut BytesMut, option: u32, reply: u32, data: &[u8]) {
    out.reserve(20 + data.len());
    out.put_u64(OPT_REPLY_MAGIC);
    out.put_u32(option);
    out.put_u32(reply);
    out.put_u32(u32::try_from(data.len()).expect("option replies are small"));
    out.put_slice(data);
}

/// A transmission request as framed on the wire (the command is not checked yet: see
/// `transmit::check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub command: u16,
    /// The client's handle, echoed in the reply.
    pub cookie: u64,
    pub offset: u64,
    pub len: u32,
    /// A WRITE's data (exactly `len` bytes); empty for every other command.
    pub payload: Bytes,
}

/// Take one request (with its payload, for a WRITE) off the front of `buf`.
///
/// A WRITE longer than [`MAX_PAYLOAD`] is malformed: the protocol lets a server
/// disconnect rather than swallow an unbounded payload. Every other length is only a
/// number here and is judged by `transmit::check` (an answer, not a disconnect).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<Request>, Malformed> {
    if buf.len() < REQUEST_LEN {
        return Ok(None);
    }
    let mut h = &buf[..REQUEST_LEN];
    let magic = h.get_u32();
    if magic != REQUEST_MAGIC {
        return Err(Malformed(format!(
            "request magic {magic:#010x}, expected {REQUEST_MAGIC:#010x}"
        )));
    }
    let flags = h.get_u16();
    let command = h.get_u16();
    let cookie = h.get_u64();
    let offset = h.get_u64();
    let len = h.get_u32();
    let payload_len = if command == CMD_WRITE {
        if len > MAX_PAYLOAD {
            return Err(Malformed(format!(
                "WRITE of {len} bytes at {offset} (cookie {cookie:#x}): more than {MAX_PAYLOAD}"
            )));
        }
        len as usize
    } else {
        0
    };
    let total = REQUEST_LEN + payload_len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(REQUEST_LEN);
    let payload = buf.split_to(payload_len).freeze();
    Ok(Some(Request {
        flags,
        command,
        cookie,
        offset,
        len,
        payload,
    }))
}

/// Append a simple reply header: magic, error (0 = success), the request's cookie.
/// A successful READ's data follows it; a failed request has no payload.
pub fn put_simple_reply(out: &mut BytesMut, cookie: u64, error: Option<Errno>) {
    out.reserve(SIMPLE_REPLY_LEN);
    out.put_u32(SIMPLE_REPLY_MAGIC);
    out.put_u32(error.map_or(0, |e| e as u32));
    out.put_u64(cookie);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_bytes() {
        assert_eq!(
            &greeting()[..],
            b"NBDMAGICIHAVEOPT\x00\x03",
            "NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES"
        );
    }

    #[test]
    fn client_flags() {
        assert_eq!(parse_client_flags(&[0, 0, 0]), Ok(None));
        assert_eq!(
            parse_client_flags(&[0, 0, 0, 1]),
            Ok(Some(ClientFlags { no_zeroes: false }))
        );
        assert_eq!(
            parse_client_flags(&[0, 0, 0, 3]),
            Ok(Some(ClientFlags { no_zeroes: true }))
        );
        assert!(
            parse_client_flags(&[0, 0, 0, 0]).is_err(),
            "not fixed newstyle"
        );
        assert!(parse_client_flags(&[0, 0, 0, 5]).is_err(), "unknown bit 2");
        assert!(
            parse_client_flags(&[0x80, 0, 0, 1]).is_err(),
            "unknown bit 31"
        );
    }

    /// `NBD_OPT_GO` for export "a" requesting BLOCK_SIZE, as qemu sends it.
    const GO_A: &[u8] =
        b"IHAVEOPT\x00\x00\x00\x07\x00\x00\x00\x09\x00\x00\x00\x01a\x00\x01\x00\x03";

    #[test]
    fn option_golden_bytes_byte_by_byte() {
        let mut buf = BytesMut::new();
        for (i, b) in GO_A.iter().enumerate() {
            buf.put_u8(*b);
            let got = parse_option(&mut buf).unwrap();
            if i + 1 < GO_A.len() {
                assert_eq!(
                    got,
                    None,
                    "complete after {} of {} bytes",
                    i + 1,
                    GO_A.len()
                );
            } else {
                let opt = got.expect("complete");
                assert_eq!(opt.code, OPT_GO);
                assert_eq!(&opt.data[..], b"\x00\x00\x00\x01a\x00\x01\x00\x03");
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn option_errors() {
        let mut bad_magic = BytesMut::from(&b"IHAVEOPX\x00\x00\x00\x07\x00\x00\x00\x00"[..]);
        let e = parse_option(&mut bad_magic).unwrap_err();
        assert!(e.0.contains("IHAVEOPT"), "{e}");
        let mut huge = BytesMut::from(&b"IHAVEOPT\x00\x00\x00\x07\x7f\xff\xff\xff"[..]);
        let e = parse_option(&mut huge).unwrap_err();
        assert!(e.0.contains("option 7 carries 2147483647 bytes"), "{e}");
    }

    #[test]
    fn option_reply_golden_bytes() {
        let mut out = BytesMut::new();
        put_option_reply(&mut out, OPT_LIST, REP_ACK, b"");
        assert_eq!(
            &out[..],
            b"\x00\x03\xe8\x89\x04\x55\x65\xa9\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00"
        );
    }

    /// WRITE of 4 bytes at 0x1000, FUA, cookie 0x0102030405060708, then its data.
    const WRITE: &[u8] = b"\x25\x60\x95\x13\x00\x01\x00\x01\x01\x02\x03\x04\x05\x06\x07\x08\
        \x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x04abcd";

    #[test]
    fn request_golden_bytes_byte_by_byte() {
        let mut buf = BytesMut::new();
        for (i, b) in WRITE.iter().enumerate() {
            buf.put_u8(*b);
            let got = parse_request(&mut buf).unwrap();
            if i + 1 < WRITE.len() {
                assert_eq!(
                    got,
                    None,
                    "complete after {} of {} bytes",
                    i + 1,
                    WRITE.len()
                );
            } else {
                assert_eq!(
                    got,
                    Some(Request {
                        flags: CMD_FLAG_FUA,
                        command: CMD_WRITE,
                        cookie: 0x0102_0304_0506_0708,
                        offset: 0x1000,
                        len: 4,
                        payload: Bytes::from_static(b"abcd"),
                    })
                );
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn read_request_has_no_payload_and_leaves_the_next_bytes() {
        let mut buf = BytesMut::from(
            &b"\x25\x60\x95\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a\
               \x00\x00\x00\x00\x00\x00\x02\x00\xff\xff\xff\xff\x25"[..],
        );
        let r = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(
            (r.command, r.cookie, r.offset, r.len),
            (CMD_READ, 42, 512, u32::MAX)
        );
        assert!(r.payload.is_empty());
        assert_eq!(&buf[..], b"\x25");
    }

    #[test]
    fn request_errors() {
        let mut bad = BytesMut::from(&[0u8; 28][..]);
        assert!(parse_request(&mut bad)
            .unwrap_err()
            .0
            .contains("request magic 0x00000000"));
        let mut big = BytesMut::from(&WRITE[..28]);
        big[24..28].copy_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
        let e = parse_request(&mut big).unwrap_err();
        assert!(e.0.contains("WRITE of 33554433 bytes"), "{e}");
    }

    #[test]
    fn simple_reply_golden_bytes() {
        let mut out = BytesMut::new();
        put_simple_reply(&mut out, 7, Some(Errno::Inval));
        put_simple_reply(&mut out, 8, None);
        assert_eq!(
            &out[..],
            b"\x67\x44\x66\x98\x00\x00\x00\x16\x00\x00\x00\x00\x00\x00\x00\x07\
              \x67\x44\x66\x98\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08"
        );
    }

    #[test]
    fn device_errors_map_to_nbd_errno() {
        assert_eq!(Errno::from(&DeviceError::ReservationConflict) as u32, 1);
        assert_eq!(Errno::from(&DeviceError::Io("x".into())) as u32, 5);
        assert_eq!(Errno::from(&DeviceError::NoSpace) as u32, 28);
        assert_eq!(Errno::from(&DeviceError::Invalid("x".into())) as u32, 22);
        assert_eq!(Errno::from(&DeviceError::Shutdown) as u32, 108);
    }
}
