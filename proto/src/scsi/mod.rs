//! SCSI on the wire (no I/O): opcodes and status codes, CDB field access, sense data
//! (SPC-4 §4.5), and the INQUIRY/VPD encoders (SPC-4 §6.6, §7.8), including tgt's device
//! identity so that WWIDs stay the same when tgtd is replaced.

mod code;

pub mod alua;
pub mod capacity;
pub mod cdb;
pub mod pr;
pub mod report_luns;
pub mod sense;
pub mod unmap;
pub mod vpd;
pub mod wwid;

pub use sense::Sense;

/// SAM-5 §5.3 status codes.
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const CONDITION_MET: u8 = 0x04;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    /// A task ended by another I_T nexus (TAS = 1, SAM-5 §5.6).
    pub const TASK_ABORTED: u8 = 0x40;
}

/// Define the `op` constants (for `match` patterns on CDB bytes) and the [`Opcode`]
/// enum from one list, so that the two cannot disagree.
macro_rules! opcodes {
    (
        codes { $( $const_name:ident, $variant:ident = $v:expr; )+ }
        extra { $($extra:item)* }
    ) => {
        /// Operation codes hydra knows (SPC-4 Annex D, SBC-3 §5).
        pub mod op {
            $( pub const $const_name: u8 = $v; )+
            $($extra)*
        }

        code::enum_with_unknown! {
            /// A CDB's OPERATION CODE (SPC-4 §4.2.5.1); codes hydra does not know are
            /// `Unknown`.
            pub enum Opcode(mask 0xff) {
                $( $variant = $v, )+
            }
        }
    };
}

opcodes! {
    codes {
        TEST_UNIT_READY, TestUnitReady = 0x00;
        REQUEST_SENSE, RequestSense = 0x03;
        FORMAT_UNIT, FormatUnit = 0x04;
        READ_6, Read6 = 0x08;
        WRITE_6, Write6 = 0x0a;
        INQUIRY, Inquiry = 0x12;
        MODE_SELECT_6, ModeSelect6 = 0x15;
        RESERVE_6, Reserve6 = 0x16;
        RELEASE_6, Release6 = 0x17;
        MODE_SENSE_6, ModeSense6 = 0x1a;
        RECEIVE_DIAGNOSTIC, ReceiveDiagnostic = 0x1c;
        START_STOP_UNIT, StartStopUnit = 0x1b;
        SEND_DIAGNOSTIC, SendDiagnostic = 0x1d;
        PREVENT_ALLOW, PreventAllow = 0x1e;
        READ_CAPACITY_10, ReadCapacity10 = 0x25;
        READ_DEFECT_DATA_10, ReadDefectData10 = 0x37;
        READ_10, Read10 = 0x28;
        WRITE_10, Write10 = 0x2a;
        WRITE_VERIFY_10, WriteVerify10 = 0x2e;
        VERIFY_10, Verify10 = 0x2f;
        PRE_FETCH_10, PreFetch10 = 0x34;
        SYNCHRONIZE_CACHE_10, SynchronizeCache10 = 0x35;
        WRITE_SAME_10, WriteSame10 = 0x41;
        UNMAP, Unmap = 0x42;
        LOG_SELECT, LogSelect = 0x4c;
        LOG_SENSE, LogSense = 0x4d;
        MODE_SELECT_10, ModeSelect10 = 0x55;
        RESERVE_10, Reserve10 = 0x56;
        RELEASE_10, Release10 = 0x57;
        MODE_SENSE_10, ModeSense10 = 0x5a;
        PERSISTENT_RESERVE_IN, PersistentReserveIn = 0x5e;
        PERSISTENT_RESERVE_OUT, PersistentReserveOut = 0x5f;
        EXTENDED_COPY, ExtendedCopy = 0x83;
        RECEIVE_COPY_RESULTS, ReceiveCopyResults = 0x84;
        READ_16, Read16 = 0x88;
        COMPARE_AND_WRITE, CompareAndWrite = 0x89;
        ORWRITE_16, Orwrite16 = 0x8b;
        WRITE_16, Write16 = 0x8a;
        WRITE_VERIFY_16, WriteVerify16 = 0x8e;
        VERIFY_16, Verify16 = 0x8f;
        PRE_FETCH_16, PreFetch16 = 0x90;
        SYNCHRONIZE_CACHE_16, SynchronizeCache16 = 0x91;
        WRITE_SAME_16, WriteSame16 = 0x93;
        WRITE_ATOMIC_16, WriteAtomic16 = 0x9c;
        SERVICE_ACTION_IN_16, ServiceActionIn16 = 0x9e;
        REPORT_LUNS, ReportLuns = 0xa0;
        MAINTENANCE_IN, MaintenanceIn = 0xa3;
        READ_12, Read12 = 0xa8;
        WRITE_12, Write12 = 0xaa;
        WRITE_VERIFY_12, WriteVerify12 = 0xae;
        VERIFY_12, Verify12 = 0xaf;
        READ_DEFECT_DATA_12, ReadDefectData12 = 0xb7;
    }
    extra {
        /// SERVICE ACTION IN(16) service actions.
        pub const SAI_READ_CAPACITY_16: u8 = 0x10;
        pub const SAI_GET_LBA_STATUS: u8 = 0x12;
        /// MAINTENANCE IN service actions.
        pub const MI_REPORT_TARGET_PORT_GROUPS: u8 = 0x0a;
        pub const MI_REPORT_SUPPORTED_OPCODES: u8 = 0x0c;
        pub const MI_REPORT_SUPPORTED_TMFS: u8 = 0x0d;
    }
}

