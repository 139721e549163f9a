//! Initiator access control: the `initiator-address` and `initiator-name` lists of a
//! target (targets.conf(5), `tgtadm --op bind -I ADDR` / `-Q NAME`).
//!
//! # Semantics (differ from tgt on purpose)
//!
//! **hydra requires a match of every list that is configured**: the address list if the
//! target has one, the name list if it has one; with neither, the target is open.
//!
//! tgt ≥ 1.0.83 (commit `9fd4a25`) admits an initiator that matches the address list
//! **or** the name list, and tgt-admin binds `ALL` to every target that has no
//! `initiator-address` line. So in tgt a target restricted only by `initiator-name` admits
//! everyone, and a target with both lists admits anyone matching either (checked against
//! Debian's tgtd 1.0.85: with `-Q iqn.x -I 10.9.9.9` bound, `iqn.x` logs in from
//! 127.0.0.1). hydra closes that hole: `ALL` in the address list matches every address,
//! and the name list must still match.
//!
//! Two smaller differences, both on the safe side of an administrator's intent:
//! - Initiator names compare case-insensitively (iSCSI names are case-insensitive:
//!   RFC 3722 stringprep lowercases them); tgt compares them byte for byte.
//! - An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
//!   IPv4 client) matches IPv4 patterns; a pattern written as a mapped address is treated
//!   as the IPv4 address or network it names.
//!
//! Note that a target created with `tgtadm --op new` and no bind is *closed* in tgt (no
//! ACL entry admits nobody); tgt-admin's automatic `bind ALL` is what makes config targets
//! open. [`crate::config`] reproduces that bind (a target without `initiator-address`
//! gets `ALL`, which is also what `show` prints); an `Acl` with no list at all is open
//! too (README: "with neither, the target is open"), rather than closed as in tgt.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// One `initiator-address` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddrPattern {
    /// `ALL`
    All,
    /// An address and prefix length (a plain address has the full length). Host bits
    /// under the prefix are kept as written (tgt keeps the string) and ignored when
    /// matching.
    Net { addr: IpAddr, prefix: u8 },
}

impl AddrPattern {
    /// Parse `ALL`, `192.168.4.1`, `10.0.0.0/8`, `fe80::1`, `[fe80::1]`, `2001:db8::/32`,
    /// `[2001:db8::]/32`.
    pub fn parse(s: &str) -> Result<AddrPattern, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ALL") {
            return Ok(AddrPattern::All);
        }
        let bad = || format!("'{s}' is not an IP address, a CIDR network or ALL");
        let (a, p) = match s.rsplit_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let a = match a.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .filter(|i| i.contains(':'))
                .ok_or_else(bad)?,
            None => a,
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("'{s}': prefix length must be 0..{max}"))?,
            None => max,
        };
        // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
        if let IpAddr::V6(v6) = addr {
            if let Some(v4) = mapped_v4(v6) {
                if prefix >= 96 {
                    return Ok(AddrPattern::Net {
                        addr: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    });
                }
            }
        }
        Ok(AddrPattern::Net { addr, prefix })
    }

    /// Whether `ip` is inside this pattern (IPv4-mapped IPv6 peers match IPv4 patterns).
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
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

