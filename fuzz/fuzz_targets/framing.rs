//! A byte stream cut into PDUs with and without digests: never panics, never yields a
//! data segment longer than the limit, always makes progress or asks for more.
#![no_main]
use bytes::BytesMut;
use hydra_target::iscsi::framing::{try_frame, Digests};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let digests = Digests { header: data[0] & 1 != 0, data: data[0] & 2 != 0 };
    let mut buf = BytesMut::from(&data[1..]);
    while let Ok(Some(f)) = try_frame(&mut buf, digests, 8192) {
        assert!(f.data.len() <= 8192);
    }
});
