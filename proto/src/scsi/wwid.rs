//! The WWID Linux gives a SCSI disk, which multipath keys its maps on: udev's
//! `scsi_id --whitelisted` (systemd `src/udev/scsi_id/scsi_serial.c`, behaviour only).
//! From VPD 0x83, logical unit designators are tried in `scsi_id`'s order — NAA IEEE
//! Registered Extended, NAA IEEE Registered, any other NAA, EUI-64, T10 vendor ID,
//! vendor specific; binary before ASCII for each — and the first present wins; the WWID
//! is the designator type as one hex digit followed by the identifier (binary as
//! lowercase hex, ASCII as is). Without a usable designator, VPD 0x80 gives
//! `S` + vendor (8) + product (16) + serial.
//!
//! For Debian's tgtd (and hydra's target, which keeps tgt's identities) LUN 1 of tid 1
//! gives `360000000000000000e00000000010001`.
//!
//! Both ends use it: the target's identities are tested against it, the initiator (and
//! multipath on it) keys LUNs by it.

use super::vpd::{page, Association, CodeSet, Designator, DesignatorType, DeviceIdPage};

/// (designator type, NAA nibble or None for any, code set), in `scsi_id`'s order.
const SEARCH: &[(DesignatorType, Option<u8>, CodeSet)] = {
    use CodeSet::{Ascii, Binary};
    use DesignatorType::{Eui64, Naa, T10VendorId, VendorSpecific};
    &[
        (Naa, Some(6), Binary),
        (Naa, Some(6), Ascii),
        (Naa, Some(5), Binary),
        (Naa, Some(5), Ascii),
        (Naa, None, Binary),
        (Naa, None, Ascii),
        (Eui64, None, Binary),
        (Eui64, None, Ascii),
        (T10VendorId, None, Binary),
        (T10VendorId, None, Ascii),
        (VendorSpecific, None, Binary),
        (VendorSpecific, None, Ascii),
    ]
};

fn ascii(b: &[u8]) -> String {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    String::from_utf8_lossy(b).into_owned()
}

/// The WWID from VPD 0x83 (`vpd83`), else from VPD 0x80 (`vpd80`) with the standard
/// INQUIRY data (`inquiry`, for vendor and product).
pub fn wwid(vpd83: &[u8], vpd80: Option<&[u8]>, inquiry: &[u8]) -> Option<String> {
    let ds = DeviceIdPage::parse(vpd83)
        .map(|p| p.designators)
        .unwrap_or_default();
    from_designators(&ds, inquiry).or_else(|| from_serial(vpd80?, inquiry))
}

/// The WWID from logical unit designators, in `scsi_id`'s order of preference.
pub fn from_designators(ds: &[Designator], inquiry: &[u8]) -> Option<String> {
    for &(kind, naa, code_set) in SEARCH {
        let found = ds.iter().find(|d| {
            d.association == Association::LogicalUnit
                && d.kind == kind
                && d.code_set == code_set
                && !d.value.is_empty()
                && naa.is_none_or(|n| d.naa() == Some(n))
        });
        let Some(d) = found else { continue };
        let mut id = format!("{:x}", u8::from(kind));
        if kind == DesignatorType::VendorSpecific {
            // scsi_id prefixes vendor-specific identifiers with vendor and product.
            id.push_str(&ascii(inquiry.get(8..32).unwrap_or_default()));
        }
        if code_set == CodeSet::Binary {
            for b in &d.value {
                id.push_str(&format!("{b:02x}"));
            }
        } else {
            id.push_str(&ascii(&d.value));
        }
        return Some(id);
    }
    None
}

/// The fallback WWID: `S`, vendor and product from the standard INQUIRY data, and the
/// Unit Serial Number page (VPD 0x80, SPC-4 §7.8.15).
pub fn from_serial(p80: &[u8], inquiry: &[u8]) -> Option<String> {
    if p80.len() < 4 || p80[1] != page::UNIT_SERIAL || inquiry.len() < 32 {
        return None;
    }
    let len = (p80[3] as usize).min(p80.len() - 4);
    Some(format!(
        "S{}{}",
        ascii(&inquiry[8..32]),
        ascii(&p80[4..4 + len])
    ))
}

