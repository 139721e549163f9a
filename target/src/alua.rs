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

use hydra_proto::scsi::alua::{status_code, support, PortGroup, TargetPortGroups};
use hydra_proto::scsi::{Opcode, Sense};

use crate::{Error, Result};

/// Asymmetric access state (SPC-4 §6.37): hydra sets the four states a person can
/// name (targets.conf, tgtadm); the wire type is shared with the initiator.
pub use hydra_proto::scsi::alua::AccessState;

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
            self.states[*tag as usize].store(u8::from(*state), Ordering::Relaxed);
            tags.push(*tag);
        }
        tags.sort_unstable();
        tags.dedup();
        self.enabled.store(!groups.is_empty(), Ordering::Relaxed);
    }

    /// The state of the group a command arrived through.
    pub fn state(&self, tag: u16) -> AccessState {
        AccessState::from(self.states[tag as usize].load(Ordering::Relaxed))
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
        self.states[tag as usize].store(u8::from(state), Ordering::Relaxed);
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
    use support::*;
    TargetPortGroups {
        implicit_transition_time: extended.then_some(0),
        groups: groups
            .iter()
            .map(|g| PortGroup {
                pref: false,
                state: g.state,
                // The states a group can be set to; no transitioning, offline or LBA
                // dependent.
                supported: U_SUP | S_SUP | AN_SUP | AO_SUP,
                id: g.tag,
                status: status_code::IMPLICIT,
                vendor_specific: 0,
                ports: vec![g.tag],
            })
            .collect(),
    }
    .emit()
}

/// Whether a command may run through a port in `state`, else the NOT READY sense to
/// answer with (SPC-4 §5.15.2.4.4 standby, §5.15.2.4.5 unavailable). Active states allow
/// everything.
pub fn check(state: AccessState, opcode: u8, service_action: Option<u8>) -> Option<Sense> {
    use hydra_proto::scsi::{op, Opcode::*};
    let opcode = Opcode::from(opcode);
    let always = matches!(opcode, Inquiry | ReportLuns | RequestSense)
        || (opcode == MaintenanceIn
            && matches!(
                service_action,
                Some(op::MI_REPORT_TARGET_PORT_GROUPS | op::MI_REPORT_SUPPORTED_OPCODES)
            ));
    match state {
        AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => None,
        AccessState::Standby => {
            // Also MODE SENSE/SELECT, LOG SENSE/SELECT, PERSISTENT RESERVE IN/OUT,
            // RECEIVE/SEND DIAGNOSTIC (SPC-4 §5.15.2.4.4).
            let allowed = always
                || matches!(
                    opcode,
                    ModeSelect6
                        | ModeSelect10
                        | ModeSense6
                        | ModeSense10
                        | LogSelect
                        | LogSense
                        | PersistentReserveIn
                        | PersistentReserveOut
                        | ReceiveDiagnostic
                        | SendDiagnostic
                );
            (!allowed).then(|| Sense::not_ready(0x04, 0x0b))
        }
        // hydra never puts a group in the other states; were one to arrive here, the
        // port answers as unavailable.
        _ => (!always).then(|| Sense::not_ready(0x04, 0x0c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check(AccessState::Standby, op::PERSISTENT_RESERVE_OUT, None).is_none());
        let u = check(AccessState::Unavailable, op::PERSISTENT_RESERVE_OUT, None).unwrap();
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
