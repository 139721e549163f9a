//! Whatever a target sends in full feature phase, after reads and writes were issued:
//! the initiator's session core never panics, and refuses what does not fit with an
//! error (the driver then drops the connection).
#![no_main]
use bytes::{Bytes, BytesMut};
use hydra_initiator::session::{Command, Core};
use hydra_proto::framing::{try_frame, Digests};
use hydra_proto::negotiate::{LocalParams, Negotiation, Role, SessionType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = Negotiation::new(Role::Initiator, SessionType::Normal, LocalParams::default()).params();
    let mut core = Core::new(params, 1, 1, 64);
    core.submit(Command { lun: 1, cdb: vec![0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], data_out: Bytes::new(), read_len: 4096 });
    core.submit(Command { lun: 1, cdb: vec![0x2a, 0, 0, 0, 0, 0, 0, 0, 128, 0], data_out: Bytes::from(vec![7u8; 65536]), read_len: 0 });
    let _ = core.take_output();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = try_frame(&mut buf, Digests::default(), 1 << 20) {
        if core.receive(f).is_err() {
            break;
        }
        let _ = core.take_output();
    }
    assert!(core.outstanding() <= 2);
});
