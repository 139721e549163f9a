//! targets.conf text: the parser returns a config or an error naming a line; it never
//! panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = hydra_target::config::parse_str(s, std::path::Path::new("/fuzz/targets.conf")) {
            let _ = e.to_string();
        }
    }
});
