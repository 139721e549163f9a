//! A map as the printers and the control socket see it: plain data, taken inside the
//! map's task ([`MapSnapshot::of`]) and printed anywhere (in the daemon for
//! `multipathd show …`, in the CLI for `multipath -ll`), so that printing never holds
//! the map and a snapshot crosses the control socket as JSON.
//!
//! The core ([`Map`]) knows paths, groups and states; what it does not know (the kernel
//! device serving the map, its size, the LUN's INQUIRY strings, where each path goes)
//! comes in [`DeviceFacts`] from the node that owns the sessions and the exports.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{Failback, NoPathRetry};
use crate::map::{Map, MapStats, PathId, QueueState};

/// What the node knows about a map beyond its core: the serving device and the LUN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The kernel block device serving the map (`loop3`), None when there is none
    /// (only the NBD export serves it); printed where multipath prints `dm-N`.
    pub kernel_name: Option<String>,
    /// That device's `major:minor` (`7:3`).
    pub dev_t: Option<String>,
    /// The map's size in bytes.
    pub size: u64,
    /// INQUIRY vendor, product and revision of the LUN (SPC-4 §6.6.2), as the target
    /// sent them (multipath keeps their space padding).
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// Write-protected (the WP bit of MODE SENSE, SBC-3 §6.5.1); None when unknown.
    pub write_protect: Option<bool>,
    /// The configured dm `features` string without `queue_if_no_path` ("0"); the
    /// snapshot adds `queue_if_no_path` while the map queues, as the kernel table does.
    pub features: String,
    /// The configured `hardware_handler` ("0", "1 alua").
    pub hwhandler: String,
    /// Per path; a path missing here gets facts derived from its [`PathId`].
    pub paths: HashMap<PathId, PathFacts>,
}

/// What the node knows about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFacts {
    /// `H:C:T:L`; hydra's is `{sid}:0:0:{lun}`.
    pub hcil: String,
    /// The device name; hydra's stand-in for `sdX` is `s{sid}l{lun}`.
    pub dev: String,
    /// `major:minor` shown for the path; None: the map's device's (a path has no
    /// kernel device of its own in hydra).
    pub dev_t: Option<String>,
    /// The portal the session went to (`10.0.0.1:3260`).
    pub portal: String,
    /// The iSCSI session id.
    pub sid: u32,
    /// The session is logged in (`%o`: `running`, else `offline`).
    pub online: bool,
}

impl PathFacts {
    /// The facts hydra derives from a session LUN's path id (`PathId((sid << 32) |
    /// lun)`), for a path the node gave none for.
    pub fn from_id(id: PathId, name: &str) -> PathFacts {
        let sid = (id.0 >> 32) as u32;
        let lun = id.0 & 0xffff_ffff;
        PathFacts {
            hcil: format!("{sid}:0:0:{lun}"),
            dev: name.to_string(),
            dev_t: None,
            portal: String::new(),
            sid,
            online: true,
        }
    }
}

impl PathSnapshot {
    /// A session LUN no map uses (blacklisted, or waiting for find_multipaths), as
    /// `show paths` lists it: no dm or checker state, `orphan` for the next check.
    pub fn orphan(id: PathId, wwid: &str, facts: &PathFacts, dev: &DeviceFacts) -> PathSnapshot {
        PathSnapshot {
            id: id.0,
            wwid: wwid.to_string(),
            multipath: None,
            size: dev.size,
            hcil: facts.hcil.clone(),
            dev: facts.dev.clone(),
            dev_t: facts.dev_t.clone(),
            dm_state: "undef".into(),
            checker: "undef".into(),
            dev_state: "unknown".into(),
            prio: -1,
            next_check: "orphan".into(),
            vpr: format!("{},{},{}", dev.vendor, dev.product, dev.revision),
            serial: String::new(),
            target_name: String::new(),
            portal: facts.portal.clone(),
            tpg: None,
            sid: facts.sid,
            failed_because: None,
            in_flight: 0,
        }
    }
}

