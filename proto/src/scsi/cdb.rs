//! CDB field access for the block commands (SBC-3 §5): one decoder for the READ, WRITE,
//! VERIFY, WRITE AND VERIFY, PRE-FETCH and SYNCHRONIZE CACHE families in their 6, 10, 12
//! and 16 byte forms, so range checks and flag handling live in one place.

use super::{op, Opcode};

/// Big-endian field readers over a CDB (callers check the CDB length first).
pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}
/// 24-bit big-endian.
pub fn be24(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([0, b[off], b[off + 1], b[off + 2]])
}
/// 32-bit big-endian.
pub fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
/// 64-bit big-endian.
pub fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// `cdb` once it is checked to hold `len` bytes and start with `opcode`: what a typed
/// CDB's `parse` starts with. `what` names the command in the error.
pub(crate) fn checked<'a>(
    cdb: &'a [u8],
    opcode: u8,
    len: usize,
    what: &'static str,
) -> crate::Result<&'a [u8]> {
    if cdb.len() < len {
        return Err(crate::Error::truncated(what, len, cdb.len()));
    }
    if cdb[0] != opcode {
        return Err(crate::Error::malformed(
            what,
            format!("opcode 0x{:02x}", cdb[0]),
        ));
    }
    Ok(&cdb[..len])
}

/// What a block-access CDB asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCdb {
    pub lba: u64,
    /// Transfer length or number of logical blocks (already mapped: READ(6) 0 = 256).
    pub blocks: u32,
    pub fua: bool,
    pub dpo: bool,
    /// RDPROTECT / WRPROTECT / VRPROTECT (bits 7..5 of byte 1).
    pub protect: u8,
    /// BYTCHK (VERIFY, WRITE AND VERIFY).
    pub bytchk: u8,
    /// IMMED (PRE-FETCH, SYNCHRONIZE CACHE).
    pub immed: bool,
}

impl BlockCdb {
    /// A transfer of `blocks` blocks at `lba`, no flags.
    pub fn new(lba: u64, blocks: u32) -> BlockCdb {
        BlockCdb {
            lba,
            blocks,
            fua: false,
            dpo: false,
            protect: 0,
            bytchk: 0,
            immed: false,
        }
    }

    /// The 16-byte CDB of `opcode` (READ(16), WRITE(16), VERIFY(16), WRITE AND
    /// VERIFY(16), PRE-FETCH(16), SYNCHRONIZE CACHE(16); SBC-3 §5): LBA at 2, count at
    /// 10, flags in byte 1 (BYTCHK and IMMED share bit 1: set the one the opcode has).
    pub fn emit16(&self, opcode: Opcode) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = opcode.into();
        c[1] = (self.protect & 7) << 5
            | (self.dpo as u8) << 4
            | (self.fua as u8) << 3
            | (self.bytchk & 3) << 1
            | (self.immed as u8) << 1;
        c[2..10].copy_from_slice(&self.lba.to_be_bytes());
        c[10..14].copy_from_slice(&self.blocks.to_be_bytes());
        c
    }
}

/// COMPARE AND WRITE (SBC-3 §5.2): `blocks` blocks at `lba` (the Data-Out buffer holds
/// the verify data, then the write data).
pub fn compare_and_write(lba: u64, blocks: u8, fua: bool) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::COMPARE_AND_WRITE;
    c[1] = (fua as u8) << 3;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

