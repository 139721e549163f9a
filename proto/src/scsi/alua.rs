//! Asymmetric logical unit access on the wire (SPC-4 §5.15): the access states and
//! REPORT TARGET PORT GROUPS (§6.37) — the MAINTENANCE IN CDB with service action 0Ah
//! and its parameter data, in the length-only and the extended header formats. The
//! target emits one descriptor per portal group; multipath reads them to pick paths.

use super::cdb::checked;
use super::code::enum_with_unknown;
use super::op;
use crate::{Error, Result};

enum_with_unknown! {
    /// ASYMMETRIC ACCESS STATE (SPC-4 §6.37, Table 200), 4 bits on the wire.
    pub enum AccessState(mask 0x0f) {
        ActiveOptimized = 0x0,
        ActiveNonOptimized = 0x1,
        Standby = 0x2,
        Unavailable = 0x3,
        LbaDependent = 0x4,
        Offline = 0xe,
        Transitioning = 0xf,
    }
}

impl AccessState {
    /// The states a person sets (targets.conf, tgtadm), by the names multipath-tools
    /// and sg_rtpg print ("active/optimized"...) or short ones; case does not matter.
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

    /// The name multipath-tools prints.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessState::ActiveOptimized => "active/optimized",
            AccessState::ActiveNonOptimized => "active/non-optimized",
            AccessState::Standby => "standby",
            AccessState::Unavailable => "unavailable",
            AccessState::LbaDependent => "lba-dependent",
            AccessState::Offline => "offline",
            AccessState::Transitioning => "transitioning",
            AccessState::Unknown(_) => "reserved",
        }
    }
}

/// The SUPPORTED bits of a target port group descriptor (SPC-4 §6.37): which states
/// the group can be in.
pub mod support {
    pub const T_SUP: u8 = 0x80;
    pub const O_SUP: u8 = 0x40;
    pub const LBD_SUP: u8 = 0x10;
    pub const U_SUP: u8 = 0x08;
    pub const S_SUP: u8 = 0x04;
    pub const AN_SUP: u8 = 0x02;
    pub const AO_SUP: u8 = 0x01;
}

/// STATUS CODE of a descriptor: why the group is in its state (SPC-4 Table 201).
pub mod status_code {
    pub const NONE: u8 = 0x00;
    pub const SET_TARGET_PORT_GROUPS: u8 = 0x01;
    pub const IMPLICIT: u8 = 0x02;
}

/// The REPORT TARGET PORT GROUPS CDB (MAINTENANCE IN, SPC-4 §6.37).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpgCdb {
    /// PARAMETER DATA FORMAT 001b (extended header) rather than 000b (length only).
    pub extended: bool,
    pub alloc_len: u32,
}

impl RtpgCdb {
    pub const LEN: usize = 12;

    pub fn parse(cdb: &[u8]) -> Result<RtpgCdb> {
        const WHAT: &str = "REPORT TARGET PORT GROUPS CDB";
        let cdb = checked(cdb, op::MAINTENANCE_IN, Self::LEN, WHAT)?;
        if cdb[1] & 0x1f != op::MI_REPORT_TARGET_PORT_GROUPS {
            return Err(Error::malformed(
                WHAT,
                format!("service action 0x{:02x}", cdb[1] & 0x1f),
            ));
        }
        Ok(RtpgCdb {
            extended: cdb[1] & 0xe0 == 0x20,
            alloc_len: u32::from_be_bytes([cdb[6], cdb[7], cdb[8], cdb[9]]),
        })
    }

    pub fn emit(&self) -> [u8; Self::LEN] {
        let mut c = [0u8; Self::LEN];
        c[0] = op::MAINTENANCE_IN;
        c[1] = (self.extended as u8) << 5 | op::MI_REPORT_TARGET_PORT_GROUPS;
        c[6..10].copy_from_slice(&self.alloc_len.to_be_bytes());
        c
    }
}

/// One target port group descriptor (SPC-4 §6.37, Table 199).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroup {
    /// PREF: a preferred group.
    pub pref: bool,
    pub state: AccessState,
    /// [`support`] bits.
    pub supported: u8,
    /// TARGET PORT GROUP identifier.
    pub id: u16,
    /// [`status_code`].
    pub status: u8,
    pub vendor_specific: u8,
    /// RELATIVE TARGET PORT IDENTIFIERs of the group's ports.
    pub ports: Vec<u16>,
}

/// REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.37).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPortGroups {
    /// With the extended header: its IMPLICIT TRANSITION TIME (seconds).
    pub implicit_transition_time: Option<u8>,
    pub groups: Vec<PortGroup>,
}