/// SAM-5 §4.7 LUN field: single-level peripheral (00b) or flat space (01b) addressing.
pub fn decode_lun(field: u64) -> Option<u64> {
    let b = field.to_be_bytes();
    if b[2..].iter().any(|x| *x != 0) {
        return None;
    }
    match b[0] >> 6 {
        0 if b[0] & 0x3f == 0 => Some(b[1] as u64),
        1 => Some(((b[0] as u64 & 0x3f) << 8) | b[1] as u64),
        _ => None,
    }
}

/// The LUN field for a LUN number, as Linux, open-iscsi and REPORT LUNS encode it:
/// peripheral addressing below 256, flat space addressing above.
pub fn encode_lun(n: u64) -> u64 {
    if n < 256 {
        n << 48
    } else {
        (0x4000 | (n & 0x3fff)) << 48
    }
}

/// CDB length from the opcode's group code (SPC-4 §4.2.5.1); None for groups whose
/// length is vendor specific or variable.
pub fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_addressing() {
        assert_eq!(decode_lun(0), Some(0));
        assert_eq!(decode_lun(encode_lun(1)), Some(1));
        assert_eq!(decode_lun(encode_lun(300)), Some(300));
        assert_eq!(decode_lun(0x0001_0000_0000_0001), None);
        assert_eq!(decode_lun(0x8001 << 48), None);
    }

    #[test]
    fn opcodes_keep_every_value() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(Opcode::from(v)), v);
        }
        assert_eq!(
            Opcode::from(op::PERSISTENT_RESERVE_OUT),
            Opcode::PersistentReserveOut
        );
        assert_eq!(Opcode::from(0xff), Opcode::Unknown(0xff));
    }

    #[test]
    fn group_lengths() {
        assert_eq!(cdb_len(op::READ_6), Some(6));
        assert_eq!(cdb_len(op::READ_10), Some(10));
        assert_eq!(cdb_len(op::MODE_SENSE_10), Some(10));
        assert_eq!(cdb_len(op::READ_16), Some(16));
        assert_eq!(cdb_len(op::READ_12), Some(12));
        assert_eq!(cdb_len(0x7f), None);
    }
}
