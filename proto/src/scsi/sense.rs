//! Sense data (SPC-4 §4.5): fixed format (§4.5.3, 18 bytes) and descriptor format
//! (§4.5.2, with an information descriptor and a sense-key-specific descriptor when
//! there is something to put in them). The target emits either format (the LUN's
//! `sense_format`); the initiator parses both with [`Sense::parse`]. In an iSCSI SCSI
//! Response the sense data follows a 2-byte SenseLength ([`to_segment`],
//! [`from_segment`], RFC 7143 §11.4.7.2).

use crate::{Error, Result};

/// Sense keys (SPC-4 Table 27).
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const COPY_ABORTED: u8 = 0xa;
    pub const ABORTED_COMMAND: u8 = 0xb;
    pub const MISCOMPARE: u8 = 0xe;
}

/// One sense condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
    /// INFORMATION field (e.g. the offset of a miscompare), if valid.
    pub info: Option<u64>,
    /// Sense-key-specific field pointer (SPC-4 §4.5.2.4.2): byte (and bit) of the CDB
    /// (`cd = true`) or parameter list at fault.
    pub field: Option<FieldPointer>,
}

/// Points at the invalid byte (and optionally bit) of a CDB or parameter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    pub cd: bool,
    pub byte: u16,
    pub bit: Option<u8>,
}

