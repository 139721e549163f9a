//! Standard INQUIRY data (SPC-4 §6.6.2) and the VPD pages a disk needs (SPC-4 §7.8,
//! SBC-3 §6.5), with tgt 1.0.85's identity layout: clusters keep the WWIDs udev and
//! multipath derived from tgt when they move to hydra. The Device Identification page
//! (§7.8.6) is a type, [`DeviceIdPage`], that the target emits and the initiator parses
//! to derive the WWID ([`super::wwid`]).

use super::code::enum_with_unknown;
use super::op;
use crate::{Error, Result};

/// Peripheral device types (SPC-4 Table 141).
pub const TYPE_DISK: u8 = 0x00;
/// Storage array controller (tgt's LUN 0).
pub const TYPE_CONTROLLER: u8 = 0x0c;

/// VPD page codes.
pub mod page {
    pub const SUPPORTED: u8 = 0x00;
    pub const UNIT_SERIAL: u8 = 0x80;
    pub const DEVICE_ID: u8 = 0x83;
    pub const BLOCK_LIMITS: u8 = 0xb0;
    pub const BLOCK_CHARACTERISTICS: u8 = 0xb1;
    pub const PROVISIONING: u8 = 0xb2;
}

/// What a logical unit says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub device_type: u8,
    pub removable: bool,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// tgt's `scsi_id`: T10 vendor designator and the source of the NAA-6 designator.
    pub scsi_id: String,
    /// tgt's `scsi_sn`: the unit serial number.
    pub serial: String,
    /// For the NAA-3 designator `(tid << 32) | lun`.
    pub tid: u32,
    pub lun: u64,
}

impl Identity {
    /// tgt's defaults (`usr/spc.c spc_lu_init`): SCSI ID `IET     %04x%04x`, serial
    /// `beaf<tid><lun>` in decimal.
    pub fn tgt_scsi_id(tid: u32, lun: u64) -> String {
        format!("IET     {tid:04x}{lun:04x}")
    }
    /// See [`Identity::tgt_scsi_id`].
    pub fn tgt_serial(tid: u32, lun: u64) -> String {
        format!("beaf{tid}{lun}")
    }
}

fn padded(s: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().take(n).collect();
    v.resize(n, b' ');
    v
}

/// Standard INQUIRY data: 66 bytes as tgt returns them (SPC-3 version, HiSup, response
/// data format 2, CmdQue; version descriptors SBC-3, iSCSI and SPC-3 — SCC-2 for the
/// controller).
pub fn standard_inquiry(id: &Identity) -> Vec<u8> {
    let mut b = vec![0u8; 66];
    b[0] = id.device_type & 0x1f;
    b[1] = if id.removable { 0x80 } else { 0 };
    b[2] = 0x05; // SPC-3
    b[3] = 0x12; // HISUP | response data format 2
    b[4] = (b.len() - 5) as u8;
    b[7] = 0x02; // CMDQUE
    b[8..16].copy_from_slice(&padded(&id.vendor, 8));
    b[16..32].copy_from_slice(&padded(&id.product, 16));
    b[32..36].copy_from_slice(&padded(&id.revision, 4));
    let third = if id.device_type == TYPE_CONTROLLER {
        0x01fb
    } else {
        0x0300
    };
    for (i, d) in [0x04c0u16, 0x0960, third].iter().enumerate() {
        b[58 + 2 * i..60 + 2 * i].copy_from_slice(&d.to_be_bytes());
    }
    b
}

fn page(id: &Identity, code: u8, body: Vec<u8>) -> Vec<u8> {
    let mut b = vec![id.device_type & 0x1f, code];
    b.extend_from_slice(&(body.len() as u16).to_be_bytes());
    b.extend(body);
    b
}

/// VPD 0x00: the pages we support.
pub fn supported_pages(id: &Identity, pages: &[u8]) -> Vec<u8> {
    page(id, page::SUPPORTED, pages.to_vec())
}

/// VPD 0x80: the serial, right-aligned in 36 space-padded bytes as tgt does
/// (`update_vpd_80`); Linux trims the spaces.
pub fn unit_serial(id: &Identity) -> Vec<u8> {
    let s: Vec<u8> = id.serial.bytes().take(36).collect();
    let mut body = vec![b' '; 36 - s.len()];
    body.extend(s);
    page(id, page::UNIT_SERIAL, body)
}

