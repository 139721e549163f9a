//! Asymmetric logical unit access (SPC-4 §5.15): target port groups and their access
//! states.
//!
//! hydra's model: an iSCSI portal group (the TPGT of RFC 7143 §4.4.1) is one SCSI target
//! port per target, and each portal group is also one ALUA target port group, so the
//! relative target port identifier and the target port group identifier are both the
//! portal group tag. The `portal-group` directive of targets.conf (hydra's own; tgt has
//! none) groups portals and sets each group's access state; `hydra tgtadm --mode portal
//! --op update` changes a state at run time.
//!
//! Without any `portal-group` directive ALUA stays off and the LUNs answer exactly as
//! tgt's do (no TPGS in INQUIRY, no target port designators in VPD 0x83), so the
//! identities existing clusters stored do not change. The LU designators, from which
//! the WWID is derived, are the same either way.
//!
//! The state of a group is one atomic per tag, read with one relaxed load per command:
//! the data path takes no lock for ALUA.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::RwLock;

use hydra_proto::scsi::Sense;

use crate::{Error, Result};

/// Asymmetric access state (SPC-4 §6.37 table "ASYMMETRIC ACCESS STATE field").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessState {
    ActiveOptimized = 0x0,
    ActiveNonOptimized = 0x1,
    Standby = 0x2,
    Unavailable = 0x3,
}

impl AccessState {
    /// The names targets.conf and tgtadm accept (multipath-tools and sg_rtpg print
    /// these states as "active/optimized" and so on; both spellings are accepted).
    pub fn parse(s: &str) -> Option<AccessState> {
        match s.to_ascii_lowercase().replace('/', "-").as_str() {
            "active-optimized" | "ao" | "optimized" => Some(AccessState::ActiveOptimized),
            "active-non-optimized" | "active-nonoptimized" | "an" | "non-optimized" => {
                Some(AccessState::ActiveNonOptimized)
            }
            "standby" | "s" => Some(AccessState::Standby),
            "unavailable" | "u" => Some(AccessState::Unavailable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccessState::ActiveOptimized => "active/optimized",
            AccessState::ActiveNonOptimized => "active/non-optimized",
            AccessState::Standby => "standby",
            AccessState::Unavailable => "unavailable",
        }
    }

    fn from_u8(v: u8) -> AccessState {
        match v {
            1 => AccessState::ActiveNonOptimized,
            2 => AccessState::Standby,
            3 => AccessState::Unavailable,
            _ => AccessState::ActiveOptimized,
        }
    }
}

/// One target port group as REPORT TARGET PORT GROUPS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub tag: u16,
    pub state: AccessState,
}

/// The daemon's target port groups (shared by every LUN).
pub struct Alua {
    enabled: AtomicBool,
    /// Access state per portal group tag, indexed by tag.
    states: Box<[AtomicU8]>,
    /// The tags in use, ascending.
    tags: RwLock<Vec<u16>>,
}

impl Default for Alua {
    fn default() -> Self {
        Alua {
            enabled: AtomicBool::new(false),
            states: (0..=u16::MAX as usize).map(|_| AtomicU8::new(0)).collect(),
            tags: RwLock::new(Vec::new()),
        }
    }
}

impl Alua {
    /// Whether a `portal-group` directive turned ALUA on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Install the groups of a configuration: `(tag, state)` for each group.
    pub fn configure(&self, groups: &[(u16, AccessState)]) {
        let mut tags = self.tags.write().expect("lock");
        tags.clear();
        for (tag, state) in groups {
            self.states[*tag as usize].store(*state as u8, Ordering::Relaxed);
            tags.push(*tag);
        }
        tags.sort_unstable();
        tags.dedup();
        self.enabled.store(!groups.is_empty(), Ordering::Relaxed);
    }

    /// The state of the group a command arrived through.
    pub fn state(&self, tag: u16) -> AccessState {
        AccessState::from_u8(self.states[tag as usize].load(Ordering::Relaxed))
    }

    /// Change one group's state at run time; refused for a tag that is not a group.
    pub fn set_state(&self, tag: u16, state: AccessState) -> Result<()> {
        if !self.enabled() {
            return Err(Error::Admin(
                "ALUA is off: group the portals with a portal-group directive in targets.conf first".into(),
            ));
        }
        if !self.tags.read().expect("lock").contains(&tag) {
            return Err(Error::Admin(format!("there is no portal group {tag}")));
        }
        self.states[tag as usize].store(state as u8, Ordering::Relaxed);
        Ok(())
    }

    /// Every group with its state, ascending by tag.
    pub fn groups(&self) -> Vec<GroupView> {
        self.tags
            .read()
            .expect("lock")
            .iter()
            .map(|&tag| GroupView {
                tag,
                state: self.state(tag),
            })
            .collect()
    }
}

/// REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.37): one descriptor per group, each
/// with its one target port (relative target port identifier = tag). `extended` selects
/// the extended header (PARAMETER DATA FORMAT 001b) with an implicit transition time of 0.
pub fn report_target_port_groups(groups: &[GroupView], extended: bool) -> Vec<u8> {
    let mut b = vec![0u8; if extended { 8 } else { 4 }];
    if extended {
        b[4] = 0x10; // FORMAT TYPE 001b
    }
    for g in groups {
        // PREF 0, state; supported: T_SUP 0, O_SUP 0, LBD_SUP 0, U_SUP, S_SUP, AN_SUP, AO_SUP.
        b.push(g.state as u8);
        b.push(0x0f);
        b.extend_from_slice(&g.tag.to_be_bytes());
        b.push(0);
        b.push(0x02); // STATUS CODE: altered by implicit asymmetric access behaviour
        b.push(0);
        b.push(1); // TARGET PORT COUNT
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&g.tag.to_be_bytes());
    }
    let len = (b.len() - 4) as u32;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// VPD 0x83 designators of the target port a command came through (SPC-4 §7.8.6.7 and
/// §7.8.6.8): relative target port identifier (type 4) and target port group (type 5),
/// association "target port", protocol iSCSI (5), binary code set, PIV set.
pub fn target_port_designators(tag: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    for kind in [0x94u8, 0x95] {
        b.extend_from_slice(&[0x51, kind, 0, 4, 0, 0]);
        b.extend_from_slice(&tag.to_be_bytes());
    }
    b
}

/// Whether a command may run through a port in `state`, else the NOT READY sense to
/// answer with (SPC-4 §5.15.2.4.4 standby, §5.15.2.4.5 unavailable). Active states allow
/// everything.
pub fn check(state: AccessState, opcode: u8, service_action: Option<u8>) -> Option<Sense> {
    use hydra_proto::scsi::op;
    let always = matches!(opcode, op::INQUIRY | op::REPORT_LUNS | op::REQUEST_SENSE)
        || (opcode == op::MAINTENANCE_IN && matches!(service_action, Some(0x0a) | Some(0x0c)));
    match state {
        AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => None,
        AccessState::Standby => {
            // Also MODE SENSE/SELECT, LOG SENSE/SELECT, PERSISTENT RESERVE IN/OUT,
            // RECEIVE/SEND DIAGNOSTIC (SPC-4 §5.15.2.4.4).
            let allowed = always
                || matches!(
                    opcode,
                    0x15 | 0x55 | 0x1a | 0x5a | 0x4c | 0x4d | 0x5e | 0x5f | 0x1c | 0x1d
                );
            (!allowed).then(|| Sense::not_ready(0x04, 0x0b))
        }
        AccessState::Unavailable => (!always).then(|| Sense::not_ready(0x04, 0x0c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_both_spellings() {
        assert_eq!(
            AccessState::parse("active/non-optimized"),
            Some(AccessState::ActiveNonOptimized)
        );
        assert_eq!(AccessState::parse("Standby"), Some(AccessState::Standby));
        assert_eq!(AccessState::parse("asleep"), None);
        for s in [
            AccessState::ActiveOptimized,
            AccessState::ActiveNonOptimized,
            AccessState::Standby,
            AccessState::Unavailable,
        ] {
            assert_eq!(AccessState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn rtpg_layout() {
        let g = [
            GroupView {
                tag: 1,
                state: AccessState::ActiveOptimized,
            },
            GroupView {
                tag: 2,
                state: AccessState::Standby,
            },
        ];
        let b = report_target_port_groups(&g, false);
        assert_eq!(b.len(), 4 + 2 * 12);
        assert_eq!(u32::from_be_bytes(b[0..4].try_into().unwrap()), 24);
        assert_eq!(&b[4..16], &[0, 0x0f, 0, 1, 0, 2, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&b[16..28], &[2, 0x0f, 0, 2, 0, 2, 0, 1, 0, 0, 0, 2]);
        let e = report_target_port_groups(&g, true);
        assert_eq!(e[4], 0x10);
        assert_eq!(u32::from_be_bytes(e[0..4].try_into().unwrap()), 28);
    }

    #[test]
    fn standby_refuses_media_access() {
        use hydra_proto::scsi::op;
        let s = check(AccessState::Standby, op::READ_10, None).unwrap();
        assert_eq!((s.key, s.asc, s.ascq), (0x02, 0x04, 0x0b));
        assert!(check(AccessState::Standby, op::INQUIRY, None).is_none());
        assert!(check(AccessState::Standby, op::MAINTENANCE_IN, Some(0x0a)).is_none());
        assert!(check(AccessState::Standby, 0x5f, None).is_none());
        let u = check(AccessState::Unavailable, 0x5f, None).unwrap();
        assert_eq!((u.asc, u.ascq), (0x04, 0x0c));
        assert!(check(AccessState::ActiveNonOptimized, op::WRITE_10, None).is_none());
    }

    #[test]
    fn runtime_change_needs_a_configured_group() {
        let a = Alua::default();
        assert!(a.set_state(1, AccessState::Standby).is_err());
        a.configure(&[(1, AccessState::ActiveOptimized), (2, AccessState::Standby)]);
        assert!(a.enabled());
        assert_eq!(a.state(2), AccessState::Standby);
        a.set_state(2, AccessState::ActiveNonOptimized).unwrap();
        assert_eq!(a.state(2), AccessState::ActiveNonOptimized);
        assert!(a.set_state(3, AccessState::Standby).is_err());
        assert_eq!(a.groups().len(), 2);
    }
}
