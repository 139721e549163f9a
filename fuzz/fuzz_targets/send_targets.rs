//! Any SendTargets answer text: the initiator's parser never panics, and every portal
//! it returns belongs to a target.
#![no_main]
use hydra_initiator::discovery::parse_send_targets;
use hydra_proto::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = "10.200.0.1:3260".parse().unwrap();
    if let Ok(keys) = text::parse_repeated(data) {
        if let Ok(targets) = parse_send_targets(&keys, at) {
            assert!(targets.iter().all(|t| !t.portals.is_empty()));
        }
    }
});