/// tgt's NAA-6 value: each character of the SCSI ID read as one hex digit (non-hex
/// characters count as 0), shifted into a 128-bit number, top nibble forced to 6.
pub fn tgt_naa6(scsi_id: &str) -> [u8; 16] {
    let mut v: u128 = 0;
    for c in scsi_id.chars() {
        v = (v << 4) | c.to_digit(16).unwrap_or(0) as u128;
    }
    v = (v & !(0xf << 124)) | (6 << 124);
    v.to_be_bytes()
}

enum_with_unknown! {
    /// CODE SET of a designation descriptor (SPC-4 §7.8.6.1, Table 481).
    pub enum CodeSet(mask 0x0f) {
        Binary = 0x1,
        Ascii = 0x2,
        Utf8 = 0x3,
    }
}

enum_with_unknown! {
    /// ASSOCIATION: what a designator names (SPC-4 §7.8.6.1, Table 482).
    pub enum Association(mask 0x03) {
        LogicalUnit = 0x0,
        TargetPort = 0x1,
        TargetDevice = 0x2,
    }
}

enum_with_unknown! {
    /// DESIGNATOR TYPE (SPC-4 §7.8.6.1, Table 483).
    pub enum DesignatorType(mask 0x0f) {
        VendorSpecific = 0x0,
        T10VendorId = 0x1,
        Eui64 = 0x2,
        Naa = 0x3,
        RelativeTargetPort = 0x4,
        TargetPortGroup = 0x5,
        LogicalUnitGroup = 0x6,
        Md5LogicalUnit = 0x7,
        ScsiName = 0x8,
        ProtocolSpecificPort = 0x9,
    }
}

/// One designation descriptor of the Device Identification page (SPC-4 §7.8.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Designator {
    /// PROTOCOL IDENTIFIER when PIV is set (iSCSI is 5), else None.
    pub protocol: Option<u8>,
    pub code_set: CodeSet,
    pub association: Association,
    pub kind: DesignatorType,
    /// The DESIGNATOR, at most 255 bytes (its length is one byte).
    pub value: Vec<u8>,
}

impl Designator {
    fn new(code_set: CodeSet, kind: DesignatorType, value: Vec<u8>) -> Designator {
        Designator {
            protocol: None,
            code_set,
            association: Association::LogicalUnit,
            kind,
            value,
        }
    }

    /// The NAA nibble of an NAA designator (SPC-4 §7.8.6.6), else None.
    pub fn naa(&self) -> Option<u8> {
        (self.kind == DesignatorType::Naa)
            .then(|| self.value.first().map(|b| b >> 4))
            .flatten()
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.value.len().min(255)
    }

    /// Append the descriptor (a value longer than 255 bytes is cut to 255).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let value = &self.value[..self.value.len().min(255)];
        let (piv, protocol) = match self.protocol {
            Some(p) => (0x80, p << 4),
            None => (0, 0),
        };
        out.push(protocol | u8::from(self.code_set));
        out.push(piv | u8::from(self.association) << 4 | u8::from(self.kind));
        out.push(0);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
}

/// The Device Identification VPD page (SPC-4 §7.8.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIdPage {
    /// PERIPHERAL QUALIFIER and DEVICE TYPE byte.
    pub peripheral: u8,
    pub designators: Vec<Designator>,
}

impl DeviceIdPage {
    /// Parse a page 0x83. What the allocation length cut off is not there: a
    /// descriptor that does not fit ends the list, as udev's `scsi_id` reads it.
    pub fn parse(p: &[u8]) -> Result<DeviceIdPage> {
        const WHAT: &str = "Device Identification VPD page";
        if p.len() < 4 {
            return Err(Error::truncated(WHAT, 4, p.len()));
        }
        if p[1] != page::DEVICE_ID {
            return Err(Error::malformed(WHAT, format!("page code 0x{:02x}", p[1])));
        }
        let end = (4 + u16::from_be_bytes([p[2], p[3]]) as usize).min(p.len());
        let mut designators = Vec::new();
        let mut at = 4;
        while at + 4 <= end {
            let len = p[at + 3] as usize;
            if at + 4 + len > end {
                break;
            }
            let piv = p[at + 1] & 0x80 != 0;
            designators.push(Designator {
                protocol: piv.then_some(p[at] >> 4),
                code_set: p[at].into(),
                association: (p[at + 1] >> 4).into(),
                kind: p[at + 1].into(),
                value: p[at + 4..at + 4 + len].to_vec(),
            });
            at += 4 + len;
        }
        Ok(DeviceIdPage {
            peripheral: p[0],
            designators,
        })
    }