/// One map (`struct multipath` as the printers read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSnapshot {
    /// `%n`: the alias, or the WWID without one.
    pub name: String,
    /// `%w`.
    pub wwid: String,
    /// `%d`: the serving kernel device (`loop3`), None when there is none.
    pub sysfs: Option<String>,
    /// Its `major:minor`.
    pub dev_t: Option<String>,
    /// Bytes.
    pub size: u64,
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// `%f`: the features string as the kernel table has it now.
    pub features: String,
    /// `%h`.
    pub hwhandler: String,
    /// `%r`: Some(true) `ro`, Some(false) `rw`, None `undef`.
    pub write_protect: Option<bool>,
    /// `%F`: `immediate`, `followover`, or `-` (print.c shows the deferral only
    /// while it counts down, which the core does not expose).
    pub failback: String,
    /// `%Q`: `off`, `on`, `-`, `N chk`, `N sec`.
    pub queueing: String,
    /// I/Os held for lack of a path, and not finished at all.
    pub queued: usize,
    pub pending: usize,
    pub stats: StatsSnapshot,
    /// Groups in kernel order (numbered from 1 as printed).
    pub groups: Vec<GroupSnapshot>,
}

/// `show maps stats` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub path_faults: u64,
    pub switch_group: u64,
    pub queue_timeouts: u64,
}

impl From<MapStats> for StatsSnapshot {
    fn from(s: MapStats) -> StatsSnapshot {
        StatsSnapshot {
            path_faults: s.path_faults,
            switch_group: s.switch_group,
            queue_timeouts: s.queue_timeouts,
        }
    }
}

/// One path group (`policy='…' prio=N status=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// `%s`: the selector as written (`service-time 0`).
    pub selector: String,
    /// `%p`.
    pub prio: i32,
    /// `%t`: `active`, `enabled`, `disabled`.
    pub status: String,
    pub paths: Vec<PathSnapshot>,
}

/// One path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSnapshot {
    /// The map's [`PathId`] of the path.
    pub id: u64,
    /// `%w`: the LUN's WWID.
    pub wwid: String,
    /// `%m`: the map's name, None for a path no map uses (an orphan).
    pub multipath: Option<String>,
    /// `%S`: the LUN's size in bytes.
    pub size: u64,
    /// `%i`.
    pub hcil: String,
    /// `%d`.
    pub dev: String,
    /// `%D`; None prints `#:#`.
    pub dev_t: Option<String>,
    /// `%t`: `active`, `failed`.
    pub dm_state: String,
    /// `%T`: `ready`, `faulty`, `ghost`, `i/o pending`, `shaky`, `undef`.
    pub checker: String,
    /// `%o`: `running`, `offline`.
    pub dev_state: String,
    /// `%p`.
    pub prio: i32,
    /// `%C`: the check progress bar (`XXXX...... 9/20`), or `orphan`.
    pub next_check: String,
    /// `%s` of a path: `vendor,product,revision`.
    pub vpr: String,
    /// `%z`: the unit serial number.
    pub serial: String,
    /// `%N`: the target name (`group_by_node_name`'s key).
    pub target_name: String,
    /// `%a`: the portal address.
    pub portal: String,
    /// `%g`: the target port group, when ALUA reports one.
    pub tpg: Option<u16>,
    /// The iSCSI session id.
    pub sid: u32,
    /// Why the path was last failed.
    pub failed_because: Option<String>,
    /// I/Os on the path now.
    pub in_flight: u32,
}