impl TargetPortGroups {
    /// Parse the data of a command that asked for the `extended` format or not (a
    /// device server may answer the extended request with the length-only format; the
    /// FORMAT TYPE field says which came).
    pub fn parse(d: &[u8], extended: bool) -> Result<TargetPortGroups> {
        const WHAT: &str = "REPORT TARGET PORT GROUPS data";
        if d.len() < 4 {
            return Err(Error::truncated(WHAT, 4, d.len()));
        }
        let end = 4 + u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
        if end > d.len() {
            return Err(Error::truncated(WHAT, end, d.len()));
        }
        let ext = extended && d.len() >= 8 && d[4] & 0x70 == 0x10;
        let mut out = TargetPortGroups {
            implicit_transition_time: ext.then(|| d[5]),
            groups: Vec::new(),
        };
        let mut at = if ext { 8 } else { 4 };
        while at < end {
            if at + 8 > end {
                return Err(Error::truncated(WHAT, at + 8, end));
            }
            let g = &d[at..];
            let n = g[7] as usize;
            if at + 8 + 4 * n > end {
                return Err(Error::truncated(WHAT, at + 8 + 4 * n, end));
            }
            out.groups.push(PortGroup {
                pref: g[0] & 0x80 != 0,
                state: g[0].into(),
                supported: g[1],
                id: u16::from_be_bytes([g[2], g[3]]),
                status: g[5],
                vendor_specific: g[6],
                ports: (0..n)
                    .map(|i| u16::from_be_bytes([g[8 + 4 * i + 2], g[8 + 4 * i + 3]]))
                    .collect(),
            });
            at += 8 + 4 * n;
        }
        Ok(out)
    }

    pub fn buffer_len(&self) -> usize {
        let header = if self.implicit_transition_time.is_some() {
            8
        } else {
            4
        };
        header
            + self
                .groups
                .iter()
                .map(|g| 8 + 4 * g.ports.len())
                .sum::<usize>()
    }

    /// The parameter data; at most 255 ports per group are written (the count is one
    /// byte).
    pub fn emit(&self) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        if let Some(t) = self.implicit_transition_time {
            b.extend_from_slice(&[0x10, t, 0, 0]); // FORMAT TYPE 001b
        }
        for g in &self.groups {
            let ports = &g.ports[..g.ports.len().min(255)];
            b.push((g.pref as u8) << 7 | u8::from(g.state));
            b.push(g.supported);
            b.extend_from_slice(&g.id.to_be_bytes());
            b.extend_from_slice(&[0, g.status, g.vendor_specific, ports.len() as u8]);
            for p in ports {
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        let len = (b.len() - 4) as u32;
        b[0..4].copy_from_slice(&len.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group() -> impl Strategy<Value = PortGroup> {
        (
            any::<(bool, u8, u8, u16, u8, u8)>(),
            proptest::collection::vec(any::<u16>(), 0..5),
        )
            .prop_map(
                |((pref, state, supported, id, status, vendor_specific), ports)| PortGroup {
                    pref,
                    state: state.into(),
                    supported,
                    id,
                    status,
                    vendor_specific,
                    ports,
                },
            )
    }

    proptest! {
        #[test]
        fn data_round_trip(t: Option<u8>, groups in proptest::collection::vec(group(), 0..5)) {
            let d = TargetPortGroups { implicit_transition_time: t, groups };
            let b = d.emit();
            prop_assert_eq!(b.len(), d.buffer_len());
            prop_assert_eq!(TargetPortGroups::parse(&b, t.is_some()), Ok(d));
        }

        #[test]
        fn cdb_round_trip(extended: bool, alloc_len: u32) {
            let c = RtpgCdb { extended, alloc_len };
            prop_assert_eq!(RtpgCdb::parse(&c.emit()), Ok(c));
        }

        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64), ext: bool) {
            let _ = TargetPortGroups::parse(&b, ext);
            let _ = RtpgCdb::parse(&b);
        }
    }

    /// Two groups as hydra reports them: one port each, implicit ALUA.
    #[test]
    fn golden() {
        let g = |id, state| PortGroup {
            pref: false,
            state,
            supported: 0x0f,
            id,
            status: status_code::IMPLICIT,
            vendor_specific: 0,
            ports: vec![id],
        };
        let d = TargetPortGroups {
            implicit_transition_time: None,
            groups: vec![
                g(1, AccessState::ActiveOptimized),
                g(2, AccessState::Standby),
            ],
        };
        let b = d.emit();
        assert_eq!(&b[0..4], &[0, 0, 0, 24]);
        assert_eq!(&b[4..16], &[0, 0x0f, 0, 1, 0, 2, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&b[16..28], &[2, 0x0f, 0, 2, 0, 2, 0, 1, 0, 0, 0, 2]);
        let e = TargetPortGroups {
            implicit_transition_time: Some(0),
            ..d
        }
        .emit();
        assert_eq!(&e[0..8], &[0, 0, 0, 28, 0x10, 0, 0, 0]);
        assert_eq!(
            RtpgCdb {
                extended: true,
                alloc_len: 4096
            }
            .emit(),
            [0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
        );
        // A length-only answer to an extended request.
        assert_eq!(TargetPortGroups::parse(&b, true).unwrap().groups.len(), 2);
    }

    #[test]
    fn state_names() {
        for s in [
            AccessState::ActiveOptimized,
            AccessState::ActiveNonOptimized,
            AccessState::Standby,
            AccessState::Unavailable,
        ] {
            assert_eq!(AccessState::parse(s.as_str()), Some(s));
        }
        assert_eq!(AccessState::parse("AO"), Some(AccessState::ActiveOptimized));
        assert_eq!(AccessState::parse("asleep"), None);
        assert_eq!(AccessState::from(0x8f), AccessState::Transitioning);
    }
}
