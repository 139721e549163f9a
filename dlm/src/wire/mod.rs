//! The bytes of everything the DLM sends: lock traffic between daemons (`PeerFrame`
//! over TCP, port 21064), recovery and fencing through CPG (`LsCpg`, `DaemonCpg`, one
//! bare payload per CPG message) and the client protocol on the unix socket
//! (`ClientFrame`, `DaemonFrame`). TCP and the socket carry frames: a `u32` big-endian
//! payload length, then the payload (`put_frame`, `take_frame`).
//!
//! The encoding, the same everywhere:
//! - an enum is a one-byte tag (1, 2, … in declaration order) and then its fields in
//!   declaration order; a struct is its fields;
//! - integers are big-endian, fixed width (`NodeId`, `lkid`, `gen` u32; ids and `req`
//!   u64; errno codes and statuses i32); a bool is one byte, 0 or 1;
//! - `Option<T>` is a presence byte (0 or 1) then `T`; `Result<T, Errno>` is 0 then `T`
//!   or 1 then the `Errno`;
//! - resource names (≤ 64 bytes, any bytes) and lockspace names (≤ 64 bytes, UTF-8) are
//!   a `u16` length and the bytes; long texts (errno detail, query output) a `u32` length
//!   (≤ `MAX_FRAME`) and UTF-8;
//! - vectors are a `u32` count then the elements;
//! - modes are libdlm's numbers (NL 0 … EX 5), statuses libdlm's `sb_status` (i32),
//!   queues the kernel's `DLM_LKSTS_*` (wait 1, grant 2, convert 3), flags the `LKF_*`
//!   bits as u32; the value block is its 32 bytes.
//!
//! Decoding checks every length and code and refuses what this code would not have
//! written, with an error naming the message, the field and the offset; it never panics
//! and allocates no more than the input's length justifies.

mod client;
mod codec;
mod cpg;
mod peer;
#[cfg(test)]
mod tests;

use crate::api::{Callback, ClientFrame, DaemonFrame, Errno, Query, Request};
use crate::membership::NodeId;
use crate::message::{DaemonCpg, LsCpg, Msg, RecoverLock};
use crate::{Error, Result};
use codec::{Codec, Reader};

pub trait Wire: Sized {
    /// Append this value's encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decode exactly one value from the whole of `bytes` (trailing bytes are an error).
    fn decode(bytes: &[u8]) -> Result<Self>;
}

/// Largest frame payload accepted (a frame announcing more is refused, not allocated).
pub const MAX_FRAME: usize = 1 << 20;

/// The frame's length prefix.
const LEN_PREFIX: usize = 4;

/// Append `[u32 big-endian payload length][payload]`.
pub fn put_frame<T: Wire>(x: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    x.encode(out);
    // Clamped, not wrapped: a payload past 4 GiB is announced as more than MAX_FRAME,
    // which the receiver refuses, instead of as a wrong small length.
    let len = u32::try_from(out.len() - start - LEN_PREFIX).unwrap_or(u32::MAX);
    out[start..start + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
}

/// If `buf` starts with a whole frame, decode it and return it with the number of bytes
/// it took (length prefix included); Ok(None) if more bytes are needed; Err if the length
/// exceeds MAX_FRAME or the payload does not decode.
pub fn take_frame<T: Wire>(buf: &[u8]) -> Result<Option<(T, usize)>> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    // Refused as soon as the prefix is in, so a reader never buffers toward it.
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "frame announces {len} bytes of payload (max {MAX_FRAME})"
        )));
    }
    match buf.get(LEN_PREFIX..LEN_PREFIX + len) {
        None => Ok(None),
        Some(payload) => Ok(Some((T::decode(payload)?, LEN_PREFIX + len))),
    }
}

/// The version of the messages between daemons. A peer speaking another version is
/// refused at its Hello (with a log line), so daemons of different hydra versions never
/// misread each other's lock traffic.
pub const PROTOCOL: u16 = 2;

/// The version of the client protocol on the daemon's unix socket (`ClientFrame`,
/// `DaemonFrame`). Each side says it first ([`ClientFrame::Hello`],
/// [`DaemonFrame::Hello`]); a client library or `dlm_tool` of another hydra version
/// than the running dlm_controld (an upgrade installed, the daemon not restarted) is
/// refused by name on both sides instead of misreading frames, as the kernel refuses a
/// libdlm whose `DLM_DEVICE_VERSION` major differs.
pub const CLIENT_PROTOCOL: u16 = 1;

/// A bit of a client call's `req` (the client numbers its calls from 1 and never comes
/// near it): "answer this Lock or Unlock together with the lock's next completion". A
/// caller that waits for the completion anyway (`lock_wait`, `unlock_wait`) then wakes
/// once per call instead of twice when the completion comes later than the acceptance
/// (a remote master: the acceptance at once, the grant a round trip later). The daemon
/// echoes `req` as it came; a refused call is answered at once as always.
pub const REPLY_WITH_COMPLETION: u64 = 1 << 63;

/// What one daemon sends another over their TCP link (port 21064): first a Hello naming
/// the sender's corosync node id and its [`PROTOCOL`], then lock traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerFrame {
    Hello { node: NodeId, protocol: u16 },
    Msg(Msg),
}

/// `Wire` for a type with a `Codec`: decoding starts the error context with the type's
/// name and insists on using the whole payload.
macro_rules! wire_via_codec {
    ($($t:ident),* $(,)?) => {$(
        impl Wire for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                Codec::put(self, out)
            }

            fn decode(bytes: &[u8]) -> Result<Self> {
                let mut r = Reader::new(bytes);
                r.within(stringify!($t), |r| {
                    let v = <$t as Codec>::get(r, stringify!($t))?;
                    r.finish()?;
                    Ok(v)
                })
            }
        }
    )*};
}

wire_via_codec!(
    PeerFrame,
    Msg,
    LsCpg,
    RecoverLock,
    DaemonCpg,
    ClientFrame,
    DaemonFrame,
    Request,
    Query,
    Callback,
    Errno,
);
