//! Any bytes as persistent reservation data (SPC-4 §6.15, §6.16): the PR OUT parameter
//! lists the target parses and the PR IN answers the initiator parses. Nothing panics,
//! and whatever parses emits bytes that parse to the same value.
#![no_main]
use hydra_proto::scsi::pr::{
    FullStatus, InCdb, MoveParams, OutCdb, OutParams, ReadKeys, ReadReservation,
    ReportCapabilities, TransportId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, b)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(p) = OutParams::parse(b) {
                assert_eq!(OutParams::parse(&p.emit()), Ok(p));
            }
        }
        1 => {
            if let Ok(m) = MoveParams::parse(b) {
                assert_eq!(MoveParams::parse(&m.emit()), Ok(m));
            }
        }
        2 => {
            if let Ok((t, n)) = TransportId::parse(b, 0) {
                assert!(n <= b.len());
                let e = t.to_bytes();
                assert_eq!(TransportId::parse(&e, 0), Ok((t, e.len())));
            }
        }
        3 => {
            if let Ok(k) = ReadKeys::parse(b) {
                assert_eq!(ReadKeys::parse(&k.emit()), Ok(k));
            }
        }
        4 => {
            if let Ok(r) = ReadReservation::parse(b) {
                assert_eq!(ReadReservation::parse(&r.emit()), Ok(r));
            }
        }
        5 => {
            if let Ok(c) = ReportCapabilities::parse(b) {
                assert_eq!(ReportCapabilities::parse(&c.emit()), Ok(c));
            }
        }
        6 => {
            if let Ok(s) = FullStatus::parse(b) {
                assert_eq!(FullStatus::parse(&s.emit()), Ok(s));
            }
        }
        7 => {
            if let Ok(c) = OutCdb::parse(b) {
                assert_eq!(OutCdb::parse(&c.emit()), Ok(c));
            }
        }
        _ => {
            if let Ok(c) = InCdb::parse(b) {
                assert_eq!(InCdb::parse(&c.emit()), Ok(c));
            }
        }
    }
});
