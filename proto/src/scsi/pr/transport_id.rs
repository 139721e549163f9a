//! The iSCSI TransportID (SPC-4 §7.6.4.6): how SPEC_I_PT, REGISTER AND MOVE and READ
//! FULL STATUS name an initiator port. Format 00b carries the iSCSI name alone (every
//! ISID of that name); format 01b carries `name,i,0x<ISID in 12 hex digits>` (one
//! initiator port). The text is NUL-terminated and padded to a multiple of 4 bytes.

use super::ParamError;

/// PROTOCOL IDENTIFIER of iSCSI (SPC-4 §7.6.1, Table 444).
pub const PROTOCOL_ISCSI: u8 = 0x5;

/// iSCSI names are at most 223 bytes (RFC 7143 §4.2.7.1).
pub const MAX_NAME_LEN: usize = 223;

const SEPARATOR: &str = ",i,0x";

/// An iSCSI initiator port as a TransportID names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransportId {
    /// The iSCSI name, as sent (names compare case-insensitively, RFC 3722: callers
    /// that match names fold the case).
    pub name: String,
    /// The ISID (format 01b), or None for every ISID of the name (format 00b).
    pub isid: Option<[u8; 6]>,
}

impl TransportId {
    /// Parse the TransportID at the start of `b`; `at` is its offset in the enclosing
    /// parameter list, so that errors point at the right byte. Returns it and its length.
    pub fn parse(b: &[u8], at: usize) -> Result<(TransportId, usize), ParamError> {
        let bad = ParamError::Field(at as u16);
        if b.len() < 4 {
            return Err(ParamError::Length);
        }
        if b[0] & 0x0f != PROTOCOL_ISCSI {
            return Err(bad);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len < 4 || !len.is_multiple_of(4) || 4 + len > b.len() {
            return Err(ParamError::Field(at as u16 + 2));
        }
        let text = &b[4..4 + len];
        let text = &text[..text.iter().position(|&c| c == 0).ok_or(bad)?];
        let text = std::str::from_utf8(text).map_err(|_| bad)?;
        let (name, isid) = match b[0] >> 6 {
            0 => (text, None),
            1 => {
                let (name, isid) = text.rsplit_once(SEPARATOR).ok_or(bad)?;
                if isid.len() != 12 || !isid.is_ascii() {
                    return Err(bad);
                }
                let mut v = [0u8; 6];
                for (i, b) in v.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&isid[2 * i..2 * i + 2], 16).map_err(|_| bad)?;
                }
                (name, Some(v))
            }
            _ => return Err(bad),
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(bad);
        }
        Ok((
            TransportId {
                name: name.to_string(),
                isid,
            },
            4 + len,
        ))
    }

    fn text(&self) -> String {
        let mut text = self.name.clone();
        if let Some(isid) = self.isid {
            text.push_str(SEPARATOR);
            for b in isid {
                text.push_str(&format!("{b:02x}"));
            }
        }
        text
    }

    /// Bytes `emit` writes: header, text, NUL, padding to 4.
    pub fn buffer_len(&self) -> usize {
        4 + (self.text().len() + 1).div_ceil(4) * 4
    }

    /// Append the TransportID (format 01b when the ISID is known, else 00b).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut body = self.text().into_bytes();
        body.push(0);
        body.resize(body.len().div_ceil(4) * 4, 0);
        let format = if self.isid.is_some() { 0x40 } else { 0x00 };
        out.extend_from_slice(&[format | PROTOCOL_ISCSI, 0]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend(body);
    }

    /// The TransportID as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        self.emit(&mut v);
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Names as initiators send them: no NUL, 1 to 223 bytes.
    pub fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9.:,_-]{1,100}"
    }

    pub fn transport_id() -> impl Strategy<Value = TransportId> {
        (name(), proptest::option::of(any::<[u8; 6]>()))
            .prop_map(|(name, isid)| TransportId { name, isid })
    }

    proptest! {
        #[test]
        fn round_trip(t in transport_id()) {
            let b = t.to_bytes();
            prop_assert_eq!(b.len(), t.buffer_len());
            prop_assert_eq!(b.len() % 4, 0);
            prop_assert_eq!(TransportId::parse(&b, 0), Ok((t, b.len())));
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = TransportId::parse(&b, 0);
        }
    }

    #[test]
    fn golden() {
        let t = TransportId {
            name: "iqn.a:b".into(),
            isid: Some([0x40, 0, 0x01, 0x37, 0, 0x01]),
        };
        let mut want = vec![0x45, 0, 0, 28];
        want.extend_from_slice(b"iqn.a:b,i,0x400001370001\0\0\0\0");
        assert_eq!(t.to_bytes(), want);
        let t = TransportId {
            name: "iqn.a:bc".into(),
            isid: None,
        };
        assert_eq!(t.to_bytes(), b"\x05\x00\x00\x0ciqn.a:bc\0\0\0\0".to_vec());
    }

    #[test]
    fn malformed_are_refused_with_the_byte() {
        // Another protocol (Fibre Channel).
        assert_eq!(
            TransportId::parse(&[0x00, 0, 0, 4, b'a', 0, 0, 0], 28),
            Err(ParamError::Field(28))
        );
        // Unterminated name.
        assert_eq!(
            TransportId::parse(&[0x05, 0, 0, 4, b'a', b'b', b'c', b'd'], 0),
            Err(ParamError::Field(0))
        );
        // Length beyond the buffer, or not a multiple of 4.
        assert_eq!(
            TransportId::parse(&[0x05, 0, 0, 8, b'a', 0, 0, 0], 4),
            Err(ParamError::Field(6))
        );
        assert_eq!(
            TransportId::parse(&[0x05, 0, 0, 3, b'a', 0, 0], 0),
            Err(ParamError::Field(2))
        );
        // Format 01b without ",i,0x" or with a short ISID.
        assert!(TransportId::parse(b"\x45\x00\x00\x04abc\0", 0).is_err());
        assert!(TransportId::parse(b"\x45\x00\x00\x0ca,i,0x1234\0\0", 0).is_err());
        assert_eq!(TransportId::parse(&[5, 0, 0], 0), Err(ParamError::Length));
        // A 12-byte ISID of multi-byte characters (slicing it by bytes would panic).
        let mut b = vec![0x45, 0, 0, 20];
        b.extend_from_slice("a,i,0x€€€€".as_bytes());
        b.resize(24, 0);
        assert_eq!(TransportId::parse(&b, 0), Err(ParamError::Field(0)));
    }
}