    pub fn buffer_len(&self) -> usize {
        4 + self
            .designators
            .iter()
            .map(|d| d.buffer_len())
            .sum::<usize>()
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.buffer_len());
        b.extend_from_slice(&[self.peripheral, page::DEVICE_ID, 0, 0]);
        for d in &self.designators {
            d.emit(&mut b);
        }
        let len = (b.len() - 4) as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        b
    }
}

/// The logical unit designators tgt 1.0.85 gives a LUN: T10 vendor ID (the SCSI ID,
/// NUL-padded to 36 bytes), NAA-3 `(tid << 32) | lun` with the top nibble 3, then
/// tgt's NAA-6 ([`tgt_naa6`]).
pub fn tgt_designators(id: &Identity) -> Vec<Designator> {
    let mut t10: Vec<u8> = id.scsi_id.bytes().take(36).collect();
    t10.resize(36, 0);
    let naa3 = ((id.tid as u64) << 32 | (id.lun & 0xffff_ffff)) & 0x0fff_ffff_ffff_ffff
        | 0x3000_0000_0000_0000;
    vec![
        Designator::new(CodeSet::Ascii, DesignatorType::T10VendorId, t10),
        Designator::new(
            CodeSet::Binary,
            DesignatorType::Naa,
            naa3.to_be_bytes().to_vec(),
        ),
        Designator::new(
            CodeSet::Binary,
            DesignatorType::Naa,
            tgt_naa6(&id.scsi_id).to_vec(),
        ),
    ]
}

/// The designators of the target port a command came through (SPC-4 §7.8.6.7 and
/// §7.8.6.8): relative target port identifier and target port group, both `tag`,
/// association "target port", protocol iSCSI (5), binary.
pub fn target_port_designators(tag: u16) -> [Designator; 2] {
    let port = |kind| Designator {
        protocol: Some(0x5),
        code_set: CodeSet::Binary,
        association: Association::TargetPort,
        kind,
        value: [[0, 0], tag.to_be_bytes()].concat(),
    };
    [
        port(DesignatorType::RelativeTargetPort),
        port(DesignatorType::TargetPortGroup),
    ]
}

/// VPD 0x83 as tgt 1.0.85 builds it ([`tgt_designators`]).
pub fn device_identification(id: &Identity) -> Vec<u8> {
    DeviceIdPage {
        peripheral: id.device_type & 0x1f,
        designators: tgt_designators(id),
    }
    .emit()
}

/// The INQUIRY CDB (SPC-4 §6.6.1): standard data, or VPD page `page`.
pub fn inquiry_cdb(page: Option<u8>, alloc_len: u16) -> [u8; 6] {
    let l = alloc_len.to_be_bytes();
    [
        op::INQUIRY,
        page.is_some() as u8,
        page.unwrap_or(0),
        l[0],
        l[1],
        0,
    ]
}

/// VPD 0xB0 Block Limits (SBC-4 §6.6.4): transfer limits, and the atomic write limits
/// (WRITE ATOMIC(16) accepts up to `max_transfer_blocks`, any alignment).
pub fn block_limits(
    id: &Identity,
    max_transfer_blocks: u32,
    optimal_transfer_blocks: u32,
) -> Vec<u8> {
    let mut body = vec![0u8; 0x3c];
    // Offsets below are page offsets minus the 4-byte header.
    body[8 - 4..12 - 4].copy_from_slice(&max_transfer_blocks.to_be_bytes());
    body[12 - 4..16 - 4].copy_from_slice(&optimal_transfer_blocks.to_be_bytes());
    // MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT (1 = any), GRANULARITY (1).
    body[44 - 4..48 - 4].copy_from_slice(&max_transfer_blocks.to_be_bytes());
    body[48 - 4..52 - 4].copy_from_slice(&1u32.to_be_bytes());
    body[52 - 4..56 - 4].copy_from_slice(&1u32.to_be_bytes());
    page(id, page::BLOCK_LIMITS, body)
}

