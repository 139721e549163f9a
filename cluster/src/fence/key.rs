//! fence_scsi's reservation keys (dlm.md §3.1; fence_scsi.py `generate_key`): 8 hex
//! digits of which only 32 of SPC-4's 64 key bits are used.
//!
//! - `key_value=id` (the default): the first 4 hex digits of md5(cluster name), then the
//!   node's *position* in `corosync-cmapctl nodelist` as 4 decimal digits
//!   (`"%.4s%.4d"`). The position, not the node id: fence_scsi matches
//!   `nodelist.node.<pos>.name`. Removing a node without a full restart shifts it.
//! - `key_value=hash`: the first 4 hex digits of md5(cluster name), then the first 4 of
//!   md5(node name).
//!
//! Leading zeros are stripped (`lstrip('0')`), and a key of 0 is refused, as a PR key 0
//! means "no key" (SPC-4 §5.13.7).

use md5::{Digest, Md5};

use crate::{Error, Result};

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A reservation key as fence_scsi writes it: lowercase hex without leading zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub u64);

impl Key {
    /// A key given as hex (`--key`, the key file), with or without `0x` and leading zeros.
    pub fn parse(s: &str) -> Result<Key> {
        let t = s.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let k = u64::from_str_radix(t, 16).map_err(|_| {
            Error::Usage(format!(
                "Failed: key '{s}' is not a hex number of at most 16 digits"
            ))
        })?;
        if k == 0 {
            return Err(Error::Usage("Failed: key cannot be 0".into()));
        }
        Ok(Key(k))
    }

    /// `key_value=id`: cluster hash + the node's nodelist position.
    pub fn from_id(cluster_name: &str, position: u32) -> Result<Key> {
        Key::parse(&format!("{:.4}{:04}", md5_hex(cluster_name), position))
    }

    /// `key_value=hash`: cluster hash + node name hash.
    pub fn from_hash(cluster_name: &str, node_name: &str) -> Result<Key> {
        Key::parse(&format!(
            "{:.4}{:.4}",
            md5_hex(cluster_name),
            md5_hex(node_name)
        ))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_md5() {
        // RFC 1321 §A.5 test suite.
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn keys_from_the_formula() {
        // md5("abc") = 900150983cd2..., md5("") = d41d8cd9...
        assert_eq!(Key::from_id("abc", 1).unwrap(), Key(0x9001_0001));
        assert_eq!(Key::from_id("abc", 12).unwrap().to_string(), "90010012");
        assert_eq!(Key::from_hash("abc", "").unwrap(), Key(0x9001_d41d));
        // md5sum(1): md5("hydra") = 84366803..., md5("node1") = 164546f6...
        assert_eq!(Key::from_hash("hydra", "node1").unwrap(), Key(0x8436_1645));
        assert_eq!(Key::from_id("hydra", 2).unwrap().to_string(), "84360002");
        // Position 0 is a valid id; only the whole key may not be 0.
        assert_eq!(Key::from_id("abc", 0).unwrap(), Key(0x9001_0000));
    }

    #[test]
    fn leading_zeros_and_zero() {
        assert_eq!(Key::parse("00ab").unwrap().to_string(), "ab");
        assert_eq!(Key::parse("0x5E2A0001").unwrap(), Key(0x5e2a0001));
        assert!(Key::parse("0").is_err());
        assert!(Key::parse("0000").is_err());
        assert!(Key::parse("xyz").is_err());
        assert!(Key::parse("11112222333344445").is_err());
    }
}
