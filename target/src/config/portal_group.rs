//! `portal-group TAG ADDRESS[,ADDRESS...] [STATE]` — hydra's own global directive (tgt
//! has none): which of the daemon's portals form iSCSI portal group TAG (its TPGT in
//! login and SendTargets, RFC 7143 §4.4.1) and so ALUA target port group TAG, and that
//! group's access state (`active/optimized`, the default, `active/non-optimized`,
//! `standby`, `unavailable`). Any `portal-group` turns ALUA on (see `crate::alua`);
//! then every portal of the daemon must be in exactly one group. Whether the addresses
//! are the daemon's portals is checked when the file is applied.

use std::net::SocketAddr;

use super::location::{cfg_err, Location};
use crate::alua::AccessState;
use crate::Result;

/// One `portal-group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroup {
    pub tag: u16,
    pub portals: Vec<SocketAddr>,
    pub state: AccessState,
    pub location: Location,
}

const DIRECTIVE: &str = "portal-group";

/// Parse the value of one `portal-group` line; `earlier` are the groups before it.
pub fn parse(value: &str, loc: &Location, earlier: &[PortalGroup]) -> Result<PortalGroup> {
    let err = |d: String| cfg_err(loc, DIRECTIVE, d);
    let mut words = value.split_whitespace();
    let (Some(tag), Some(addrs)) = (words.next(), words.next()) else {
        return Err(err(format!(
            "'{value}': expected `portal-group TAG IP:PORT[,IP:PORT...] [STATE]`"
        )));
    };
    let tag: u16 = match tag.parse() {
        Ok(t) if t >= 1 => t,
        _ => return Err(err(format!("tag '{tag}' must be a number from 1 to 65535"))),
    };
    let state = match words.next() {
        None => AccessState::ActiveOptimized,
        Some(s) => AccessState::parse(s).ok_or_else(|| {
            err(format!(
                "state '{s}' must be active/optimized, active/non-optimized, standby or unavailable"
            ))
        })?,
    };
    if let Some(extra) = words.next() {
        return Err(err(format!("unexpected '{extra}' after the state")));
    }
    let mut portals = Vec::new();
    for a in addrs.split(',').filter(|a| !a.is_empty()) {
        let p: SocketAddr = a
            .parse()
            .map_err(|_| err(format!("'{a}' is not IP:PORT (IPv6 as [ADDR]:PORT)")))?;
        portals.push(p);
    }
    if let Some(g) = earlier.iter().find(|g| g.tag == tag) {
        return Err(err(format!(
            "tag {tag} is already defined at {}",
            g.location
        )));
    }
    for p in &portals {
        if let Some(g) = earlier.iter().find(|g| g.portals.contains(p)) {
            return Err(err(format!(
                "portal {p} is already in portal group {} (at {})",
                g.tag, g.location
            )));
        }
        if portals.iter().filter(|q| *q == p).count() > 1 {
            return Err(err(format!("portal {p} is listed twice")));
        }
    }
    Ok(PortalGroup {
        tag,
        portals,
        state,
        location: loc.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Location {
        Location {
            file: "/etc/tgt/targets.conf".into(),
            line: 3,
        }
    }

    #[test]
    fn parses_groups_and_states() {
        let g = parse("2 10.200.1.1:3260,10.200.2.1:3260 standby", &loc(), &[]).unwrap();
        assert_eq!(g.tag, 2);
        assert_eq!(g.portals.len(), 2);
        assert_eq!(g.state, AccessState::Standby);
        let d = parse("1 [::1]:3260", &loc(), &[]).unwrap();
        assert_eq!(d.state, AccessState::ActiveOptimized);
    }

    #[test]
    fn refuses_with_file_line_and_reason() {
        let first = parse("1 127.0.0.1:3260", &loc(), &[]).unwrap();
        for (v, why) in [
            ("1", "expected"),
            ("0 127.0.0.1:3260", "tag '0'"),
            ("x 127.0.0.1:3260", "tag 'x'"),
            ("2 127.0.0.1", "not IP:PORT"),
            ("2 127.0.0.1:3261 sleepy", "state 'sleepy'"),
            ("2 127.0.0.1:3261 standby now", "unexpected 'now'"),
            ("1 127.0.0.1:3261", "already defined"),
            ("2 127.0.0.1:3260", "already in portal group 1"),
            ("2 127.0.0.1:3261,127.0.0.1:3261", "listed twice"),
        ] {
            let e = parse(v, &loc(), std::slice::from_ref(&first))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/etc/tgt/targets.conf:3")
                    && e.contains("portal-group")
                    && e.contains(why),
                "{v}: {e}"
            );
        }
    }
}
