//! A wwids file: reading never panics; what is read writes back to text that lists the
//! same WWIDs; adding and removing keep the file readable.
#![no_main]
use std::path::Path;

use hydra_multipath::wwids::Wwids;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/fuzz/wwids");
    let (mut w, _) = Wwids::parse(data, file);
    let listed: Vec<String> = w.iter().map(str::to_string).collect();
    let (again, _) = Wwids::parse(w.to_text().as_bytes(), file);
    assert_eq!(again.iter().collect::<Vec<_>>(), listed.iter().map(String::as_str).collect::<Vec<_>>());
    w.add("3fuzz").expect("a plain WWID is storable");
    assert!(w.contains("3fuzz"));
    if let Some(first) = listed.first() {
        assert!(w.remove(first));
        assert!(!w.contains(first));
    }
    let (after, _) = Wwids::parse(w.to_text().as_bytes(), file);
    assert_eq!(after.iter().collect::<Vec<_>>(), w.iter().collect::<Vec<_>>());
});
