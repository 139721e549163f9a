//! SendTargets (RFC 7143 §12.3 of the text keys, Appendix C): the targets an initiator
//! may see, each with every portal it is reachable on and that portal's real group tag.
//! tgt answers only with the address the discovery connection used and always tag 1;
//! multipath setups then have to discover each portal separately.

use std::net::{IpAddr, SocketAddr};

use hydra_proto::text;

use crate::registry::{Registry, TargetState};

/// `ip:port` with IPv6 in brackets, as TargetAddress wants it (RFC 7143 §13.8).
pub fn format_addr(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", a.port()),
            None => format!("[{ip}]:{}", a.port()),
        },
    }
}

/// The SendTargets answer as key=value text. `local` is the address this connection
/// reached us on: it stands in for portals that listen on a wildcard address.
pub fn send_targets(
    reg: &Registry,
    initiator: &str,
    peer: IpAddr,
    local: SocketAddr,
    only: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let portals = reg.portals.read().expect("lock").clone();
    for t in reg.all_targets() {
        if only.is_some_and(|n| !n.eq_ignore_ascii_case(&t.iqn)) {
            continue;
        }
        if *t.state.read().expect("lock") != TargetState::Ready {
            continue;
        }
        // An initiator the ACL does not admit does not see the target at all.
        if !t.acl.read().expect("lock").allows(peer, initiator) {
            continue;
        }
        text::emit(&[("TargetName", t.iqn.as_str())], &mut out);
        let mut seen = Vec::new();
        for p in &portals {
            let addr = if p.addr.ip().is_unspecified() {
                // A wildcard portal is reachable at least where this connection came in.
                if p.addr.port() != local.port() {
                    continue;
                }
                local
            } else {
                p.addr
            };
            let v = format!("{},{}", format_addr(addr), p.tpgt);
            if !seen.contains(&v) {
                text::emit(&[("TargetAddress", v.as_str())], &mut out);
                seen.push(v);
            }
        }
    }
    out
}