impl Sense {
    /// A sense condition without INFORMATION or a field pointer.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense {
            key,
            asc,
            ascq,
            info: None,
            field: None,
        }
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20/00).
    pub fn illegal_request_invalid_opcode() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x20, 0x00)
    }
    /// ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00), without a pointer.
    pub fn invalid_field_in_cdb() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x24, 0x00)
    }
    /// INVALID FIELD IN CDB pointing at `byte` (and `bit`).
    pub fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            field: Some(FieldPointer {
                cd: true,
                byte,
                bit,
            }),
            ..Sense::invalid_field_in_cdb()
        }
    }
    /// INVALID FIELD IN PARAMETER LIST (26/00) pointing at `byte`.
    pub fn invalid_param_field(byte: u16) -> Sense {
        Sense {
            field: Some(FieldPointer {
                cd: false,
                byte,
                bit: None,
            }),
            ..Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x00)
        }
    }
    /// PARAMETER LIST LENGTH ERROR (1A/00).
    pub fn parameter_list_length() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x1a, 0x00)
    }
    /// LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00).
    pub fn lba_out_of_range() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x21, 0x00)
    }
    /// LOGICAL UNIT NOT SUPPORTED (25/00).
    pub fn lun_not_supported() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x25, 0x00)
    }
    /// SAVING PARAMETERS NOT SUPPORTED (39/00).
    pub fn saving_not_supported() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x39, 0x00)
    }
    /// DATA PROTECT, WRITE PROTECTED (27/00).
    pub fn write_protected() -> Sense {
        Sense::new(key::DATA_PROTECT, 0x27, 0x00)
    }
    /// MISCOMPARE DURING VERIFY OPERATION (1D/00) at byte `offset`.
    pub fn miscompare(offset: u64) -> Sense {
        Sense {
            info: Some(offset),
            ..Sense::new(key::MISCOMPARE, 0x1d, 0x00)
        }
    }
    /// MEDIUM ERROR, UNRECOVERED READ ERROR (11/00).
    pub fn read_error() -> Sense {
        Sense::new(key::MEDIUM_ERROR, 0x11, 0x00)
    }
    /// MEDIUM ERROR, WRITE ERROR (0C/00).
    pub fn write_error() -> Sense {
        Sense::new(key::MEDIUM_ERROR, 0x0c, 0x00)
    }
    /// NOT READY, LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED (04/03).
    pub fn not_ready_offline() -> Sense {
        Sense::new(key::NOT_READY, 0x04, 0x03)
    }
    /// NOT READY, LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED (04/02): the unit
    /// was stopped with START STOP UNIT.
    pub fn not_ready_stopped() -> Sense {
        Sense::new(key::NOT_READY, 0x04, 0x02)
    }
    /// NOT READY with the given additional sense (e.g. 04/0B, LOGICAL UNIT NOT
    /// ACCESSIBLE, TARGET PORT IN STANDBY STATE).
    pub fn not_ready(asc: u8, ascq: u8) -> Sense {
        Sense::new(key::NOT_READY, asc, ascq)
    }
    /// ILLEGAL REQUEST, INSUFFICIENT REGISTRATION RESOURCES (55/04, SPC-4 §5.13.7): a
    /// registration could not be added or made persistent.
    pub fn insufficient_registration_resources() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x55, 0x04)
    }
    /// ILLEGAL REQUEST, INVALID RELEASE OF PERSISTENT RESERVATION (26/04).
    pub fn invalid_release_of_reservation() -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x04)
    }
    /// A unit attention condition.
    pub fn unit_attention(asc: u8, ascq: u8) -> Sense {
        Sense::new(key::UNIT_ATTENTION, asc, ascq)
    }

    fn sks(&self) -> Option<[u8; 3]> {
        self.field.map(|f| {
            let mut b = [0u8; 3];
            b[0] = 0x80 | if f.cd { 0x40 } else { 0 };
            if let Some(bit) = f.bit {
                b[0] |= 0x08 | (bit & 7);
            }
            b[1..3].copy_from_slice(&f.byte.to_be_bytes());
            b
        })
    }

    /// Fixed format sense data, 18 bytes (SPC-4 §4.5.3).
    pub fn fixed(&self) -> Vec<u8> {
        let mut b = vec![0u8; 18];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        if let Some(info) = self.info {
            b[0] |= 0x80; // VALID
            b[3..7].copy_from_slice(&(info.min(u32::MAX as u64) as u32).to_be_bytes());
        }
        b[7] = 10; // additional sense length
        b[12] = self.asc;
        b[13] = self.ascq;
        if let Some(s) = self.sks() {
            b[15..18].copy_from_slice(&s);
        }
        b
    }

    /// Parse fixed (§4.5.3) or descriptor (§4.5.2) format sense data. Deferred errors
    /// (response codes 71h/73h) read like current ones. The INFORMATION field is taken
    /// when VALID is set (fixed) or from an information descriptor; the field pointer
    /// only from an ILLEGAL REQUEST's sense-key-specific bytes (§4.5.2.4.2: for other
    /// keys those bytes mean other things). Unknown descriptors are skipped.
    pub fn parse(b: &[u8]) -> Result<Sense> {
        const WHAT: &str = "sense data";
        let code = b.first().map(|c| c & 0x7f);
        let (key, asc, ascq, mut info, mut sks) = match code {
            Some(0x70 | 0x71) => {
                if b.len() < 14 {
                    return Err(Error::truncated(WHAT, 14, b.len()));
                }
                let info =
                    (b[0] & 0x80 != 0).then(|| u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as u64);
                let sks = b.get(15..18).map(|s| [s[0], s[1], s[2]]);
                (b[2] & 0x0f, b[12], b[13], info, sks)
            }
            Some(0x72 | 0x73) => {
                if b.len() < 4 {
                    return Err(Error::truncated(WHAT, 4, b.len()));
                }
                (b[1] & 0x0f, b[2], b[3], None, None)
            }
            Some(c) => {
                return Err(Error::malformed(WHAT, format!("response code 0x{c:02x}")));
            }
            None => return Err(Error::truncated(WHAT, 1, 0)),
        };
        if matches!(code, Some(0x72 | 0x73)) && b.len() >= 8 {
            let end = (8 + b[7] as usize).min(b.len());
            let mut at = 8;
            while at + 2 <= end {
                let (kind, len) = (b[at], b[at + 1] as usize);
                let Some(d) = b.get(at + 2..at + 2 + len).filter(|_| at + 2 + len <= end) else {
                    break;
                };
                match kind {
                    0x00 if len >= 10 && d[0] & 0x80 != 0 => {
                        let mut v = [0u8; 8];
                        v.copy_from_slice(&d[2..10]);
                        info = Some(u64::from_be_bytes(v));
                    }
                    0x02 if len >= 4 => sks = Some([d[1], d[2], d[3]]),
                    _ => {}
                }
                at += 2 + len;
            }
        }
        let field = sks
            .filter(|s| key == key::ILLEGAL_REQUEST && s[0] & 0x80 != 0)
            .map(|s| FieldPointer {
                cd: s[0] & 0x40 != 0,
                byte: u16::from_be_bytes([s[1], s[2]]),
                bit: (s[0] & 0x08 != 0).then_some(s[0] & 0x07),
            });
        Ok(Sense {
            key,
            asc,
            ascq,
            info,
            field,
        })
    }

    /// Descriptor format sense data (SPC-4 §4.5.2).
    pub fn descriptor(&self) -> Vec<u8> {
        let mut b = vec![0x72, self.key & 0x0f, self.asc, self.ascq, 0, 0, 0, 0];
        if let Some(info) = self.info {
            // Information descriptor (§4.5.2.2).
            b.extend_from_slice(&[0x00, 0x0a, 0x80, 0x00]);
            b.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(s) = self.sks() {
            // Sense key specific descriptor (§4.5.2.4).
            b.extend_from_slice(&[0x02, 0x06, 0x00]);
            b.extend_from_slice(&s);
            b.extend_from_slice(&[0, 0]);
        }
        b[7] = (b.len() - 8) as u8;
        b
    }
}

