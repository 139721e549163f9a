//! Any 48 bytes: parsing a BHS never panics, and what parses re-emits to the same Repr.
#![no_main]
use hydra_proto::pdu::Pdu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Pdu::parse(data) {
        let again = Pdu::parse(&p.emit(data.len() & 0xff_ffff)).expect("emitted header parses");
        assert_eq!(again, p);
    }
});
