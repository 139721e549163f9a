//! EXTENDED COPY parameter lists (and RECEIVE COPY RESULTS) against two LUNs of one
//! target: never panics, never grows either backing file.
#![no_main]
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use hydra_target::lun::{IoMode, Lun, LunMap, LunSettings, ScsiRequest};
use hydra_target::nexus::ItNexus;
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 1 << 20;

fn luns() -> &'static (Arc<LunMap>, Arc<Lun>) {
    static L: OnceLock<(Arc<LunMap>, Arc<Lun>)> = OnceLock::new();
    L.get_or_init(|| {
        let mut map = BTreeMap::new();
        for n in 1..=2u64 {
            let path = std::env::temp_dir().join(format!("hydra-fuzz-xcopy-{}-{n}.img", std::process::id()));
            std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
            map.insert(n, Arc::new(Lun::disk(1, n, LunSettings::new(&path)).unwrap()));
            let _ = std::fs::remove_file(&path);
        }
        let first = map[&1].clone();
        let map = Arc::new(RwLock::new(map));
        for l in map.read().unwrap().values() {
            l.join_target(&map);
        }
        (map, first)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let (map, lun) = luns();
    let mut cdb = [0u8; 16];
    if data[0] & 1 == 0 {
        cdb[0] = 0x83;
        cdb[10..14].copy_from_slice(&((data.len() - 1) as u32).to_be_bytes());
    } else {
        cdb[0] = 0x84;
        cdb[1] = data[0] >> 1 & 3;
        cdb[2] = data.get(1).copied().unwrap_or(0);
        cdb[13] = 0xff;
    }
    let nexus = ItNexus { initiator: "iqn.fuzz".into(), isid: [0; 6], target_port: 1 };
    let req = ScsiRequest { cdb: &cdb, nexus: &nexus, data_out: &data[1..], expected_in: 255, luns: &[0, 1, 2] };
    let out = lun.execute(&req, IoMode::Blocking).unwrap();
    assert!(out.data_in.len() <= 255);
    for l in map.read().unwrap().values() {
        assert_eq!(l.size_bytes(), SIZE);
    }
});
