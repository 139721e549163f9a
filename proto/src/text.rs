//! Text data segments (RFC 7143 §6.1): `key=value` pairs, each terminated by a NUL, used
//! by Login and Text PDUs. Plus the value grammar helpers: numbers, booleans, lists and
//! binary values (`0x` hex / `0b` base64, §6.1 "binary-value").

use crate::{Error, Result};

/// RFC 7143 §6.1: key names are at most 63 bytes.
pub const MAX_KEY_LEN: usize = 63;
/// Ordinary values are at most 255 bytes; binary values (CHAP) may be up to 8192 digits
/// (§6.1 "large-binary-value"), which with the prefix fits 8194 bytes.
pub const MAX_VALUE_LEN: usize = 255;
const MAX_LARGE_VALUE_LEN: usize = 8194;

fn key_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_')
}

/// Parse `key=value\0...`. Trailing NUL padding is tolerated; a key sent twice in one
/// text is refused (§6.2: keys are not repeated unless their type allows it — no
/// negotiated key does).
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>> {
    parse_with(data, false)
}

/// Parse a SendTargets answer, where TargetName and TargetAddress repeat (§12.3).
pub fn parse_repeated(data: &[u8]) -> Result<Vec<(String, String)>> {
    parse_with(data, true)
}

fn parse_with(data: &[u8], repeats: bool) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for raw in data.split(|b| *b == 0) {
        if raw.is_empty() {
            continue;
        }
        let eq = raw.iter().position(|b| *b == b'=').ok_or_else(|| {
            Error::malformed(
                "text key",
                format!("'{}' has no '='", String::from_utf8_lossy(raw)),
            )
        })?;
        let (k, v) = (&raw[..eq], &raw[eq + 1..]);
        if k.is_empty() || k.len() > MAX_KEY_LEN || !k.iter().all(|c| key_char_ok(*c)) {
            return Err(Error::malformed(
                "text key",
                format!("invalid key name '{}'", String::from_utf8_lossy(k)),
            ));
        }
        let key = std::str::from_utf8(k).expect("ASCII checked");
        let limit = if key.starts_with("CHAP_") {
            MAX_LARGE_VALUE_LEN
        } else {
            MAX_VALUE_LEN
        };
        if v.len() > limit {
            return Err(Error::malformed(
                "text value",
                format!("value of {key} is {} bytes (limit {limit})", v.len()),
            ));
        }
        let value = std::str::from_utf8(v)
            .map_err(|_| Error::malformed("text value", format!("value of {key} is not UTF-8")))?;
        if !repeats && out.iter().any(|(k2, _)| k2 == key) {
            return Err(Error::malformed("text key", format!("{key} sent twice")));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Append `key=value\0` for each pair.
pub fn emit<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)], out: &mut Vec<u8>) {
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
}

/// A numerical value: decimal or `0x` hex (§6.1 "numerical-value").
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

/// `Yes` / `No` (§6.1 "boolean-value").
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// `Yes`/`No` for a bool.
pub fn bool_str(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// A binary value: `0x`/`0X` hex digits or `0b`/`0B` base64 (§6.1).
pub fn parse_binary(v: &str) -> Result<Vec<u8>> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        let h = if h.len() % 2 == 1 {
            format!("0{h}")
        } else {
            h.to_string()
        };
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::malformed("binary value", "bad hex digit"))
    } else if let Some(b) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        base64_decode(b).ok_or_else(|| Error::malformed("binary value", "bad base64"))
    } else {
        Err(Error::malformed(
            "binary value",
            format!("'{v}' has neither 0x nor 0b prefix"),
        ))
    }
}

/// `0x` + lower-case hex.
pub fn hex_binary(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_login_text() {
        let t = b"InitiatorName=iqn.1993-08.org.debian:01:abc\0SessionType=Normal\0\0\0";
        let p = parse(t).unwrap();
        assert_eq!(
            p[0],
            (
                "InitiatorName".into(),
                "iqn.1993-08.org.debian:01:abc".into()
            )
        );
        assert_eq!(p[1], ("SessionType".into(), "Normal".into()));
        let mut out = Vec::new();
        emit(&p, &mut out);
        assert_eq!(&out[..], &t[..t.len() - 2]);
    }

    #[test]
    fn refusals() {
        assert!(parse(b"NoEquals\0").is_err());
        assert!(parse(b"=v\0").is_err());
        assert!(parse(b"A=1\0A=2\0").is_err());
        assert!(parse(&[b"K=".as_slice(), &[b'x'; 256], b"\0"].concat()).is_err());
        assert!(parse(b"K=\xff\0").is_err());
        assert!(parse(&[b"CHAP_C=0x".as_slice(), &[b'a'; 2048], b"\0"].concat()).is_ok());
    }

    #[test]
    fn values() {
        assert_eq!(parse_number("8192"), Some(8192));
        assert_eq!(parse_number("0x2000"), Some(8192));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_binary("0x0a0B").unwrap(), vec![0x0a, 0x0b]);
        assert_eq!(parse_binary("0x123").unwrap(), vec![0x01, 0x23]);
        assert_eq!(parse_binary("0bAQID").unwrap(), vec![1, 2, 3]);
        assert!(parse_binary("1234").is_err());
        assert_eq!(hex_binary(&[0, 255]), "0x00ff");
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(pairs in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9.]{0,20}", "[ -~&&[^=]]{0,40}", 0..8)) {
            let v: Vec<(String, String)> = pairs.into_iter().collect();
            let mut out = Vec::new();
            emit(&v, &mut out);
            prop_assert_eq!(parse(&out).unwrap(), v);
        }
    }
}
