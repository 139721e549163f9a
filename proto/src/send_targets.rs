//! The SendTargets answer (RFC 7143 §12.3 of the text keys, Appendix C): for each
//! target a `TargetName=` key, followed by one `TargetAddress=host[:port][,tpgt]` per
//! portal (§13.8). The target emits it, the initiator parses it — both through
//! [`TargetRecord`].

use std::net::{IpAddr, SocketAddr};

use crate::text;
use crate::{Error, Result};

/// One `TargetAddress` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAddress {
    /// As written: a DNS name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    /// None: the port of the portal that was asked.
    pub port: Option<u16>,
    /// The portal group tag; None when the target left it out.
    pub tpgt: Option<u16>,
}

/// `ip:port` with IPv6 in brackets and IPv4-mapped addresses as IPv4, as TargetAddress
/// wants it (RFC 7143 §13.8).
pub fn format_addr(a: SocketAddr) -> String {
    let (host, port) = host_port(a);
    format!("{host}:{port}")
}

fn host_port(a: SocketAddr) -> (String, u16) {
    let host = match a.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{ip}]"),
        },
    };
    (host, a.port())
}

impl TargetAddress {
    /// The address of a portal listening on `a`, in portal group `tpgt`.
    pub fn of(a: SocketAddr, tpgt: u16) -> TargetAddress {
        let (host, port) = host_port(a);
        TargetAddress {
            host,
            port: Some(port),
            tpgt: Some(tpgt),
        }
    }

    pub fn parse(v: &str) -> Result<TargetAddress> {
        let bad = || Error::malformed("TargetAddress", format!("'{v}'"));
        let (hostport, tpgt) = match v.rsplit_once(',') {
            Some((h, t)) => (h, Some(t.parse().map_err(|_| bad())?)),
            None => (v, None),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(bad)?;
            let port = match p {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{h}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad());
        }
        let port = port.map(|p| p.parse().map_err(|_| bad())).transpose()?;
        Ok(TargetAddress { host, port, tpgt })
    }

    /// The value as written on the wire.
    pub fn emit(&self) -> String {
        let mut v = self.host.clone();
        if let Some(p) = self.port {
            v.push_str(&format!(":{p}"));
        }
        if let Some(t) = self.tpgt {
            v.push_str(&format!(",{t}"));
        }
        v
    }
}

/// One target of the answer with its portals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub name: String,
    /// Empty: the target is reachable at the portal that was asked (§12.3).
    pub addresses: Vec<TargetAddress>,
}

impl TargetRecord {
    /// Read the answer's keys (as `text::parse_repeated` returns them, in order); keys
    /// other than TargetName and TargetAddress are ignored.
    pub fn parse_all(keys: &[(String, String)]) -> Result<Vec<TargetRecord>> {
        let mut out: Vec<TargetRecord> = Vec::new();
        for (k, v) in keys {
            match k.as_str() {
                "TargetName" => out.push(TargetRecord {
                    name: v.clone(),
                    addresses: Vec::new(),
                }),
                "TargetAddress" => out
                    .last_mut()
                    .ok_or_else(|| {
                        Error::malformed(
                            "SendTargets answer",
                            "TargetAddress before any TargetName",
                        )
                    })?
                    .addresses
                    .push(TargetAddress::parse(v)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Append `TargetName=` and one `TargetAddress=` per address.
    pub fn emit(&self, out: &mut Vec<u8>) {
        text::emit(&[("TargetName", self.name.as_str())], out);
        for a in &self.addresses {
            text::emit(&[("TargetAddress", a.emit())], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address() -> impl Strategy<Value = TargetAddress> {
        (
            prop_oneof!["[a-z0-9.-]{1,20}", "\\[[0-9a-f:]{2,20}\\]"],
            any::<Option<u16>>(),
            any::<Option<u16>>(),
        )
            .prop_map(|(host, port, tpgt)| TargetAddress { host, port, tpgt })
    }

    fn record() -> impl Strategy<Value = TargetRecord> {
        (
            "iqn\\.[a-z0-9.:-]{1,30}",
            proptest::collection::vec(address(), 0..4),
        )
            .prop_map(|(name, addresses)| TargetRecord { name, addresses })
    }

    proptest! {
        #[test]
        fn answer_round_trip(records in proptest::collection::vec(record(), 0..4)) {
            let mut b = Vec::new();
            for r in &records {
                r.emit(&mut b);
            }
            let keys = text::parse_repeated(&b).unwrap();
            prop_assert_eq!(TargetRecord::parse_all(&keys), Ok(records));
        }

        #[test]
        fn address_parse_never_panics(s in ".{0,40}") {
            let _ = TargetAddress::parse(&s);
        }
    }

    #[test]
    fn golden() {
        let r = TargetRecord {
            name: "iqn.x:a".into(),
            addresses: vec![
                TargetAddress::of("10.200.1.1:3260".parse().unwrap(), 1),
                TargetAddress::of("[fd00::1]:3261".parse().unwrap(), 2),
                TargetAddress::of("[::ffff:10.0.0.1]:3260".parse().unwrap(), 3),
            ],
        };
        let mut b = Vec::new();
        r.emit(&mut b);
        assert_eq!(
            b,
            b"TargetName=iqn.x:a\0TargetAddress=10.200.1.1:3260,1\0\
              TargetAddress=[fd00::1]:3261,2\0TargetAddress=10.0.0.1:3260,3\0"
                .to_vec()
        );
        let a = TargetAddress::parse("host.example").unwrap();
        assert_eq!((a.port, a.tpgt), (None, None));
        assert!(TargetAddress::parse("1.2.3.4:x,1").is_err());
        assert!(TargetAddress::parse("[fd00::1,1").is_err());
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert!(TargetRecord::parse_all(&[kv("TargetAddress", "1.2.3.4:1,1")]).is_err());
    }
}
