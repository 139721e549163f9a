//! The commands a disk LUN implements, with their CDB usage data (which bits of each CDB
//! byte the LUN looks at) — one table for REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35)
//! and for refusing reserved bits.

use hydra_proto::scsi::op;

/// One supported command.
pub struct CmdInfo {
    pub opcode: u8,
    /// Service action, for commands that have one.
    pub sa: Option<u8>,
    /// CDB usage data (SPC-4 §6.35.3): byte 0 is the opcode, then a mask per byte.
    pub usage: &'static [u8],
}

const fn c(opcode: u8, sa: Option<u8>, usage: &'static [u8]) -> CmdInfo {
    CmdInfo { opcode, sa, usage }
}

/// Commands of a disk LUN (SBC-3 / SPC-4), in opcode order.
pub const DISK: &[CmdInfo] = &[
    c(op::TEST_UNIT_READY, None, &[0x00, 0, 0, 0, 0, 0]),
    c(op::REQUEST_SENSE, None, &[0x03, 0x01, 0, 0, 0xff, 0]),
    c(op::READ_6, None, &[0x08, 0x1f, 0xff, 0xff, 0xff, 0]),
    c(op::WRITE_6, None, &[0x0a, 0x1f, 0xff, 0xff, 0xff, 0]),
    c(op::INQUIRY, None, &[0x12, 0x01, 0xff, 0xff, 0xff, 0]),
    c(op::RESERVE_6, None, &[0x16, 0, 0, 0, 0, 0]),
    c(op::RELEASE_6, None, &[0x17, 0, 0, 0, 0, 0]),
    c(op::MODE_SELECT_6, None, &[0x15, 0x11, 0, 0, 0xff, 0]),
    c(op::MODE_SENSE_6, None, &[0x1a, 0x08, 0xff, 0xff, 0xff, 0]),
    c(op::START_STOP_UNIT, None, &[0x1b, 0x01, 0, 0x0f, 0xf7, 0]),
    c(
        op::READ_CAPACITY_10,
        None,
        &[0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0],
    ),
    c(
        op::READ_10,
        None,
        &[0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::WRITE_10,
        None,
        &[0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::WRITE_VERIFY_10,
        None,
        &[0x2e, 0x12, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::VERIFY_10,
        None,
        &[0x2f, 0x16, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::READ_DEFECT_DATA_10,
        None,
        &[0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0],
    ),
    c(
        op::PRE_FETCH_10,
        None,
        &[0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::SYNCHRONIZE_CACHE_10,
        None,
        &[0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::WRITE_SAME_10,
        None,
        &[0x41, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::UNMAP,
        None,
        &[0x42, 0x01, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0],
    ),
    c(
        op::MODE_SELECT_10,
        None,
        &[0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0],
    ),
    c(op::RESERVE_10, None, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    c(op::RELEASE_10, None, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    c(
        op::MODE_SENSE_10,
        None,
        &[0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0],
    ),
    c(
        op::EXTENDED_COPY,
        None,
        &[
            0x83, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ],
    ),
    c(
        op::RECEIVE_COPY_RESULTS,
        None,
        &[
            0x84, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ],
    ),
    c(
        op::READ_16,
        None,
        &[
            0x88, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::PERSISTENT_RESERVE_IN,
        None,
        &[0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0],
    ),
    c(
        op::PERSISTENT_RESERVE_OUT,
        None,
        &[0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0],
    ),
    c(
        op::COMPARE_AND_WRITE,
        None,
        &[
            0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::WRITE_16,
        None,
        &[
            0x8a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::ORWRITE_16,
        None,
        &[
            0x8b, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::WRITE_VERIFY_16,
        None,
        &[
            0x8e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::VERIFY_16,
        None,
        &[
            0x8f, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::PRE_FETCH_16,
        None,
        &[
            0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::SYNCHRONIZE_CACHE_16,
        None,
        &[
            0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::WRITE_SAME_16,
        None,
        &[
            0x93, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x1f, 0,
        ],
    ),
    c(
        op::WRITE_ATOMIC_16,
        None,
        &[
            0x9c, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::SERVICE_ACTION_IN_16,
        Some(op::SAI_READ_CAPACITY_16),
        &[
            0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x01, 0,
        ],
    ),
    c(
        op::SERVICE_ACTION_IN_16,
        Some(op::SAI_GET_LBA_STATUS),
        &[
            0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
            0,
        ],
    ),
    c(
        op::REPORT_LUNS,
        None,
        &[0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    c(
        op::MAINTENANCE_IN,
        Some(op::MI_REPORT_TARGET_PORT_GROUPS),
        &[0xa3, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    c(
        op::MAINTENANCE_IN,
        Some(op::MI_REPORT_SUPPORTED_OPCODES),
        &[
            0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ],
    ),
    c(
        op::READ_12,
        None,
        &[
            0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::WRITE_12,
        None,
        &[
            0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::WRITE_VERIFY_12,
        None,
        &[
            0xae, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::VERIFY_12,
        None,
        &[
            0xaf, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0,
        ],
    ),
    c(
        op::READ_DEFECT_DATA_12,
        None,
        &[0xb7, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
];

/// Commands of tgt's LUN 0 controller.
pub const CONTROLLER: &[CmdInfo] = &[
    c(op::TEST_UNIT_READY, None, &[0x00, 0, 0, 0, 0, 0]),
    c(op::REQUEST_SENSE, None, &[0x03, 0x01, 0, 0, 0xff, 0]),
    c(op::INQUIRY, None, &[0x12, 0x01, 0xff, 0xff, 0xff, 0]),
    c(
        op::REPORT_LUNS,
        None,
        &[0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    c(
        op::MAINTENANCE_IN,
        Some(op::MI_REPORT_TARGET_PORT_GROUPS),
        &[0xa3, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    c(
        op::MAINTENANCE_IN,
        Some(op::MI_REPORT_SUPPORTED_OPCODES),
        &[
            0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ],
    ),
];

/// Find a command by opcode (and service action).
pub fn find(table: &'static [CmdInfo], opcode: u8, sa: Option<u8>) -> Option<&'static CmdInfo> {
    table
        .iter()
        .find(|c| c.opcode == opcode && (c.sa.is_none() || c.sa == sa))
}

/// The first CDB bit set outside the usage mask: (byte, bit), for INVALID FIELD IN CDB.
/// The opcode byte, the service action bits and the control byte are left to the
/// command itself.
pub fn reserved_bit(info: &CmdInfo, cdb: &[u8]) -> Option<(u16, u8)> {
    for (i, (b, mask)) in cdb.iter().zip(info.usage).enumerate().skip(1) {
        if i == cdb.len() - 1 {
            break; // control byte: NACA/LINK handled separately
        }
        let mask = if i == 1 && info.sa.is_some() {
            mask | 0x1f
        } else {
            *mask
        };
        let bad = b & !mask;
        if bad != 0 {
            return Some((i as u16, 7 - bad.leading_zeros() as u8));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lengths_match_the_cdb_groups() {
        for c in DISK.iter().chain(CONTROLLER) {
            assert_eq!(
                Some(c.usage.len()),
                hydra_proto::scsi::cdb_len(c.opcode),
                "opcode 0x{:02x}",
                c.opcode
            );
            assert_eq!(c.usage[0], c.opcode);
        }
    }

    #[test]
    fn reserved_bits_found() {
        let read10 = find(DISK, op::READ_10, None).unwrap();
        assert_eq!(
            reserved_bit(read10, &[0x28, 0x18, 0, 0, 0, 0, 0, 0, 1, 0]),
            None
        );
        assert_eq!(
            reserved_bit(read10, &[0x28, 0x01, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some((1, 0))
        );
        assert_eq!(
            reserved_bit(read10, &[0x28, 0, 0, 0, 0, 0, 0x80, 0, 1, 0]),
            Some((6, 7))
        );
    }
}
