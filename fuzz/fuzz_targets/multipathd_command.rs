//! multipathd's command words (`hydra multipathd show paths format "%d"`, `-k"…"`): any
//! words parse to a request or a refusal, never a panic; a request survives the control
//! socket's JSON line unchanged.
#![no_main]
use hydra_multipath::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split_whitespace().collect();
    if let Ok(req) = Request::parse_command(&words) {
        let line = serde_json::to_string(&req).expect("a request serializes");
        let back: Request = serde_json::from_str(&line).expect("and reads back");
        assert_eq!(back, req);
    }
});
