//! Any node record file, discovery record file or iscsid.conf: the parsers never panic,
//! and a record they accept is written back and read again to the same record.
#![no_main]
use hydra_initiator::record::{parse_iscsid_conf, Record, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for ty in [RecordType::Node, RecordType::Discovery] {
        if let Ok(r) = Record::parse(ty, text) {
            let again = Record::parse(ty, &r.to_file()).expect("a written record parses");
            assert_eq!(again, r);
            let _ = r.display(false);
            if ty == RecordType::Node {
                let _ = (r.local_params(), r.chap(), r.timeouts(), r.portal());
            }
        }
    }
    let _ = parse_iscsid_conf("iscsid.conf", text);
});
