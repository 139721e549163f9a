//! Any line on iscsid's control socket: reading it as a request never panics, and an
//! accepted request makes one line that reads back as the same request.
#![no_main]
use hydra_daemon::control::{parse, request_line};
use hydra_initiator::ipc::Iscsid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = parse::<Iscsid>(line) {
        let out = request_line::<Iscsid>(&r);
        assert_eq!(out.matches('\n').count(), 1);
        assert_eq!(parse::<Iscsid>(&out).unwrap(), r);
    }
});
