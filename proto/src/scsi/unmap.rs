//! The UNMAP parameter list (SBC-3 §5.28.2): an 8-byte header, then one 16-byte block
//! descriptor (LBA, block count, reserved) per range.

use crate::{Error, Result};

/// The ranges of an UNMAP parameter list, `(lba, blocks)` each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnmapList {
    pub ranges: Vec<(u64, u32)>,
}

impl UnmapList {
    /// Parse a parameter list of the PARAMETER LIST LENGTH bytes. A partial trailing
    /// descriptor is ignored, and so are descriptors beyond the list, as §5.28.2 allows.
    pub fn parse(p: &[u8]) -> Result<UnmapList> {
        if p.len() < 8 {
            return Err(Error::truncated("UNMAP parameter list", 8, p.len()));
        }
        let desc_len = (u16::from_be_bytes([p[2], p[3]]) as usize).min(p.len() - 8);
        let ranges = p[8..8 + desc_len / 16 * 16]
            .chunks_exact(16)
            .map(|b| {
                let mut lba = [0u8; 8];
                lba.copy_from_slice(&b[0..8]);
                (
                    u64::from_be_bytes(lba),
                    u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                )
            })
            .collect();
        Ok(UnmapList { ranges })
    }

    pub fn buffer_len(&self) -> usize {
        8 + 16 * self.ranges.len()
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut p = vec![0u8; 8];
        p[0..2].copy_from_slice(&((6 + 16 * self.ranges.len()) as u16).to_be_bytes());
        p[2..4].copy_from_slice(&((16 * self.ranges.len()) as u16).to_be_bytes());
        for (lba, n) in &self.ranges {
            p.extend_from_slice(&lba.to_be_bytes());
            p.extend_from_slice(&n.to_be_bytes());
            p.extend_from_slice(&[0; 4]);
        }
        p
    }
}

/// The parameter list for `ranges` (see [`UnmapList::emit`]).
pub fn parameter_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    UnmapList {
        ranges: ranges.to_vec(),
    }
    .emit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(ranges in proptest::collection::vec(any::<(u64, u32)>(), 0..20)) {
            let l = UnmapList { ranges };
            let b = l.emit();
            prop_assert_eq!(b.len(), l.buffer_len());
            prop_assert_eq!(UnmapList::parse(&b), Ok(l));
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = UnmapList::parse(&b);
        }
    }

    #[test]
    fn golden() {
        let b = parameter_list(&[(8, 16)]);
        let mut want = vec![0, 22, 0, 16, 0, 0, 0, 0];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(b, want);
        // A partial trailing descriptor is ignored.
        assert_eq!(UnmapList::parse(&b[..20]).unwrap().ranges, vec![]);
    }
}
