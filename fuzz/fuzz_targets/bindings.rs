//! A bindings file: reading never panics; what is read writes back to text that reads
//! to the same bindings without complaint; a new WWID gets the lowest free name.
#![no_main]
use std::path::Path;

use hydra_multipath::bindings::{scan_devname, Bindings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/fuzz/bindings");
    let (mut b, _) = Bindings::parse(data, file, None);
    let text = b.to_text();
    let (again, warnings) = Bindings::parse(text.as_bytes(), file, None);
    assert!(warnings.is_empty(), "{warnings:?}\n{text}");
    assert_eq!(again.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
    let used: Vec<u32> = b.iter().filter_map(|x| scan_devname(&x.alias, "mpath")).collect();
    let wwid = "3fuzz-new-wwid";
    if b.alias_of(wwid).is_none() {
        let alias = b.alias_for(wwid, "mpath", |_| false).expect("a free name");
        let id = scan_devname(&alias, "mpath").expect("an mpath name");
        assert!(!used.contains(&id) && (1..id).all(|i| used.contains(&i)));
    }
});
