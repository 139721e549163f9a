//! Login/Text data segments: the key=value parser and the target's negotiation never
//! panic, and negotiated values stay inside RFC 7143's ranges.
#![no_main]
use hydra_proto::negotiate::{LocalParams, Negotiation, Role, SessionType};
use hydra_proto::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = text::parse(data) {
        let keys: Vec<_> = keys.into_iter().filter(|(k, _)| !hydra_proto::negotiate::is_login_layer_key(k)).collect();
        let mut n = Negotiation::new(Role::Target, SessionType::Normal, LocalParams::default());
        let _ = n.receive(&keys);
        let _ = n.proposals();
        let p = n.params();
        assert!(p.first_burst_length <= p.max_burst_length);
        assert!(p.max_xmit_data_segment_length >= 512);
    }
});
