//! The building blocks of every encoding: a `Reader` that cuts fields off the front of a
//! payload and says what and where when it cannot, and `Codec`, the field-level encode and
//! decode of the scalar types the messages are made of.

use crate::flags::{Flags, Status};
use crate::mode::Mode;
use crate::resource::{Lvb, Queue, LVB_LEN};
use crate::{Error, Result};

/// A cursor over one payload. `ctx` is the path of what is being decoded
/// (`["PeerFrame", "Msg", "Request"]`), so that an error names the message and the field.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    ctx: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            ctx: Vec::new(),
        }
    }

    /// Decode with `what` appended to the context (a type or a variant name).
    pub(super) fn within<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.ctx.push(what);
        let v = f(self)?;
        self.ctx.pop();
        Ok(v)
    }

    /// The next field, of a type the caller's context fixes.
    pub(super) fn get<T: Codec>(&mut self, field: &str) -> Result<T> {
        T::get(self, field)
    }

    /// A decode error: `Type::Variant: <msg>`.
    pub(super) fn error(&self, msg: String) -> Error {
        Error::Protocol(format!("{}: {msg}", self.ctx.join("::")))
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The whole payload must have been used: a longer one is a different message.
    pub(super) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes at offset {}", self.pos))),
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "{field} needs {n} bytes at offset {} but {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    /// A variant tag, with the offset it was at (for "unknown tag" errors).
    pub(super) fn tag(&mut self) -> Result<(u8, usize)> {
        let at = self.pos;
        Ok((u8::get(self, "tag")?, at))
    }

    pub(super) fn unknown_tag(&self, tag: u8, at: usize) -> Error {
        self.error(format!("unknown tag {tag} at offset {at}"))
    }

    /// A `u16`-length byte string of at most `max` bytes.
    fn short_bytes(&mut self, field: &str, max: usize) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = u16::get(self, field)? as usize;
        if len > max {
            return Err(self.error(format!("{field} of {len} bytes at offset {at} (max {max})")));
        }
        self.take(len, field)
    }

    fn utf8(&self, bytes: &'a [u8], field: &str, at: usize) -> Result<String> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.error(format!("{field} at offset {at} is not UTF-8 ({e})"))),
        }
    }

    /// A resource name: any bytes, at most `RESNAME_MAXLEN`.
    pub(super) fn name(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .short_bytes("resource name", crate::RESNAME_MAXLEN)?
            .to_vec())
    }

    /// A lockspace name: UTF-8, at most `LOCKSPACE_LEN` bytes.
    pub(super) fn ls(&mut self) -> Result<String> {
        let at = self.pos;
        let b = self.short_bytes("lockspace name", crate::LOCKSPACE_LEN)?;
        self.utf8(b, "lockspace name", at)
    }

    /// A long text (errno detail, dlm_tool output): `u32` length, at most `MAX_FRAME`.
    pub(super) fn text(&mut self, field: &str) -> Result<String> {
        let at = self.pos;
        let len = u32::get(self, field)? as usize;
        if len > super::MAX_FRAME {
            return Err(self.error(format!(
                "{field} of {len} bytes at offset {at} (max {})",
                super::MAX_FRAME
            )));
        }
        let b = self.take(len, field)?;
        self.utf8(b, field, at)
    }

    /// A vector: `u32` count, then the elements. The count is checked against what is
    /// left (each element takes at least `min_len` bytes) before anything is allocated,
    /// so a forged count costs nothing.
    pub(super) fn vec<T>(
        &mut self,
        field: &str,
        min_len: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let at = self.pos;
        let n = u32::get(self, field)? as usize;
        if n.saturating_mul(min_len) > self.remaining() {
            return Err(self.error(format!(
                "{field}: count {n} at offset {at} but only {} bytes remain",
                self.remaining()
            )));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(elem(self)?);
        }
        Ok(v)
    }
}

