//! CPG payloads (one bare message each): arbitrary bytes as `LsCpg` and as `DaemonCpg`
//! never panic, and what decodes re-encodes to the same bytes and decodes again equal.
#![no_main]
use hydra_dlm::message::{DaemonCpg, LsCpg};
use hydra_dlm::wire::Wire;
use libfuzzer_sys::fuzz_target;

fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match T::decode(data) {
        Ok(x) => {
            let mut again = Vec::new();
            x.encode(&mut again);
            assert_eq!(again, data, "{x:?}");
            assert_eq!(T::decode(&again).unwrap(), x);
        }
        Err(e) => assert!(matches!(e, hydra_dlm::Error::Protocol(_)), "{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<LsCpg>(data);
    round_trip::<DaemonCpg>(data);
});
