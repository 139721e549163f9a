//! A sequence of Login Requests against the target's login state machine (targets with
//! and without CHAP): never panics; a full-feature outcome always has a non-zero TSIH
//! and consistent negotiated limits.
#![no_main]
use std::sync::Arc;

use hydra_proto::pdu::{Pdu, Repr};
use hydra_target::config::Account;
use hydra_target::iscsi::login::{LoginEnv, Step, TargetLogin};
use hydra_target::registry::{Registry, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reg = Arc::new(Registry::default());
    let open = Target::new(1, "iqn.2026-11.org.hydra:open".into(), reg.alua.clone());
    let chap = Target::new(2, "iqn.2026-11.org.hydra:chap".into(), reg.alua.clone());
    chap.incoming.write().unwrap().push(Account { user: "u".into(), password: "secretsecret".into() });
    reg.targets.write().unwrap().insert(1, Arc::new(open));
    reg.targets.write().unwrap().insert(2, Arc::new(chap));
    let mut login = TargetLogin::new(LoginEnv {
        registry: reg,
        peer: "127.0.0.1:1".parse().unwrap(),
        tpgt: 1,
        random: [7; 33],
        queue_depth: 128,
    });
    // Input: repeated [u16 data length][48-byte BHS][data].
    let mut rest = data;
    while rest.len() >= 50 {
        let dlen = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 50);
        let mut bhs = [0u8; 48];
        bhs.copy_from_slice(&rest[2..50]);
        bhs[0] = 0x43;
        let text = &rest[50..50 + dlen];
        rest = &rest[50 + dlen..];
        let Ok(Pdu::LoginRequest(req)) = Pdu::parse(&bhs) else { continue };
        match login.handle(&req, text) {
            Step::Continue(r) => {
                let _ = r.hdr.emit(r.data.len());
            }
            Step::FullFeature(r, est) => {
                assert_ne!(r.hdr.tsih, 0);
                assert!(est.params.first_burst_length <= est.params.max_burst_length);
                return;
            }
            Step::Failed(_, _) => return,
        }
    }
});
