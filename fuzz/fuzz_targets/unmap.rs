//! UNMAP parameter lists, WRITE SAME and GET LBA STATUS CDBs against a thin LUN: never
//! panics, never grows the backing file, data outside the LUN is never touched.
#![no_main]
use std::sync::OnceLock;

use hydra_target::lun::{IoMode, Lun, LunSettings, ScsiRequest};
use hydra_target::nexus::ItNexus;
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 1 << 20;

fn lun() -> &'static Lun {
    static L: OnceLock<Lun> = OnceLock::new();
    L.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("hydra-fuzz-unmap-{}.img", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
        let mut s = LunSettings::new(&path);
        s.thin_provisioning = true;
        let l = Lun::disk(1, 1, s).unwrap();
        let _ = std::fs::remove_file(&path);
        l
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (head, body) = data.split_at(17);
    let cdb: Vec<u8> = match head[0] % 4 {
        // UNMAP with the fuzzed parameter list (its length from the CDB or the data).
        0 => {
            let len = if head[1] & 1 == 0 { body.len().min(0xffff) as u16 } else { u16::from_be_bytes([head[2], head[3]]) };
            let l = len.to_be_bytes();
            vec![0x42, head[4] & 1, 0, 0, 0, 0, 0, l[0], l[1], 0]
        }
        1 => { let mut c = head[..10].to_vec(); c[0] = 0x41; c }
        2 => { let mut c = head[..16].to_vec(); c[0] = 0x93; c }
        _ => { let mut c = head[..16].to_vec(); c[0] = 0x9e; c[1] = 0x12; c }
    };
    let nexus = ItNexus { initiator: "iqn.fuzz".into(), isid: [0; 6], target_port: 1 };
    let req = ScsiRequest { cdb: &cdb, nexus: &nexus, data_out: body, expected_in: 1 << 16, luns: &[0, 1] };
    let l = lun();
    let out = l.execute(&req, IoMode::Blocking).unwrap();
    assert!(out.data_in.len() <= 1 << 16);
    assert_eq!(l.size_bytes(), SIZE);
});
