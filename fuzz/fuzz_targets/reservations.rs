//! Any sequence of PERSISTENT RESERVE OUT/IN, RESERVE/RELEASE and reads/writes from three
//! I_T nexuses against one LUN with APTPL persistence: never panics, the state stays
//! consistent (the holder is a registrant), and what is saved is what is kept.
#![no_main]
use std::sync::OnceLock;

use hydra_target::lun::{IoMode, Lun, LunSettings, ScsiRequest};
use hydra_target::nexus::ItNexus;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fuzz_target!(|data: &[u8]| {
    let img = dir().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let state = dir().join("pr.json");
    let _ = std::fs::remove_file(&state);
    let lun = Lun::disk(1, 1, LunSettings::new(&img)).unwrap().with_reservations_file(state.clone());
    let nexuses: Vec<ItNexus> = (0..3u8)
        .map(|i| ItNexus { initiator: format!("iqn.fuzz:{}", i % 2), isid: [0, 0, 0, 0, 0, i], target_port: 1 + (i as u16 & 1) })
        .collect();
    let mut rest = data;
    while rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        let n = &nexuses[(head[0] % 3) as usize];
        let plen = (head[3] as usize % 64).min(tail.len());
        let (params, after) = tail.split_at(plen);
        rest = after;
        let cdb: Vec<u8> = match head[1] % 6 {
            0 => vec![0x5f, head[2] & 0x1f, head[2] >> 4 | (head[3] & 0x10), 0, 0, 0, 0, 0, plen as u8, 0],
            1 => vec![0x5e, head[2] & 0x07, 0, 0, 0, 0, 0, 0x10, 0, 0],
            2 => vec![0x16, 0, 0, 0, 0, 0],
            3 => vec![0x17, 0, 0, 0, 0, 0],
            4 => vec![0x28, 0, 0, 0, 0, head[2], 0, 0, 1, 0],
            _ => vec![0x2a, 0, 0, 0, 0, head[2], 0, 0, 1, 0],
        };
        let write_data = [0u8; 512];
        let data_out = if cdb[0] == 0x2a { &write_data[..] } else { params };
        let req = ScsiRequest { cdb: &cdb, nexus: n, data_out, expected_in: 8192, luns: &[0, 1] };
        let out = lun.execute(&req, IoMode::Blocking).unwrap();
        assert!(out.data_in.len() <= 8192);
        let s = lun.reservations();
        if let Some(r) = &s.reservation {
            assert!(r.holder < s.registrants.len() || r.rtype.all_registrants());
            assert!(!s.registrants.is_empty());
        }
    }
    // What APTPL saved comes back.
    let s = lun.reservations();
    drop(lun);
    let again = Lun::disk(1, 1, LunSettings::new(&img)).unwrap().with_reservations_file(state.clone());
    if s.aptpl {
        assert_eq!(again.reservations(), s);
    } else {
        assert!(!state.exists());
    }
});
