//! The Basic Header Segment (RFC 7143 §11.2.1): the fixed 48 bytes every iSCSI PDU
//! starts with, as a zero-copy view (smoltcp's `Packet<T>` shape). [`Bhs::new_checked`]
//! validates the length once so that no accessor can panic afterwards; opcode-specific
//! fields are read by the `Repr`s in [`crate::pdu`].
//!
//! Framing helpers live here too: a PDU is BHS + AHS + optional header digest + data
//! segment padded to 4 bytes + optional data digest (RFC 7143 §11.1).

use crate::{Error, Result};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;

/// Largest data segment hydra will ever accept in one PDU, whatever was negotiated:
/// RFC 7143 §13.12 caps MaxRecvDataSegmentLength at 2^24-1.
pub const MAX_DATA_SEGMENT: usize = (1 << 24) - 1;

/// Byte ranges of the fields common to every opcode.
mod field {
    pub const OPCODE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const TOTAL_AHS_LEN: usize = 4;
    pub const DATA_SEG_LEN: core::ops::Range<usize> = 5..8;
    pub const LUN: core::ops::Range<usize> = 8..16;
    pub const ITT: core::ops::Range<usize> = 16..20;
}

macro_rules! opcodes {
    ($( $(#[$m:meta])* $name:ident = $val:expr ),* $(,)?) => {
        /// PDU opcodes (RFC 7143 §11.2.1.2). Unknown values are kept, not refused here:
        /// the session decides whether to send a Reject.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $( $(#[$m])* $name, )*
            /// Any value the RFC does not define.
            Unknown(u8),
        }
        impl From<u8> for Opcode {
            fn from(v: u8) -> Opcode {
                match v & 0x3f {
                    $( $val => Opcode::$name, )*
                    other => Opcode::Unknown(other),
                }
            }
        }
        impl From<Opcode> for u8 {
            fn from(o: Opcode) -> u8 {
                match o {
                    $( Opcode::$name => $val, )*
                    Opcode::Unknown(v) => v,
                }
            }
        }
    };
}

opcodes! {
    NopOut = 0x00,
    ScsiCommand = 0x01,
    TaskMgmtRequest = 0x02,
    LoginRequest = 0x03,
    TextRequest = 0x04,
    DataOut = 0x05,
    LogoutRequest = 0x06,
    Snack = 0x10,
    NopIn = 0x20,
    ScsiResponse = 0x21,
    TaskMgmtResponse = 0x22,
    LoginResponse = 0x23,
    TextResponse = 0x24,
    DataIn = 0x25,
    LogoutResponse = 0x26,
    R2t = 0x31,
    AsyncMessage = 0x32,
    Reject = 0x3f,
}

impl Opcode {
    /// True for opcodes an initiator sends (RFC 7143 §11.2.1.2: 0x00-0x1f).
    pub fn is_initiator(self) -> bool {
        u8::from(self) < 0x20
    }
}

/// Padding needed to bring `len` to a multiple of 4.
pub const fn pad_len(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// A read-only or mutable view over a 48-byte BHS.
#[derive(Debug, Clone, Copy)]
pub struct Bhs<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Bhs<T> {
    /// Wrap without checking (for buffers known to be 48 bytes, e.g. `[u8; 48]`).
    pub fn new_unchecked(buf: T) -> Self {
        Bhs { buf }
    }

    /// Wrap, refusing buffers shorter than 48 bytes.
    pub fn new_checked(buf: T) -> Result<Self> {
        let len = buf.as_ref().len();
        if len < BHS_LEN {
            return Err(Error::truncated("basic header segment", BHS_LEN, len));
        }
        Ok(Bhs { buf })
    }

    /// The underlying bytes.
    pub fn into_inner(self) -> T {
        self.buf
    }

    fn b(&self) -> &[u8] {
        &self.buf.as_ref()[..BHS_LEN]
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode::from(self.b()[field::OPCODE])
    }
    /// The I (immediate delivery) bit, meaningful on initiator PDUs.
    pub fn immediate(&self) -> bool {
        self.b()[field::OPCODE] & 0x40 != 0
    }
    /// The byte after the opcode (F bit and opcode-specific flags).
    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }
    /// The F (final) bit.
    pub fn final_bit(&self) -> bool {
        self.flags() & 0x80 != 0
    }
    /// TotalAHSLength in bytes (the field counts 4-byte words).
    pub fn ahs_len(&self) -> usize {
        self.b()[field::TOTAL_AHS_LEN] as usize * 4
    }
    /// DataSegmentLength in bytes, without padding.
    pub fn data_len(&self) -> usize {
        let d = &self.b()[field::DATA_SEG_LEN];
        (d[0] as usize) << 16 | (d[1] as usize) << 8 | d[2] as usize
    }
    /// Bytes 8..16 as the LUN field (opcode-specific on some PDUs).
    pub fn lun(&self) -> u64 {
        get_u64(self.b(), field::LUN.start)
    }
    /// Initiator Task Tag.
    pub fn itt(&self) -> u32 {
        get_u32(self.b(), field::ITT.start)
    }
    /// A big-endian u32 at an opcode-specific offset (caller passes offsets < 45).
    pub fn u32_at(&self, off: usize) -> u32 {
        get_u32(self.b(), off)
    }

    /// Bytes that follow the BHS before the data segment: AHS plus header digest.
    pub fn header_extra(&self, header_digest: bool) -> usize {
        self.ahs_len() + if header_digest { 4 } else { 0 }
    }

    /// The whole PDU length on the wire, given the negotiated digests.
    pub fn total_len(&self, header_digest: bool, data_digest: bool) -> usize {
        let dlen = self.data_len();
        BHS_LEN
            + self.header_extra(header_digest)
            + dlen
            + pad_len(dlen)
            + if data_digest && dlen > 0 { 4 } else { 0 }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Bhs<T> {
    fn bm(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[..BHS_LEN]
    }
    /// Set DataSegmentLength (must be < 2^24).
    pub fn set_data_len(&mut self, len: usize) {
        debug_assert!(len <= MAX_DATA_SEGMENT);
        let b = self.bm();
        b[5] = (len >> 16) as u8;
        b[6] = (len >> 8) as u8;
        b[7] = len as u8;
    }
}

pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}
pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_fields() {
        let mut b = [0u8; 48];
        b[0] = 0x41; // immediate SCSI Command
        b[1] = 0x80;
        b[4] = 2;
        b[5..8].copy_from_slice(&[0x01, 0x00, 0x03]);
        b[16..20].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let v = Bhs::new_checked(&b[..]).unwrap();
        assert_eq!(v.opcode(), Opcode::ScsiCommand);
        assert!(v.immediate() && v.final_bit());
        assert_eq!(v.ahs_len(), 8);
        assert_eq!(v.data_len(), 0x10003);
        assert_eq!(v.itt(), 0xdead_beef);
        // 48 + 8 AHS + 4 hdigest + 65539 data + 1 pad + 4 ddigest
        assert_eq!(v.total_len(true, true), 48 + 8 + 4 + 0x10003 + 1 + 4);
        assert_eq!(v.total_len(false, false), 48 + 8 + 0x10003 + 1);
    }

    #[test]
    fn short_buffer_refused_and_unknown_opcode_kept() {
        assert!(matches!(
            Bhs::new_checked(&[0u8; 47][..]),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(Opcode::from(0x1e), Opcode::Unknown(0x1e));
        assert_eq!(u8::from(Opcode::from(0x3f)), 0x3f);
        assert!(Opcode::Snack.is_initiator() && !Opcode::R2t.is_initiator());
    }

    #[test]
    fn padding() {
        assert_eq!([0, 1, 2, 3, 4, 5].map(pad_len), [0, 3, 2, 1, 0, 3]);
    }
}