/// Writers for the variable-length fields. Lengths are clamped rather than wrapped, so an
/// oversized value still produces a consistent encoding, which the receiver refuses.
fn put_short_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len().min(u16::MAX as usize);
    (len as u16).put(out);
    out.extend_from_slice(&b[..len]);
}

pub(super) fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    put_short_bytes(out, name);
}

pub(super) fn put_ls(out: &mut Vec<u8>, ls: &str) {
    put_short_bytes(out, ls.as_bytes());
}

pub(super) fn put_text(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(u32::MAX as usize);
    (len as u32).put(out);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

pub(super) fn put_vec<T>(out: &mut Vec<u8>, v: &[T], mut elem: impl FnMut(&T, &mut Vec<u8>)) {
    (v.len().min(u32::MAX as usize) as u32).put(out);
    for x in v.iter().take(u32::MAX as usize) {
        elem(x, out);
    }
}

/// Field-level encode/decode; `field` names the field in errors.
pub(super) trait Codec: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self>;
}

macro_rules! codec_int {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
                Ok(<$t>::from_be_bytes(r.array(field)?))
            }
        }
    )*};
}
codec_int!(u8, u16, u32, u64, i32);

/// One byte, 0 or 1: anything else is not something this code wrote.
impl Codec for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        let at = r.pos;
        match u8::get(r, field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(r.error(format!("{field} is {v} at offset {at} (0 or 1)"))),
        }
    }
}

/// A presence byte (0 or 1), then the value.
impl<T: Codec> Codec for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.is_some().put(out);
        if let Some(v) = self {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        Ok(match bool::get(r, field)? {
            true => Some(T::get(r, field)?),
            false => None,
        })
    }
}

impl<A: Codec, B: Codec> Codec for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        Ok((A::get(r, field)?, B::get(r, field)?))
    }
}

/// The value block: its 32 bytes as they are.
impl Codec for Lvb {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        r.array::<LVB_LEN>(field)
    }
}

/// libdlm's mode number (NL = 0 … EX = 5).
impl Codec for Mode {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        let at = r.pos;
        let v = u8::get(r, field)?;
        Mode::from_u8(v)
            .ok_or_else(|| r.error(format!("{field} has mode code {v} at offset {at} (0..=5)")))
    }
}

/// Every `LKF_*` bit libdlm defines (NOQUEUE 0x1 up to TIMEOUT 0x40000, no gaps);
/// whether a combination is allowed is the lock core's question (`Flags::check_lock`),
/// not the wire's.
const FLAGS_KNOWN: u32 = (Flags::TIMEOUT << 1) - 1;

impl Codec for Flags {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        let at = r.pos;
        let v = u32::get(r, field)?;
        match v & !FLAGS_KNOWN {
            0 => Ok(Flags(v)),
            bad => Err(r.error(format!(
                "{field} 0x{v:08x} at offset {at} have unknown bits 0x{bad:08x}"
            ))),
        }
    }
}

/// `sb_status` as libdlm reports it (0, -EAGAIN, -EDEADLK, -DLM_ECANCEL, -DLM_EUNLOCK).
impl Codec for Status {
    fn put(&self, out: &mut Vec<u8>) {
        self.code().put(out);
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        let at = r.pos;
        let v = i32::get(r, field)?;
        Status::from_code(v)
            .ok_or_else(|| r.error(format!("{field} has unknown status {v} at offset {at}")))
    }
}

/// The kernel's `lkb_status` numbers (fs/dlm/dlm_internal.h `DLM_LKSTS_*`).
impl Codec for Queue {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Queue::Wait => 1,
            Queue::Grant => 2,
            Queue::Convert => 3,
        });
    }
    fn get(r: &mut Reader<'_>, field: &str) -> Result<Self> {
        let at = r.pos;
        match u8::get(r, field)? {
            1 => Ok(Queue::Wait),
            2 => Ok(Queue::Grant),
            3 => Ok(Queue::Convert),
            v => Err(r.error(format!("{field} has queue code {v} at offset {at} (1..=3)"))),
        }
    }
}