/// `::ffff:a.b.c.d` only (not the deprecated IPv4-compatible `::a.b.c.d`).
fn mapped_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    v6.to_ipv4_mapped()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => mapped_v4(v6).map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
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
    /// `ALL`, `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n` (IPv6 without brackets: tgt prints
    /// the string as it was bound, so `[::1]` shows as `[::1]` there and `::1` here).
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
    /// No lists: everyone may log in. (A target that `tgtadm --op new` creates starts
    /// like this; tgt would keep it closed until a bind, and a tgt user binds `ALL` next,
    /// which then shows as in tgt.)
    pub fn open() -> Acl {
        Acl::default()
    }

    /// Every configured list must match (see the module doc).
    pub fn allows(&self, addr: IpAddr, initiator_name: &str) -> bool {
        let addr_ok = self.addresses.is_empty() || self.addresses.iter().any(|p| p.matches(addr));
        // iSCSI names are case-insensitive (RFC 3722 stringprep lowercases them).
        let name_ok = self.names.is_empty()
            || self
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(initiator_name));
        addr_ok && name_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn pat(s: &str) -> AddrPattern {
        AddrPattern::parse(s).unwrap()
    }

    #[test]
    fn patterns() {
        let p = pat("192.168.4.0/24");
        assert!(p.matches(ip("192.168.4.77")) && !p.matches(ip("192.168.5.1")));
        assert!(
            p.matches(ip("::ffff:192.168.4.9")),
            "dual-stack sockets report v4-mapped peers"
        );
        let p = pat("[fe80::1]");
        assert!(p.matches(ip("fe80::1")) && !p.matches(ip("fe80::2")));
        assert!(pat("[2001:db8::]/32").matches(ip("2001:db8:1::1")));
        assert!(pat("2001:db8::/33").matches(ip("2001:db8:7fff::1")));
        assert!(!pat("2001:db8::/33").matches(ip("2001:db8:8000::1")));
        assert!(pat("all").matches(ip("10.200.0.1")));
        assert!(pat("ALL").matches(ip("::1")));
        assert!(
            pat("10.1.2.3/8").matches(ip("10.200.0.1")),
            "host bits are ignored"
        );
        assert!(pat("0.0.0.0/0").matches(ip("8.8.8.8")) && !pat("0.0.0.0/0").matches(ip("::2")));
        assert!(pat("::/0").matches(ip("2001:db8::1")));
        // A v4 pattern never matches a real v6 peer and vice versa.
        assert!(!pat("127.0.0.1").matches(ip("::1")));
        assert!(!pat("::1").matches(ip("127.0.0.1")));
        // Mapped-address patterns are IPv4 patterns.
        assert_eq!(pat("::ffff:10.0.0.0/104"), pat("10.0.0.0/8"));
        assert!(pat("::ffff:10.0.0.1").matches(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "host.example",
            "",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "[10.0.0.1]",
            "[::1",
            "::1]",
            "1.2.3",
        ] {
            assert!(AddrPattern::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(pat("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert_eq!(pat("[::1]").to_string(), "::1");
        assert_eq!(pat("fe80::/10").to_string(), "fe80::/10");
        assert_eq!(pat("all").to_string(), "ALL");
    }

    /// Truth table, including the cases where tgt (OR semantics) would admit.
    #[test]
    fn every_configured_list_must_match() {
        let a = "10.200.0.5";
        let name_only = Acl {
            addresses: vec![],
            names: vec!["iqn.a".into()],
        };
        assert!(name_only.allows(ip(a), "IQN.A"));
        assert!(
            !name_only.allows(ip(a), "iqn.b"),
            "tgt would admit iqn.b here"
        );
        // What tgt-admin builds for a target with only initiator-name lines: ALL + names.
        let all_and_name = Acl {
            addresses: vec![AddrPattern::All],
            names: vec!["iqn.a".into()],
        };
        assert!(all_and_name.allows(ip(a), "iqn.a"));
        assert!(
            !all_and_name.allows(ip(a), "iqn.b"),
            "tgt ORs ALL with the names: it admits everyone"
        );
        let both = Acl {
            addresses: vec![pat("10.200.0.0/24")],
            names: vec!["iqn.a".into()],
        };
        assert!(both.allows(ip(a), "iqn.a"));
        assert!(
            !both.allows(ip(a), "iqn.b"),
            "address matches, name does not: tgt would admit"
        );
        assert!(
            !both.allows(ip("10.200.1.5"), "iqn.a"),
            "name matches, address does not: tgt would admit"
        );
        assert!(!both.allows(ip("10.200.1.5"), "iqn.b"));
        assert!(Acl::open().allows(ip(a), "anyone"));
        assert!(Acl::default().allows(ip(a), "anyone"), "no lists: open");
        let addr_only = Acl {
            addresses: vec![pat("127.0.0.1")],
            names: vec![],
        };
        assert!(addr_only.allows(ip("127.0.0.1"), "x") && !addr_only.allows(ip("127.0.0.2"), "x"));
        assert!(addr_only.allows(ip("::ffff:127.0.0.1"), "x"));
        let several = Acl {
            addresses: vec![pat("10.0.0.1"), pat("[::1]")],
            names: vec!["iqn.a".into(), "iqn.b".into()],
        };
        assert!(several.allows(ip("::1"), "iqn.b") && several.allows(ip("10.0.0.1"), "Iqn.A"));
        assert!(!several.allows(ip("10.0.0.2"), "iqn.a"));
    }
}
