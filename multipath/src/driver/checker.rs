//! The path checker and prioritizer multipathd runs for [`crate::map::Event::CheckPath`]
//! (multipath-tools `libmultipath/checkers/tur.c`, `readsector0.c`,
//! `prioritizers/const.c`, `alua.c`): is the path up, and how good is it.

use std::time::Duration;

use bytes::Bytes;
use hydra_initiator::Session;
use hydra_proto::scsi::alua::AccessState;
use hydra_proto::scsi::cdb::be16;
use hydra_proto::scsi::sense::key;
use hydra_proto::scsi::vpd::{Association, DesignatorType};
use hydra_proto::scsi::Opcode;

use crate::config::{Checker, Prio, Settings};
use crate::map::{AluaState, CheckResult};

/// How a map checks its paths, from its resolved settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerOptions {
    /// `path_checker`: tur and readsector0 (directio reads the same sector) are run;
    /// the vendor checkers (emc_clariion, hp_sw, rdac, cciss_tur) fall back to tur;
    /// `none` reports every path up.
    pub checker: Checker,
    /// `prio`: alua (and sysfs, which is alua without sysfs) reads REPORT TARGET PORT
    /// GROUPS; every other prioritizer gives const's 1.
    pub prio: Prio,
    /// `checker_timeout`: a check not answered by then is a failed check (multipathd
    /// uses the SCSI command timeout, 30 s).
    pub timeout: Duration,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            checker: Checker::Tur,
            prio: Prio::Const,
            timeout: Duration::from_secs(30),
        }
    }
}

impl CheckerOptions {
    /// The checker and prioritizer of a map's settings; `tpgs`: the LUN reports ALUA
    /// (standard INQUIRY TPGS), for `detect_prio` / `detect_checker`.
    pub fn from_settings(s: &Settings, tpgs: bool) -> CheckerOptions {
        CheckerOptions {
            checker: s.checker_for(tpgs).value,
            prio: s.prio_for(tpgs).value,
            ..CheckerOptions::default()
        }
    }
}

/// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE (04/0B).
fn is_standby(sense: Option<(u8, u8, u8)>) -> bool {
    sense == Some((key::NOT_READY, 0x04, 0x0b))
}

/// Check path `lun` of `session` (blocks of `block_size`), with the port group `tpg`
/// if known.
pub(crate) async fn check(
    s: &Session,
    lun: u64,
    block_size: u32,
    tpg: Option<u16>,
    o: CheckerOptions,
) -> CheckResult {
    if !s.path_state().is_up() {
        return CheckResult::Down {
            why: "session is not logged in".into(),
        };
    }
    match tokio::time::timeout(o.timeout, check_inner(s, lun, block_size, tpg, o)).await {
        Ok(r) => r,
        Err(_) => CheckResult::Down {
            why: format!("checker timed out after {} s", o.timeout.as_secs()),
        },
    }
}

async fn check_inner(
    s: &Session,
    lun: u64,
    block_size: u32,
    tpg: Option<u16>,
    o: CheckerOptions,
) -> CheckResult {
    let ghost = match o.checker {
        Checker::None => false,
        Checker::Readsector0 | Checker::Directio => {
            // READ(10) of one block at LBA 0.
            let mut c = [0u8; 10];
            c[0] = Opcode::Read10.into();
            c[8] = 1;
            match s.scsi(lun, &c, Bytes::new(), block_size).await {
                Ok(Ok(_)) => false,
                Ok(Err(f)) if is_standby(f.sense_key()) => true,
                Ok(Err(f)) => {
                    return CheckResult::Down {
                        why: format!("readsector0: status {:#04x} {:x?}", f.status, f.sense_key()),
                    }
                }
                Err(e) => return CheckResult::Down { why: e.to_string() },
            }
        }
        _ => match s.test_unit_ready(lun).await {
            Ok(Ok(())) => false,
            Ok(Err(f)) if is_standby(f.sense_key()) => true,
            Ok(Err(f)) => {
                return CheckResult::Down {
                    why: format!("tur: status {:#04x} {:x?}", f.status, f.sense_key()),
                }
            }
            Err(e) => return CheckResult::Down { why: e.to_string() },
        },
    };
    let (prio, alua) = match o.prio {
        Prio::Alua | Prio::Sysfs => match alua(s, lun, tpg).await {
            Some((state, pref)) => (state.prio(pref), Some(state)),
            // multipath-tools: a prioritizer that fails gives PRIO_UNDEF; 0 keeps the
            // path last.
            None => (0, None),
        },
        _ => (1, None),
    };
    if ghost || alua == Some(AluaState::Standby) {
        CheckResult::Ghost { prio, alua }
    } else {
        CheckResult::Up { prio, alua }
    }
}

/// The access state of the port group this path goes through (and its PREF bit).
async fn alua(s: &Session, lun: u64, tpg: Option<u16>) -> Option<(AluaState, bool)> {
    let tpg = match tpg {
        Some(t) => t,
        None => port_group(s, lun).await?,
    };
    let groups = s.report_target_port_groups(lun).await.ok()?.ok()?;
    let g = groups.groups.iter().find(|g| g.id == tpg)?;
    let state = match g.state {
        AccessState::ActiveOptimized => AluaState::ActiveOptimized,
        AccessState::ActiveNonOptimized | AccessState::LbaDependent => {
            AluaState::ActiveNonOptimized
        }
        AccessState::Standby => AluaState::Standby,
        AccessState::Transitioning => AluaState::Transitioning,
        AccessState::Unavailable | AccessState::Offline | AccessState::Unknown(_) => {
            AluaState::Unavailable
        }
    };
    Some((state, g.pref))
}

/// The TARGET PORT GROUP designator of the port a path goes through (Device
/// Identification VPD page, SPC-4 §7.8.6.7): 2 reserved bytes, then the group.
pub async fn port_group(s: &Session, lun: u64) -> Option<u16> {
    let page = s.device_identification(lun).await.ok()?.ok()?;
    page.designators
        .iter()
        .find(|d| {
            d.kind == DesignatorType::TargetPortGroup
                && d.association == Association::TargetPort
                && d.value.len() >= 4
        })
        .map(|d| be16(&d.value, 2))
}
