//! READ CAPACITY(16) parameter data (SBC-3 §5.16.2): the last LBA, the block size and
//! the thin-provisioning bits.

use crate::{Error, Result};

/// What READ CAPACITY(16) returns (the fields hydra uses; the rest are zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity16 {
    /// RETURNED LOGICAL BLOCK ADDRESS: the last block (blocks - 1).
    pub last_lba: u64,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_size: u32,
    /// LBPME: logical block provisioning management (UNMAP) is enabled.
    pub lbpme: bool,
    /// LBPRZ: unmapped blocks read back as zeros.
    pub lbprz: bool,
}

impl Capacity16 {
    /// The data is 32 bytes.
    pub const LEN: usize = 32;

    /// The number of blocks.
    pub fn blocks(&self) -> u64 {
        self.last_lba.saturating_add(1)
    }

    pub fn parse(d: &[u8]) -> Result<Capacity16> {
        // The fields hydra reads end at byte 14; a short allocation length may cut the
        // rest (reserved bytes).
        if d.len() < 15 {
            return Err(Error::truncated("READ CAPACITY(16) data", 15, d.len()));
        }
        let mut l = [0u8; 8];
        l.copy_from_slice(&d[0..8]);
        Ok(Capacity16 {
            last_lba: u64::from_be_bytes(l),
            block_size: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
            lbpme: d[14] & 0x80 != 0,
            lbprz: d[14] & 0x40 != 0,
        })
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut v = vec![0u8; Self::LEN];
        v[..8].copy_from_slice(&self.last_lba.to_be_bytes());
        v[8..12].copy_from_slice(&self.block_size.to_be_bytes());
        v[14] = (self.lbpme as u8) << 7 | (self.lbprz as u8) << 6;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(last_lba: u64, block_size: u32, lbpme: bool, lbprz: bool) {
            let c = Capacity16 { last_lba, block_size, lbpme, lbprz };
            prop_assert_eq!(Capacity16::parse(&c.emit()), Ok(c));
        }
    }

    #[test]
    fn golden() {
        let c = Capacity16 {
            last_lba: 0xffff,
            block_size: 512,
            lbpme: true,
            lbprz: true,
        };
        let mut want = vec![0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 2, 0, 0, 0, 0xc0];
        want.resize(32, 0);
        assert_eq!(c.emit(), want);
        assert_eq!(c.blocks(), 0x10000);
        assert!(Capacity16::parse(&want[..12]).is_err());
    }
}
