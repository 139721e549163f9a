//! `--mode portal` and the `portal-group` lines of a config file: which portal group tag
//! (RFC 7143 §4.4.1, also the ALUA target port group) each of the daemon's portals has,
//! and each group's access state (SPC-4 §5.15).

use crate::alua::AccessState;
use crate::config::{cfg_err, Config, PortalGroup};
use crate::registry::{Portal, Registry};
use crate::{Error, Result};

/// `--mode portal --op show`.
pub(super) fn show(reg: &Registry) -> String {
    let mut s = String::new();
    for p in reg.portals.read().expect("lock").iter() {
        s.push_str(&format!(
            "Portal: {},{}\n",
            crate::iscsi::discovery::format_addr(p.addr),
            p.tpgt
        ));
        if reg.alua.enabled() {
            s.push_str(&format!(
                "    ALUA state: {}\n",
                reg.alua.state(p.tpgt).as_str()
            ));
        }
    }
    s
}

/// `--mode portal --op update --param state=S`: one group's access state.
pub(super) fn update(reg: &Registry, tpgt: u16, state: &str) -> Result<()> {
    let st = AccessState::parse(state).ok_or_else(|| {
        Error::Admin(format!(
            "state {state}: expected active/optimized, active/non-optimized, standby or unavailable"
        ))
    })?;
    let before = reg.alua.state(tpgt);
    reg.alua.set_state(tpgt, st)?;
    if before != st {
        announce_alua_change(reg);
    }
    Ok(())
}

/// The portals with the tags of the file's `portal-group` lines (None: the file has
/// none, nothing changes). Tags cannot move under logged-in sessions (their I_T nexuses
/// are named by the tag); states can.
pub(super) fn plan(reg: &Registry, cfg: &Config, log: &mut String) -> Result<Option<Vec<Portal>>> {
    if cfg.portal_groups.is_empty() {
        return Ok(None);
    }
    let current = reg.portals.read().expect("lock").clone();
    let new = regroup(&current, &cfg.portal_groups)?;
    if new != current && !reg.sessions(None).is_empty() {
        return Err(cfg_err(
            &cfg.portal_groups[0].location,
            "portal-group",
            "portal group tags cannot change while initiators are logged in: log them out first"
                .into(),
        ));
    }
    for g in &cfg.portal_groups {
        log.push_str(&format!(
            "Portal group {}: {} ({})\n",
            g.tag,
            g.portals
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            g.state.as_str()
        ));
    }
    Ok(Some(new))
}

/// Install the portals [`plan`] gave and the groups' states.
pub(super) fn commit(reg: &Registry, portals: Vec<Portal>, groups: &[PortalGroup]) {
    *reg.portals.write().expect("lock") = portals;
    let groups: Vec<_> = groups.iter().map(|g| (g.tag, g.state)).collect();
    let before = reg.alua.groups();
    reg.alua.configure(&groups);
    if before != reg.alua.groups() {
        announce_alua_change(reg);
    }
}

/// ASYMMETRIC ACCESS STATE CHANGED (2A/06, SPC-4 §5.15.2.5) for every nexus of every
/// LUN.
fn announce_alua_change(reg: &Registry) {
    for t in reg.all_targets() {
        for l in t.luns.read().expect("lock").values() {
            l.unit_attention_all(0x2a, 0x06);
        }
    }
}

/// The daemon's portals with the tags `groups` give them: every group address must be
/// one of the daemon's portals (as `hydra tgtd --iscsi portal=` bound it) and every
/// portal must be in a group.
fn regroup(portals: &[Portal], groups: &[PortalGroup]) -> Result<Vec<Portal>> {
    for g in groups {
        for a in &g.portals {
            if !portals.iter().any(|p| p.addr == *a) {
                return Err(cfg_err(
                    &g.location,
                    "portal-group",
                    format!(
                        "{a} is not a portal of this daemon (it listens on {})",
                        list(portals)
                    ),
                ));
            }
        }
    }
    portals
        .iter()
        .map(|p| match groups.iter().find(|g| g.portals.contains(&p.addr)) {
            Some(g) => Ok(Portal {
                addr: p.addr,
                tpgt: g.tag,
            }),
            None => Err(cfg_err(
                &groups[0].location,
                "portal-group",
                format!(
                    "the daemon's portal {} is in no portal group: with portal-group lines every portal must be in one",
                    p.addr
                ),
            )),
        })
        .collect()
}

fn list(portals: &[Portal]) -> String {
    portals
        .iter()
        .map(|p| p.addr.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regroup_checks_both_ways() {
        let loc = crate::config::Location {
            file: "t.conf".into(),
            line: 7,
        };
        let portals = vec![
            Portal {
                addr: "127.0.0.1:3260".parse().unwrap(),
                tpgt: 1,
            },
            Portal {
                addr: "127.0.0.1:3261".parse().unwrap(),
                tpgt: 2,
            },
        ];
        let g = |tag, a: &[&str]| PortalGroup {
            tag,
            portals: a.iter().map(|a| a.parse().unwrap()).collect(),
            state: AccessState::ActiveOptimized,
            location: loc.clone(),
        };
        let both = regroup(&portals, &[g(7, &["127.0.0.1:3260", "127.0.0.1:3261"])]).unwrap();
        assert!(both.iter().all(|p| p.tpgt == 7));
        let e = regroup(&portals, &[g(1, &["127.0.0.1:3260"])]).unwrap_err();
        assert!(
            e.to_string()
                .contains("127.0.0.1:3261 is in no portal group"),
            "{e}"
        );
        let e = regroup(&portals, &[g(1, &["127.0.0.1:3260", "127.0.0.1:3999"])]).unwrap_err();
        assert!(
            e.to_string().contains("t.conf:7")
                && e.to_string().contains("127.0.0.1:3999 is not a portal"),
            "{e}"
        );
    }
}
