//! The daemons' TCP stream: arbitrary bytes cut into `PeerFrame`s never panic; a frame
//! that decodes re-encodes to exactly the bytes it came from (the encoding is canonical,
//! so nothing a peer sends can mean two things), and an incomplete frame is only ever
//! "need more".
#![no_main]
use hydra_dlm::wire::{put_frame, take_frame, PeerFrame, Wire, MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match take_frame::<PeerFrame>(rest) {
            Ok(Some((f, used))) => {
                assert!((4..=rest.len()).contains(&used));
                let mut again = Vec::new();
                put_frame(&f, &mut again);
                assert_eq!(again, rest[..used], "{f:?}");
                assert_eq!(PeerFrame::decode(&again[4..]).unwrap(), f);
                rest = &rest[used..];
            }
            Ok(None) => {
                if let Some(p) = rest.first_chunk::<4>() {
                    let len = u32::from_be_bytes(*p) as usize;
                    assert!(len <= MAX_FRAME && rest.len() < 4 + len);
                }
                break;
            }
            Err(e) => {
                assert!(matches!(e, hydra_dlm::Error::Protocol(_)), "{e:?}");
                break;
            }
        }
    }
    // The bytes as one bare payload.
    if let Ok(f) = PeerFrame::decode(data) {
        let mut again = Vec::new();
        f.encode(&mut again);
        assert_eq!(again, data, "{f:?}");
    }
});
