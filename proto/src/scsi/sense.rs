//! Sense data (SPC-4 §4.5): fixed format (§4.5.3, 18 bytes) and descriptor format
//! (§4.5.2, with an information descriptor and a sense-key-specific descriptor when
//! there is something to put in them).

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

#[cfg(test)]
mod tests {
    use super::*;

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
