//! SendTargets (RFC 7143 §12.3 of the text keys, Appendix C): the targets an initiator
//! may see, each with every portal it is reachable on and that portal's real group tag.
//! tgt answers only with the address the discovery connection used and always tag 1;
//! multipath setups then have to discover each portal separately.

use std::net::{IpAddr, SocketAddr};

pub use hydra_proto::send_targets::format_addr;
use hydra_proto::send_targets::{TargetAddress, TargetRecord};

use crate::registry::{Registry, TargetState};

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
        let mut record = TargetRecord {
            name: t.iqn.clone(),
            addresses: Vec::new(),
        };
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
            let a = TargetAddress::of(addr, p.tpgt);
            if !record.addresses.contains(&a) {
                record.addresses.push(a);
            }
        }
        record.emit(&mut out);
    }
    out
}
