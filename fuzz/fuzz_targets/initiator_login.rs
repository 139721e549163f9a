//! Any sequence of Login Responses (headers and key=value data) against the initiator's
//! login machine, with and without CHAP: never panics, and a login only completes
//! through a success status.
#![no_main]
use hydra_initiator::login::{Chap, Login, LoginConfig, Step};
use hydra_proto::negotiate::LocalParams;
use hydra_proto::pdu::Pdu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let chap = (data[0] & 1 == 1).then(|| Chap {
        user: "u".into(),
        secret: "secretsecret12".into(),
        mutual: (data[0] & 2 == 2).then(|| ("t".into(), "targetsecret12".into())),
    });
    let cfg = LoginConfig {
        initiator_name: "iqn.fuzz:i".into(),
        target_name: Some("iqn.fuzz:t".into()),
        isid: [0x40, 0, 0, 0, 0, 1],
        tsih: 0,
        chap,
        params: LocalParams::default(),
    };
    let mut login = Login::new(cfg, [9; 32]);
    let _ = login.start();
    let mut rest = &data[1..];
    while rest.len() >= 50 {
        let (bhs, tail) = rest.split_at(48);
        let dlen = (tail[0] as usize).min(tail.len() - 1);
        let (keys, after) = tail[1..].split_at(dlen);
        rest = after;
        let Ok(Pdu::LoginResponse(r)) = Pdu::parse(bhs) else { continue };
        match login.receive(&r, keys) {
            Ok(Step::Done(_)) => {
                assert_eq!((r.status.0, r.status.1), (0, 0));
                return;
            }
            Ok(Step::Send(..)) => {}
            Err(_) => return,
        }
    }
});