/// The data segment of a SCSI Response carrying `sense` (RFC 7143 §11.4.7.2):
/// SenseLength, then the sense data. No sense, no segment.
pub fn to_segment(sense: &[u8]) -> Vec<u8> {
    if sense.is_empty() {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(2 + sense.len());
    v.extend_from_slice(&(sense.len() as u16).to_be_bytes());
    v.extend_from_slice(sense);
    v
}

/// The sense data in a SCSI Response's data segment (RFC 7143 §11.4.7.2); what the
/// SenseLength claims beyond the segment is not there, so the rest is returned.
pub fn from_segment(data: &[u8]) -> &[u8] {
    match data {
        [hi, lo, rest @ ..] => {
            let n = (*hi as usize) << 8 | *lo as usize;
            &rest[..n.min(rest.len())]
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sense() -> impl Strategy<Value = Sense> {
        (
            0u8..16,
            any::<u8>(),
            any::<u8>(),
            proptest::option::of(any::<u32>()),
            any::<Option<(bool, u16, Option<u8>)>>(),
        )
            .prop_map(|(key, asc, ascq, info, f)| Sense {
                key,
                asc,
                ascq,
                info: info.map(u64::from),
                // A field pointer belongs to ILLEGAL REQUEST only.
                field: f
                    .filter(|_| key == key::ILLEGAL_REQUEST)
                    .map(|(cd, byte, bit)| FieldPointer {
                        cd,
                        byte,
                        bit: bit.map(|b| b & 7),
                    }),
            })
    }

    proptest! {
        #[test]
        fn both_formats_round_trip(s in sense()) {
            prop_assert_eq!(Sense::parse(&s.fixed()), Ok(s.clone()));
            prop_assert_eq!(Sense::parse(&s.descriptor()), Ok(s));
        }

        #[test]
        fn descriptor_keeps_64_bit_information(s in sense(), info: u64) {
            let s = Sense { info: Some(info), ..s };
            prop_assert_eq!(Sense::parse(&s.descriptor()), Ok(s));
        }

        #[test]
        fn segment_round_trip(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let seg = to_segment(&b);
            prop_assert_eq!(from_segment(&seg), &b[..]);
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Sense::parse(&b);
            let _ = from_segment(&b);
        }
    }

    #[test]
    fn parse_what_targets_send() {
        // Linux-style short fixed sense (14 bytes) and a 4-byte descriptor header.
        let s = Sense::parse(&[0x70, 0, 6, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0x29, 0]).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (key::UNIT_ATTENTION, 0x29, 0));
        let s = Sense::parse(&[0x72, 0x0e, 0x1d, 0]).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (key::MISCOMPARE, 0x1d, 0));
        assert!(Sense::parse(&[0x70, 0, 6]).is_err());
        assert!(Sense::parse(&[0x7f; 20]).is_err());
        assert!(Sense::parse(&[]).is_err());
        assert_eq!(from_segment(&[0, 9, 1, 2]), &[1, 2]);
        assert_eq!(to_segment(&[]), Vec::<u8>::new());
    }

    #[test]
    fn fixed_golden() {
        let s = Sense::invalid_cdb_field(2, Some(1));
        assert_eq!(
            s.fixed(),
            vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xc9, 0, 2]
        );
        let m = Sense::miscompare(513).fixed();
        assert_eq!(&m[..8], &[0xf0, 0, 0x0e, 0, 0, 2, 1, 10]);
        assert_eq!((m[12], m[13]), (0x1d, 0));
    }

    #[test]
    fn descriptor_golden() {
        assert_eq!(
            Sense::unit_attention(0x29, 0).descriptor(),
            vec![0x72, 6, 0x29, 0, 0, 0, 0, 0]
        );
        let d = Sense::miscompare(7).descriptor();
        assert_eq!(
            d,
            vec![0x72, 0x0e, 0x1d, 0, 0, 0, 0, 12, 0, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        let d = Sense::invalid_param_field(4).descriptor();
        assert_eq!(&d[8..], &[2, 6, 0, 0x80, 0, 4, 0, 0]);
    }
}
