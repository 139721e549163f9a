//! REPORT LUNS parameter data (SPC-4 §6.33.2): the LUN list, each LUN as an 8-byte
//! field in peripheral (below 256) or flat space addressing (SAM-5 §4.7).

use super::{decode_lun, encode_lun};
use crate::{Error, Result};

/// The LUNs of a REPORT LUNS answer, as numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportLuns {
    pub luns: Vec<u64>,
}

impl ReportLuns {
    /// Parse the answer; a list longer than what arrived is truncated (ask again with
    /// a larger allocation length), a LUN in another addressing method is refused.
    pub fn parse(d: &[u8]) -> Result<ReportLuns> {
        const WHAT: &str = "REPORT LUNS data";
        if d.len() < 8 {
            return Err(Error::truncated(WHAT, 8, d.len()));
        }
        let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
        if !n.is_multiple_of(8) {
            return Err(Error::malformed(WHAT, format!("LUN list length {n}")));
        }
        let list = d
            .get(8..8 + n)
            .ok_or_else(|| Error::truncated(WHAT, 8 + n, d.len()))?;
        let luns = list
            .chunks_exact(8)
            .map(|e| {
                let mut f = [0u8; 8];
                f.copy_from_slice(e);
                decode_lun(u64::from_be_bytes(f)).ok_or_else(|| Error::Unsupported {
                    what: "LUN addressing method",
                    detail: format!("LUN field {e:02x?}"),
                })
            })
            .collect::<Result<_>>()?;
        Ok(ReportLuns { luns })
    }

    pub fn buffer_len(&self) -> usize {
        8 + 8 * self.luns.len()
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        v.extend_from_slice(&((self.luns.len() * 8) as u32).to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        for l in &self.luns {
            v.extend_from_slice(&encode_lun(*l).to_be_bytes());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(luns in proptest::collection::vec(0u64..0x4000, 0..20)) {
            let r = ReportLuns { luns };
            let b = r.emit();
            prop_assert_eq!(b.len(), r.buffer_len());
            prop_assert_eq!(ReportLuns::parse(&b), Ok(r));
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ReportLuns::parse(&b);
        }
    }

    #[test]
    fn golden() {
        let b = ReportLuns {
            luns: vec![0, 1, 300],
        }
        .emit();
        assert_eq!(&b[..8], &[0, 0, 0, 24, 0, 0, 0, 0]);
        assert_eq!(&b[8..10], &[0, 0]);
        assert_eq!(&b[16..18], &[0, 1]);
        assert_eq!(&b[24..26], &[0x41, 0x2c]);
        assert!(ReportLuns::parse(&b[..20]).is_err());
    }
}
