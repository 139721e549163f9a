//! libiscsi's URL form, `iscsi://[user[%password]@]host[:port]/target-iqn/lun`, which
//! hydra's tools accept as libiscsi's do. IPv6 hosts are bracketed (`[::1]:3260`).

use std::net::{SocketAddr, ToSocketAddrs};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub target: String,
    pub lun: u64,
}

impl IscsiUrl {
    pub fn parse(url: &str) -> Result<IscsiUrl> {
        let bad = |why: &str| Error::Protocol(format!("bad iSCSI URL '{url}': {why}"));
        let rest = url
            .strip_prefix("iscsi://")
            .ok_or_else(|| bad("it must start with iscsi://"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once('%') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(a.to_string()), None),
            },
        };
        let (hostport, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /target-iqn/lun after the host"))?;
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            None | Some("") => 3260,
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        };
        let (target, lun) = path
            .rsplit_once('/')
            .ok_or_else(|| bad("no /lun after the target name"))?;
        if target.is_empty() || host.is_empty() {
            return Err(bad("empty host or target name"));
        }
        let lun = lun.parse().map_err(|_| bad("the LUN is not a number"))?;
        Ok(IscsiUrl {
            user,
            password,
            host,
            port,
            target: target.to_string(),
            lun,
        })
    }

    /// The portal address (resolving a host name).
    pub fn addr(&self) -> Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| Error::io(format!("resolve {}", self.host), e))?
            .next()
            .ok_or_else(|| Error::Protocol(format!("{} has no address", self.host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_libiscsi_accepts() {
        let u = IscsiUrl::parse("iscsi://127.0.0.1:3262/iqn.2026-11.org.hydra:x/1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.lun), ("127.0.0.1", 3262, 1));
        assert_eq!(u.target, "iqn.2026-11.org.hydra:x");
        let u = IscsiUrl::parse("iscsi://bob%s3cret@[::1]/iqn.x:y/0").unwrap();
        assert_eq!(
            (u.user.as_deref(), u.password.as_deref()),
            (Some("bob"), Some("s3cret"))
        );
        assert_eq!((u.host.as_str(), u.port), ("::1", 3260));
        for bad in [
            "http://x/y/1",
            "iscsi://h",
            "iscsi://h/iqn",
            "iscsi://h/iqn/x",
            "iscsi://h:p/i/1",
        ] {
            assert!(IscsiUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