/// READ CAPACITY(16) (SBC-3 §5.16): SERVICE ACTION IN(16) with service action 10h.
pub fn read_capacity16(alloc_len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::SERVICE_ACTION_IN_16;
    c[1] = op::SAI_READ_CAPACITY_16;
    c[10..14].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// UNMAP (SBC-3 §5.28) with a parameter list of `param_len` bytes.
pub fn unmap(param_len: u16) -> [u8; 10] {
    let l = param_len.to_be_bytes();
    [op::UNMAP, 0, 0, 0, 0, 0, 0, l[0], l[1], 0]
}

/// REPORT LUNS (SPC-4 §6.33) with SELECT REPORT `select`.
pub fn report_luns(select: u8, alloc_len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = op::REPORT_LUNS;
    c[2] = select;
    c[6..10].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// TEST UNIT READY (SPC-4 §6.47).
pub const TEST_UNIT_READY: [u8; 6] = [op::TEST_UNIT_READY, 0, 0, 0, 0, 0];

/// Decode a block-access CDB; None for other opcodes or a CDB too short for its opcode.
pub fn block(cdb: &[u8]) -> Option<BlockCdb> {
    let opcode = *cdb.first()?;
    let need = match opcode {
        op::READ_6 | op::WRITE_6 => 6,
        op::READ_10
        | op::WRITE_10
        | op::VERIFY_10
        | op::WRITE_VERIFY_10
        | op::PRE_FETCH_10
        | op::SYNCHRONIZE_CACHE_10 => 10,
        op::READ_12 | op::WRITE_12 | op::VERIFY_12 | op::WRITE_VERIFY_12 => 12,
        op::READ_16
        | op::WRITE_16
        | op::VERIFY_16
        | op::WRITE_VERIFY_16
        | op::PRE_FETCH_16
        | op::SYNCHRONIZE_CACHE_16
        | op::ORWRITE_16
        | op::WRITE_ATOMIC_16 => 16,
        _ => return None,
    };
    if cdb.len() < need {
        return None;
    }
    if need == 6 {
        let lba = (be24(cdb, 1) & 0x1f_ffff) as u64;
        let blocks = if cdb[4] == 0 { 256 } else { cdb[4] as u32 };
        return Some(BlockCdb::new(lba, blocks));
    }
    let (lba, blocks) = match need {
        10 => (be32(cdb, 2) as u64, be16(cdb, 7) as u32),
        12 => (be32(cdb, 2) as u64, be32(cdb, 6)),
        // WRITE ATOMIC(16) has a 2-byte transfer length at 12 (SBC-4 §5.48).
        _ if opcode == op::WRITE_ATOMIC_16 => (be64(cdb, 2), be16(cdb, 12) as u32),
        _ => (be64(cdb, 2), be32(cdb, 10)),
    };
    let b1 = cdb[1];
    Some(BlockCdb {
        lba,
        blocks,
        fua: b1 & 0x08 != 0,
        dpo: b1 & 0x10 != 0,
        protect: b1 >> 5,
        bytchk: (b1 >> 1) & 3,
        immed: b1 & 0x02 != 0,
    })
}

/// Allocation length of the commands that return data (SPC-4 §4.2.5.6), for truncating.
pub fn allocation_length(cdb: &[u8]) -> Option<u32> {
    let opcode = *cdb.first()?;
    let get = |n: usize, f: fn(&[u8]) -> u32| (cdb.len() >= n).then(|| f(cdb));
    match opcode {
        op::INQUIRY => get(6, |c| be16(c, 3) as u32),
        op::MODE_SENSE_6 | op::REQUEST_SENSE => get(6, |c| c[4] as u32),
        op::MODE_SENSE_10 | op::PERSISTENT_RESERVE_IN => get(10, |c| be16(c, 7) as u32),
        op::REPORT_LUNS | op::MAINTENANCE_IN => get(12, |c| be32(c, 6)),
        op::SERVICE_ACTION_IN_16 => get(16, |c| be32(c, 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn six_byte_zero_means_256() {
        let b = block(&[op::READ_6, 0x1f, 0xff, 0xff, 0, 0]).unwrap();
        assert_eq!((b.lba, b.blocks), (0x1f_ffff, 256));
    }

    #[test]
    fn golden_initiator_cdbs() {
        let w = BlockCdb {
            fua: true,
            ..BlockCdb::new(0x0102, 8)
        };
        assert_eq!(
            w.emit16(Opcode::Write16),
            [0x8a, 0x08, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 8, 0, 0]
        );
        assert_eq!(
            read_capacity16(32),
            [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
        );
        assert_eq!(
            compare_and_write(1, 2, false)[..],
            [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]
        );
        assert_eq!(unmap(24), [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]);
        assert_eq!(
            report_luns(0, 4096),
            [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
        );
    }

    #[test]
    fn flags_of_ten_byte() {
        let b = block(&[op::WRITE_10, 0x38, 0, 0, 1, 0, 0, 0, 8, 0]).unwrap();
        assert!(b.fua && b.dpo);
        assert_eq!((b.protect, b.lba, b.blocks), (1, 256, 8));
        let v = block(&[op::VERIFY_10, 0x02, 0, 0, 0, 9, 0, 0, 1, 0]).unwrap();
        assert_eq!(v.bytchk, 1);
        assert!(block(&[op::READ_16, 0, 0]).is_none());
        assert!(block(&[op::INQUIRY, 0, 0, 0, 0, 0]).is_none());
    }

    const SIXTEEN: [u8; 6] = [
        op::READ_16,
        op::WRITE_16,
        op::VERIFY_16,
        op::WRITE_VERIFY_16,
        op::PRE_FETCH_16,
        op::SYNCHRONIZE_CACHE_16,
    ];

    proptest! {
        /// Whatever 16-byte CDB of the family arrives, what it decodes to encodes to a
        /// CDB that decodes the same.
        #[test]
        fn parse_emit_parse_is_identity(mut c in proptest::array::uniform16(any::<u8>()), i in 0..6usize) {
            c[0] = SIXTEEN[i];
            let b = block(&c).unwrap();
            prop_assert_eq!(block(&b.emit16(c[0].into())), Some(b));
        }

        #[test]
        fn sixteen_byte_fields(lba: u64, len: u32) {
            let mut c = [0u8; 16];
            c[0] = op::READ_16;
            c[2..10].copy_from_slice(&lba.to_be_bytes());
            c[10..14].copy_from_slice(&len.to_be_bytes());
            let b = block(&c).unwrap();
            prop_assert_eq!((b.lba, b.blocks), (lba, len));
        }
    }
}
