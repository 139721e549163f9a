//! multipath.conf text (main file, and drop-ins after each 0xff byte): the parser
//! returns a configuration or an error naming a line, never panics; what parses prints
//! (`multipath -t`) to text that parses back and prints the same; resolving settings
//! and the blacklist for a few paths never panics.
#![no_main]
use std::path::{Path, PathBuf};

use hydra_multipath::config::{print::print_config, Config, PathFacts, PathIdentity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let main = parts.next().unwrap_or_default();
    let names: Vec<PathBuf> = (0..8).map(|i| PathBuf::from(format!("/fuzz/conf.d/{i}.conf"))).collect();
    let dropins: Vec<(&Path, &[u8])> = names.iter().map(PathBuf::as_path).zip(parts).collect();
    let loaded = match Config::parse(Some((Path::new("/fuzz/multipath.conf"), main)), &dropins) {
        Ok(l) => l,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    hydra_multipath::Error::Value { line, .. }
                        | hydra_multipath::Error::MissingValue { line, .. } if line >= 1
                ),
                "{e:?}"
            );
            let _ = e.to_string();
            return;
        }
    };
    let cfg = loaded.config;
    let text = print_config(&cfg);
    let again = Config::parse(Some((Path::new("/fuzz/printed.conf"), text.as_bytes())), &[])
        .unwrap_or_else(|e| panic!("the printed config does not parse: {e}\n{text}"));
    assert_eq!(print_config(&again.config), text, "print/parse changed the config");
    let wwids: Vec<String> = cfg
        .multipaths
        .iter()
        .filter_map(|m| m.wwid().map(str::to_string))
        .chain(["360000000000000000e00000000010001".to_string()])
        .collect();
    for wwid in &wwids {
        for (vendor, product) in [("IET", "VIRTUAL-DISK"), ("LIO-ORG", "x"), ("", "")] {
            let id = PathIdentity {
                wwid,
                vendor,
                product,
                revision: "0001",
                protocol: "scsi:iscsi",
            };
            let s = cfg.resolve(&id);
            let _ = (s.prio_for(true), s.checker_for(false));
            let _ = cfg.filter(&PathFacts {
                wwid: Some(wwid),
                vendor: Some(vendor),
                product: Some(product),
                protocol: Some("scsi:iscsi"),
                devnode: Some("sda"),
                ..PathFacts::default()
            });
        }
    }
    let _ = cfg.globals();
});
