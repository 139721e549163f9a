//! Standard INQUIRY data (SPC-4 §6.6.2) and the VPD pages a disk needs (SPC-4 §7.8,
//! SBC-3 §6.5), with tgt 1.0.85's identity layout: clusters keep the WWIDs udev and
//! multipath derived from tgt when they move to hydra.

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

/// VPD 0x83 as tgt 1.0.85 builds it: T10 vendor ID (the SCSI ID, NUL-padded to 36
/// bytes), NAA-3 `(tid << 32) | lun` with the top nibble 3, then tgt's NAA-6.
pub fn device_identification(id: &Identity) -> Vec<u8> {
    let mut body = Vec::with_capacity(72);
    // T10 vendor ID: code set ASCII (2), association LU, type 1.
    body.extend_from_slice(&[0x02, 0x01, 0x00, 36]);
    let mut t10: Vec<u8> = id.scsi_id.bytes().take(36).collect();
    t10.resize(36, 0);
    body.extend(t10);
    // NAA, locally assigned (3): binary code set (1), type 3.
    body.extend_from_slice(&[0x01, 0x03, 0x00, 8]);
    let naa3 = ((id.tid as u64) << 32 | (id.lun & 0xffff_ffff)) & 0x0fff_ffff_ffff_ffff
        | 0x3000_0000_0000_0000;
    body.extend_from_slice(&naa3.to_be_bytes());
    // NAA IEEE Registered Extended (6).
    body.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
    body.extend_from_slice(&tgt_naa6(&id.scsi_id));
    page(id, page::DEVICE_ID, body)
}

/// One designation descriptor of a VPD 0x83 page (SPC-4 §7.8.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Designator<'a> {
    /// 1 binary, 2 ASCII, 3 UTF-8.
    pub code_set: u8,
    /// 0 logical unit, 1 target port, 2 target device.
    pub association: u8,
    /// Designator type: 0 vendor specific, 1 T10, 2 EUI-64, 3 NAA, ...
    pub kind: u8,
    pub value: &'a [u8],
}

/// The designators of a VPD 0x83 page, in order; a truncated descriptor ends the list.
pub fn designators(page: &[u8]) -> Vec<Designator<'_>> {
    let mut v = Vec::new();
    if page.len() < 4 || page[1] != page::DEVICE_ID {
        return v;
    }
    let end = (4 + u16::from_be_bytes([page[2], page[3]]) as usize).min(page.len());
    let mut at = 4;
    while at + 4 <= end {
        let len = page[at + 3] as usize;
        if at + 4 + len > end {
            break;
        }
        v.push(Designator {
            code_set: page[at] & 0x0f,
            association: (page[at + 1] >> 4) & 0x03,
            kind: page[at + 1] & 0x0f,
            value: &page[at + 4..at + 4 + len],
        });
        at += 4 + len;
    }
    v
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
