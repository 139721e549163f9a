//! Initiator access control: the `initiator-address` and `initiator-name` lists of a
//! target.
//!
//! **hydra requires a match of every list that is configured**: the address list if the
//! target has one, the name list if it has one; with neither, the target is open, as in
//! tgt. tgt ≥ 1.0.83 ORs the two lists, and tgt-admin binds `ALL` addresses to every
//! target without an `initiator-address` line, so in tgt a target restricted only by
//! `initiator-name` admits everyone. hydra closes that hole on purpose.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One `initiator-address` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddrPattern {
    /// `ALL`
    All,
    /// An address and prefix length (a plain address has the full length).
    Net { addr: IpAddr, prefix: u8 },
}

impl AddrPattern {
    /// Parse `ALL`, `192.168.4.1`, `10.0.0.0/8`, `fe80::1`, `[fe80::1]`, `2001:db8::/32`.
    pub fn parse(s: &str) -> Result<AddrPattern, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ALL") {
            return Ok(AddrPattern::All);
        }
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = a.parse().map_err(|_| format!("'{s}' is not an IP address, a CIDR network or ALL"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| format!("'{s}': prefix length must be 0..{max}"))?,
            None => max,
        };
        Ok(AddrPattern::Net { addr, prefix })
    }

    /// Whether `ip` is inside this pattern (IPv4-mapped IPv6 peers match IPv4 patterns).
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match self {
            AddrPattern::All => true,
            AddrPattern::Net { addr, prefix } => match (addr, ip) {
                (IpAddr::V4(n), IpAddr::V4(i)) => mask_eq(&n.octets(), &i.octets(), *prefix),
                (IpAddr::V6(n), IpAddr::V6(i)) => mask_eq(&n.octets(), &i.octets(), *prefix),
                _ => false,
            },
        }
    }
}

fn mask_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rem = prefix % 8;
    rem == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rem)) == 0
}

impl fmt::Display for AddrPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrPattern::All => write!(f, "ALL"),
            AddrPattern::Net { addr, prefix } => {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if *prefix == max {
                    write!(f, "{addr}")
                } else {
                    write!(f, "{addr}/{prefix}")
                }
            }
        }
    }
}

/// A target's access lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub addresses: Vec<AddrPattern>,
    pub names: Vec<String>,
}

impl Acl {
    /// No lists: everyone may log in.
    pub fn open() -> Acl {
        Acl::default()
    }

    /// Every configured list must match (see the module doc).
    pub fn allows(&self, addr: IpAddr, initiator_name: &str) -> bool {
        let addr_ok = self.addresses.is_empty() || self.addresses.iter().any(|p| p.matches(addr));
        // iSCSI names are case-insensitive (RFC 3722 stringprep lowercases them).
        let name_ok = self.names.is_empty() || self.names.iter().any(|n| n.eq_ignore_ascii_case(initiator_name));
        addr_ok && name_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn patterns() {
        let p = AddrPattern::parse("192.168.4.0/24").unwrap();
        assert!(p.matches(ip("192.168.4.77")) && !p.matches(ip("192.168.5.1")));
        assert!(p.matches(ip("::ffff:192.168.4.9")), "dual-stack sockets report v4-mapped peers");
        let p = AddrPattern::parse("[fe80::1]").unwrap();
        assert!(p.matches(ip("fe80::1")) && !p.matches(ip("fe80::2")));
        assert!(AddrPattern::parse("2001:db8::/33").unwrap().matches(ip("2001:db8:7fff::1")));
        assert!(!AddrPattern::parse("2001:db8::/33").unwrap().matches(ip("2001:db8:8000::1")));
        assert!(AddrPattern::parse("all").unwrap().matches(ip("10.200.0.1")));
        assert!(AddrPattern::parse("10.0.0.0/33").is_err());
        assert!(AddrPattern::parse("host.example").is_err());
        assert_eq!(AddrPattern::parse("10.1.0.0/16").unwrap().to_string(), "10.1.0.0/16");
    }

    /// Truth table, including the case where tgt (OR semantics) would admit.
    #[test]
    fn every_configured_list_must_match() {
        let a = "10.200.0.5";
        let name_only = Acl { addresses: vec![], names: vec!["iqn.a".into()] };
        assert!(name_only.allows(ip(a), "IQN.A"));
        assert!(!name_only.allows(ip(a), "iqn.b"), "tgt would admit iqn.b here");
        let both = Acl { addresses: vec![AddrPattern::parse("10.200.0.0/24").unwrap()], names: vec!["iqn.a".into()] };
        assert!(both.allows(ip(a), "iqn.a"));
        assert!(!both.allows(ip(a), "iqn.b"), "address matches, name does not: tgt would admit");
        assert!(!both.allows(ip("10.200.1.5"), "iqn.a"), "name matches, address does not: tgt would admit");
        assert!(Acl::open().allows(ip(a), "anyone"));
        let addr_only = Acl { addresses: vec![AddrPattern::parse("127.0.0.1").unwrap()], names: vec![] };
        assert!(addr_only.allows(ip("127.0.0.1"), "x") && !addr_only.allows(ip("127.0.0.2"), "x"));
    }
}
