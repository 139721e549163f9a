//! The client socket, both directions: arbitrary bytes cut into `ClientFrame`s and into
//! `DaemonFrame`s never panic; a frame that decodes re-encodes to exactly its bytes and
//! decodes again equal.
#![no_main]
use hydra_dlm::api::{ClientFrame, DaemonFrame};
use hydra_dlm::wire::{put_frame, take_frame, Wire};
use libfuzzer_sys::fuzz_target;

fn frames<T: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let mut rest = data;
    while let Some((x, used)) = take_frame::<T>(rest).unwrap_or_else(|e| {
        assert!(matches!(e, hydra_dlm::Error::Protocol(_)), "{e:?}");
        None
    }) {
        let mut again = Vec::new();
        put_frame(&x, &mut again);
        assert_eq!(again, rest[..used], "{x:?}");
        assert_eq!(T::decode(&again[4..]).unwrap(), x);
        rest = &rest[used..];
    }
    if let Ok(x) = T::decode(data) {
        let mut again = Vec::new();
        x.encode(&mut again);
        assert_eq!(again, data, "{x:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    frames::<ClientFrame>(data);
    frames::<DaemonFrame>(data);
});
