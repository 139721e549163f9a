//! Any line on iscsid's control socket: decoding never panics, and an accepted request
//! encodes to one line that decodes to the same request.
#![no_main]
use hydra_initiator::ipc::{decode, encode, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = decode::<Request>(line) {
        let out = encode(&r);
        assert_eq!(out.matches('\n').count(), 1);
        assert_eq!(decode::<Request>(&out).unwrap(), r);
    }
});
