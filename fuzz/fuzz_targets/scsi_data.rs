//! Any bytes as the SCSI data an initiator reads (and the target's UNMAP list): sense
//! data, REPORT TARGET PORT GROUPS, the Device Identification page and the WWID derived
//! from it, REPORT LUNS, READ CAPACITY(16), UNMAP. Nothing panics, and whatever parses
//! emits bytes that parse to the same value.
#![no_main]
use hydra_proto::scsi::alua::{RtpgCdb, TargetPortGroups};
use hydra_proto::scsi::capacity::Capacity16;
use hydra_proto::scsi::report_luns::ReportLuns;
use hydra_proto::scsi::unmap::UnmapList;
use hydra_proto::scsi::vpd::DeviceIdPage;
use hydra_proto::scsi::{sense, wwid, Sense};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, b)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            let _ = sense::from_segment(b);
            if let Ok(s) = Sense::parse(b) {
                // Descriptor format carries every field Sense holds.
                assert_eq!(Sense::parse(&s.descriptor()), Ok(s));
            }
        }
        1 => {
            let ext = b.first().is_some_and(|x| x & 1 != 0);
            if let Ok(t) = TargetPortGroups::parse(b, ext) {
                assert_eq!(
                    TargetPortGroups::parse(&t.emit(), t.implicit_transition_time.is_some()),
                    Ok(t)
                );
            }
        }
        2 => {
            if let Ok(p) = DeviceIdPage::parse(b) {
                assert_eq!(DeviceIdPage::parse(&p.emit()), Ok(p));
            }
        }
        3 => {
            let (p83, rest) = b.split_at(b.len() / 2);
            let (p80, inq) = rest.split_at(rest.len() / 2);
            let _ = wwid::wwid(p83, Some(p80), inq);
        }
        4 => {
            if let Ok(r) = ReportLuns::parse(b) {
                assert_eq!(ReportLuns::parse(&r.emit()), Ok(r));
            }
        }
        5 => {
            if let Ok(c) = Capacity16::parse(b) {
                assert_eq!(Capacity16::parse(&c.emit()), Ok(c));
            }
        }
        6 => {
            if let Ok(u) = UnmapList::parse(b) {
                assert_eq!(UnmapList::parse(&u.emit()), Ok(u));
            }
        }
        _ => {
            if let Ok(c) = RtpgCdb::parse(b) {
                assert_eq!(RtpgCdb::parse(&c.emit()), Ok(c));
            }
        }
    }
});