/// udev's `ID_SERIAL` spelling (`scsi_id --export`): runs of white space become one `_`.
pub fn replace_whitespace(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    let mut in_space = false;
    for c in id.trim().chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push('_');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ds: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (code_set, assoc_type, v) in ds {
            body.extend_from_slice(&[*code_set, *assoc_type, 0, v.len() as u8]);
            body.extend_from_slice(v);
        }
        let mut p = vec![0, 0x83];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend(body);
        p
    }

    #[test]
    fn tgt_lun_gives_the_naa6_wwid() {
        let mut t10 = b"IET     00010001".to_vec();
        t10.resize(36, 0);
        let naa3 = [0x30, 0, 0, 0x01, 0, 0, 0, 0x01];
        let naa6 = [0x60, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0, 0, 0, 0, 0x01, 0, 0x01];
        let p = page(&[(2, 0x01, &t10), (1, 0x03, &naa3), (1, 0x03, &naa6)]);
        assert_eq!(
            wwid(&p, None, &[]).as_deref(),
            Some("360000000000000000e00000000010001")
        );
        // Old tgt (T10 designator only): 1 + the vendor identification.
        let p = page(&[(2, 0x01, &t10)]);
        let id = wwid(&p, None, &[]).unwrap();
        assert_eq!(id, "1IET     00010001");
        assert_eq!(replace_whitespace(&id), "1IET_00010001");
    }

    /// The page the target emits gives the WWID the initiator expects, with or without
    /// the target port designators ALUA adds.
    #[test]
    fn target_page_gives_tgt_wwid() {
        use crate::scsi::vpd::{self, Identity};
        let id = Identity {
            device_type: vpd::TYPE_DISK,
            removable: false,
            vendor: "IET".into(),
            product: "VIRTUAL-DISK".into(),
            revision: "0001".into(),
            scsi_id: Identity::tgt_scsi_id(1, 1),
            serial: Identity::tgt_serial(1, 1),
            tid: 1,
            lun: 1,
        };
        let want = Some("360000000000000000e00000000010001");
        assert_eq!(
            wwid(&vpd::device_identification(&id), None, &[]).as_deref(),
            want
        );
        let mut page = DeviceIdPage::parse(&vpd::device_identification(&id)).unwrap();
        page.designators.extend(vpd::target_port_designators(2));
        assert_eq!(wwid(&page.emit(), None, &[]).as_deref(), want);
    }

    #[test]
    fn order_association_and_fallbacks() {
        // A target-port designator (association 1) is never the WWID.
        let p = page(&[(1, 0x13, &[0x60; 16]), (1, 0x02, &[1, 2, 3, 4, 5, 6, 7, 8])]);
        assert_eq!(wwid(&p, None, &[]).as_deref(), Some("20102030405060708"));
        // NAA 5 beats EUI-64, NAA 6 beats NAA 5 whatever the order in the page.
        let naa5 = [0x50, 1, 2, 3, 4, 5, 6, 7];
        let p = page(&[(1, 0x02, &[9; 8]), (1, 0x03, &naa5)]);
        assert_eq!(wwid(&p, None, &[]).as_deref(), Some("35001020304050607"));
        // No page 0x83 designator: VPD 0x80 with vendor and product.
        let mut inq = vec![0u8; 36];
        inq[8..16].copy_from_slice(b"IET     ");
        inq[16..32].copy_from_slice(b"VIRTUAL-DISK    ");
        let mut p80 = vec![0, 0x80, 0, 36];
        p80.extend_from_slice(&[b' '; 30]);
        p80.extend_from_slice(b"beaf11");
        let id = wwid(&page(&[]), Some(&p80), &inq).unwrap();
        assert_eq!(replace_whitespace(&id), "SIET_VIRTUAL-DISK_beaf11");
        assert_eq!(wwid(&page(&[]), None, &inq), None);
        // Truncated pages do not panic.
        assert_eq!(wwid(&[0, 0x83, 0, 40, 1, 3, 0, 16, 0x60], None, &[]), None);
    }
}