impl MapSnapshot {
    /// The snapshot of `map` at `now`, with what the node knows in `dev`.
    pub fn of(map: &Map, now: Instant, dev: &DeviceFacts) -> MapSnapshot {
        let cfg = map.config();
        let queueing_on = match map.queue_state() {
            QueueState::Off => false,
            QueueState::Recovery { .. } => true,
            QueueState::Normal => cfg.no_path_retry != NoPathRetry::Fail,
        };
        let groups = map
            .groups()
            .iter()
            .enumerate()
            .map(|(i, g)| GroupSnapshot {
                selector: cfg.selector_text.clone(),
                prio: g.prio,
                status: map.group_status(i).as_str().to_string(),
                paths: g
                    .paths
                    .iter()
                    .filter_map(|id| map.path(*id))
                    .map(|p| {
                        let facts = dev
                            .paths
                            .get(&p.id)
                            .cloned()
                            .unwrap_or_else(|| PathFacts::from_id(p.id, &p.info.name));
                        PathSnapshot {
                            id: p.id.0,
                            wwid: cfg.wwid.clone(),
                            multipath: Some(cfg.alias.clone()),
                            size: dev.size,
                            hcil: facts.hcil,
                            dev: facts.dev,
                            dev_t: facts.dev_t.or_else(|| dev.dev_t.clone()),
                            dm_state: p.dm_state.as_str().to_string(),
                            checker: p.checker.as_str().to_string(),
                            dev_state: if facts.online { "running" } else { "offline" }.into(),
                            prio: p.prio,
                            next_check: map
                                .next_check_column(p.id, now)
                                .unwrap_or_else(|| "orphan".into()),
                            vpr: format!("{},{},{}", dev.vendor, dev.product, dev.revision),
                            serial: p.info.serial.clone(),
                            target_name: p.info.target_name.clone(),
                            portal: facts.portal,
                            tpg: p.info.tpg,
                            sid: facts.sid,
                            failed_because: p.failed_because.clone(),
                            in_flight: p.in_flight,
                        }
                    })
                    .collect(),
            })
            .collect();
        MapSnapshot {
            name: cfg.alias.clone(),
            wwid: cfg.wwid.clone(),
            sysfs: dev.kernel_name.clone(),
            dev_t: dev.dev_t.clone(),
            size: dev.size,
            vendor: dev.vendor.clone(),
            product: dev.product.clone(),
            revision: dev.revision.clone(),
            features: features(&dev.features, queueing_on),
            hwhandler: if dev.hwhandler.is_empty() {
                "0".into()
            } else {
                dev.hwhandler.clone()
            },
            write_protect: dev.write_protect,
            failback: match cfg.failback {
                Failback::Immediate => "immediate".into(),
                Failback::FollowOver => "followover".into(),
                Failback::Manual | Failback::Deferred(_) => "-".into(),
            },
            queueing: map.queueing_display(now),
            queued: map.queued(),
            pending: map.pending(),
            stats: map.stats().into(),
            groups,
        }
    }

    /// `%N`: paths dm may send I/O down.
    pub fn active_paths(&self) -> usize {
        self.paths().filter(|p| p.dm_state == "active").count()
    }

    /// Every path of the map, group by group.
    pub fn paths(&self) -> impl Iterator<Item = &PathSnapshot> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }
}

/// The kernel table's features: the configured ones (`"2 pg_init_retries 50"`), with
/// `queue_if_no_path` first while the map queues (dm-mpath's order,
/// `multipath_status`).
fn features(configured: &str, queueing: bool) -> String {
    let mut words: Vec<&str> = configured.split_whitespace().skip(1).collect();
    words.retain(|w| *w != "queue_if_no_path");
    if queueing {
        words.insert(0, "queue_if_no_path");
    }
    if words.is_empty() {
        return "0".into();
    }
    format!("{} {}", words.len(), words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_add_queue_if_no_path_while_queueing() {
        assert_eq!(features("0", false), "0");
        assert_eq!(features("", true), "1 queue_if_no_path");
        assert_eq!(
            features("2 pg_init_retries 50", true),
            "3 queue_if_no_path pg_init_retries 50"
        );
        assert_eq!(features("1 queue_if_no_path", false), "0");
    }
}
