//! Path groups: how `path_grouping_policy` splits a map's paths
//! (multipath-tools `libmultipath/pgpolicies.c`), each group's priority
//! (`path_group_prio_update`) and their order (`sort_pathgroups`): the kernel tries the
//! groups in this order, and multipathd's best group is the first one with a usable
//! path.

use super::path::{CheckerState, Path, PathId};
use crate::config::PgPolicy;

/// One path group, as `multipath -ll` prints it (`policy='…' prio=N status=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGroup {
    /// In the order the paths were added.
    pub paths: Vec<PathId>,
    /// The mean priority of its paths that the checker found up (ready or ghost);
    /// 0 when none is (multipath-tools `path_group_prio_update`).
    pub prio: i32,
    /// Paths the checker found up (`enabled_paths`), the tie-break between groups.
    pub enabled_paths: usize,
}

/// `%t` of a group: dm's `A`, `E`, `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStatus {
    /// The group the map sends I/O to.
    Active,
    /// Another group, tried when the active one has no usable path left.
    Enabled,
    /// Bypassed: tried only when no other group has a usable path. hydra bypasses
    /// nothing yet (dm does after a failed hardware-handler initialisation).
    Disabled,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Active => "active",
            GroupStatus::Enabled => "enabled",
            GroupStatus::Disabled => "disabled",
        }
    }
}

/// Split `paths` (in the order they were added) into groups by `policy`, with their
/// priorities, sorted the way multipathd hands them to the kernel: higher priority
/// first, then more enabled paths; equal groups keep their order.
pub fn build(policy: PgPolicy, paths: &[Path]) -> Vec<PathGroup> {
    let key_groups: Vec<Vec<PathId>> = match policy {
        PgPolicy::Failover => paths.iter().map(|p| vec![p.id]).collect(),
        PgPolicy::Multibus if paths.is_empty() => Vec::new(),
        PgPolicy::Multibus => vec![paths.iter().map(|p| p.id).collect()],
        PgPolicy::GroupBySerial => by_key(paths, |p| p.info.serial.clone()),
        PgPolicy::GroupByNodeName => by_key(paths, |p| p.info.target_name.clone()),
        PgPolicy::GroupByPrio => by_key(paths, |p| p.prio),
    };
    let mut groups: Vec<PathGroup> = key_groups
        .into_iter()
        .map(|ids| {
            let up: Vec<i32> = ids
                .iter()
                .filter_map(|id| paths.iter().find(|p| p.id == *id))
                .filter(|p| matches!(p.checker, CheckerState::Ready | CheckerState::Ghost))
                .map(|p| p.prio)
                .collect();
            let prio = match up.len() {
                0 => 0,
                n => up.iter().sum::<i32>() / n as i32,
            };
            PathGroup {
                paths: ids,
                prio,
                enabled_paths: up.len(),
            }
        })
        .collect();
    // A stable sort: groups of equal rank keep the order of their first path.
    groups.sort_by(|a, b| {
        b.prio
            .cmp(&a.prio)
            .then(b.enabled_paths.cmp(&a.enabled_paths))
    });
    groups
}

/// Groups of paths with equal keys, in the order each key first appears.
fn by_key<K: PartialEq>(paths: &[Path], key: impl Fn(&Path) -> K) -> Vec<Vec<PathId>> {
    let mut keys: Vec<K> = Vec::new();
    let mut groups: Vec<Vec<PathId>> = Vec::new();
    for p in paths {
        let k = key(p);
        match keys.iter().position(|x| *x == k) {
            Some(i) => groups[i].push(p.id),
            None => {
                keys.push(k);
                groups.push(vec![p.id]);
            }
        }
    }
    groups
}