/// VPD 0xB1 Block Device Characteristics (SBC-3 §6.5.2): medium rotation rate (1 =
/// non-rotating).
pub fn block_characteristics(id: &Identity, rotation_rate: u16) -> Vec<u8> {
    let mut body = vec![0u8; 0x3c];
    body[0..2].copy_from_slice(&rotation_rate.to_be_bytes());
    page(id, page::BLOCK_CHARACTERISTICS, body)
}

/// VPD 0xB2 Logical Block Provisioning (SBC-3 §6.5.4). Full provisioning until thin
/// provisioning is enabled.
pub fn provisioning(id: &Identity) -> Vec<u8> {
    page(id, page::PROVISIONING, vec![0u8; 4])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tgt_lun(tid: u32, lun: u64) -> Identity {
        Identity {
            device_type: TYPE_DISK,
            removable: false,
            vendor: "IET".into(),
            product: "VIRTUAL-DISK".into(),
            revision: "0001".into(),
            scsi_id: Identity::tgt_scsi_id(tid, lun),
            serial: Identity::tgt_serial(tid, lun),
            tid,
            lun,
        }
    }

    /// The exact bytes tgt 1.0.85 returns for tid 1 / LUN 1 (shared/reference/target.md
    /// §2.1), from which udev derives WWID 360000000000000000e00000000010001.
    #[test]
    fn vpd83_matches_tgt_for_tid1_lun1() {
        let mut want = vec![0x00, 0x83, 0x00, 0x48, 0x02, 0x01, 0x00, 0x24];
        want.extend_from_slice(b"IET     00010001");
        want.extend_from_slice(&[0u8; 20]);
        want.extend_from_slice(&[0x01, 0x03, 0x00, 0x08, 0x30, 0, 0, 0x01, 0, 0, 0, 0x01]);
        want.extend_from_slice(&[
            0x01, 0x03, 0x00, 0x10, 0x60, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0, 0, 0, 0, 0x01, 0, 0x01,
        ]);
        assert_eq!(device_identification(&tgt_lun(1, 1)), want);
    }

    fn designator() -> impl Strategy<Value = Designator> {
        (
            any::<(Option<u8>, u8, u8, u8)>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |((protocol, code_set, association, kind), value)| Designator {
                    protocol: protocol.map(|p| p & 0x0f),
                    code_set: code_set.into(),
                    association: association.into(),
                    kind: kind.into(),
                    value,
                },
            )
    }

    proptest! {
        #[test]
        fn device_id_round_trip(peripheral: u8, designators in proptest::collection::vec(designator(), 0..5)) {
            let p = DeviceIdPage { peripheral, designators };
            let b = p.emit();
            prop_assert_eq!(b.len(), p.buffer_len());
            prop_assert_eq!(DeviceIdPage::parse(&b), Ok(p));
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = DeviceIdPage::parse(&b);
        }
    }

    #[test]
    fn target_port_designators_golden() {
        let mut b = Vec::new();
        for d in target_port_designators(2) {
            d.emit(&mut b);
        }
        assert_eq!(
            b,
            [0x51, 0x94, 0, 4, 0, 0, 0, 2, 0x51, 0x95, 0, 4, 0, 0, 0, 2]
        );
        assert_eq!(inquiry_cdb(Some(0x83), 256), [0x12, 1, 0x83, 1, 0, 0]);
    }

    #[test]
    fn naa6_of_custom_scsi_id() {
        // "multipath-10": only a, 1 and 0 are hex digits.
        let v = tgt_naa6("multipath-10");
        assert_eq!(
            u128::from_be_bytes(v),
            0x6000_0000_0000_0000_0000_0000_00a0_0010
        );
        assert_eq!(Identity::tgt_scsi_id(10, 3), "IET     000a0003");
        assert_eq!(Identity::tgt_serial(10, 3), "beaf103");
    }

    #[test]
    fn serial_and_standard() {
        let id = tgt_lun(1, 1);
        let s = unit_serial(&id);
        assert_eq!(s.len(), 40);
        assert_eq!(&s[34..], b"beaf11");
        assert!(s[4..34].iter().all(|c| *c == b' '));
        let inq = standard_inquiry(&id);
        assert_eq!(inq.len(), 66);
        assert_eq!(&inq[..8], &[0, 0, 5, 0x12, 61, 0, 0, 2]);
        assert_eq!(&inq[8..36], b"IET     VIRTUAL-DISK    0001");
        assert_eq!(&inq[58..64], &[0x04, 0xc0, 0x09, 0x60, 0x03, 0x00]);
    }
}
