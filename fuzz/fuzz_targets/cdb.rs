//! Any CDB (and data-out) against a disk LUN on a small temp file: never panics, never
//! returns data beyond the CDB's allocation/transfer length, never grows the file.
#![no_main]
use std::sync::OnceLock;

use hydra_target::lun::{IoMode, Lun, LunSettings, ScsiRequest};
use hydra_target::nexus::ItNexus;
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 1 << 20;

fn lun() -> &'static Lun {
    static L: OnceLock<Lun> = OnceLock::new();
    L.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("hydra-fuzz-cdb-{}.img", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(SIZE).unwrap();
        let l = Lun::disk(1, 1, LunSettings::new(&path)).unwrap();
        // The LUN keeps its descriptor; the name goes now so no run leaves a file behind.
        let _ = std::fs::remove_file(&path);
        l
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let cdb_len = [6, 10, 12, 16][(data[0] & 3) as usize].min(data.len() - 1);
    let cdb = &data[1..1 + cdb_len];
    let data_out = &data[1 + cdb_len..];
    let nexus = ItNexus { initiator: "iqn.fuzz".into(), isid: [0; 6], target_port: 1 };
    let req = ScsiRequest { cdb, nexus: &nexus, data_out, expected_in: 1 << 20, luns: &[0, 1] };
    let l = lun();
    let out = l.execute(&req, IoMode::Blocking).unwrap();
    assert!(out.data_in.len() <= 32 << 20);
    assert_eq!(l.size_bytes(), SIZE);
});
