//! What the map printers print: [`MapSnapshot`] (plain data taken inside a map's task,
//! [`snapshot`]) and multipath-tools' layouts (`libmultipath/print.c`): `multipath
//! -ll`/`-l` and `multipathd show topology` ([`topology`]), `multipathd show
//! paths|maps|status|config|wildcards` and their `format` variants ([`answer`]).
//!
//! # hydra's identifiers in multipath-tools' columns
//!
//! There are no SCSI hosts or `sdX` devices under a hydra map: each path is an iSCSI
//! session's LUN inside the node daemon, and each map is served by a loop device over a
//! FUSE file (or only by NBD). The printers put hydra's own identifiers where
//! multipath-tools puts the kernel's:
//! - `H:C:T:L` (`%i`) is `{sid}:0:0:{lun}`: the iSCSI session id as the host, channel
//!   and target 0, the LUN;
//! - a path's device (`%d`) is `s{sid}l{lun}` (stand-in for `sdX`);
//! - a map's device (`%d`, where multipath prints `dm-N`) is the loop device serving it
//!   (`loop3`), or `undef` when none does;
//! - `dev_t` (`%D`) of a path is the `major:minor` of its map's loop device (a path has
//!   no kernel device of its own), `#:#` when there is none;
//! - `%a` (host adapter) is the portal the session went to, `%n` (target WWNN) the
//!   target's IQN, `%c` (checker) always `tur`.

mod layout;
pub mod persist;
pub mod snapshot;
pub mod topology;
pub mod wildcards;

pub use layout::size;
pub use snapshot::{
    DeviceFacts, GroupSnapshot, MapSnapshot, PathFacts, PathSnapshot, StatsSnapshot,
};
pub use topology::{topology, without_checkers};

use layout::Table;
use serde::{Deserialize, Serialize};

/// The `show` commands (multipathd.8 "Commands").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Show {
    /// `show paths [format F]`.
    Paths { format: Option<String> },
    /// `show maps [format F]`.
    Maps { format: Option<String> },
    /// `show paths raw format F`: no header, no padding (for scripts).
    PathsRaw { format: String },
    /// `show maps raw format F`.
    MapsRaw { format: String },
    /// `show maps status`.
    MapsStatus,
    /// `show maps stats`.
    MapsStats,
    /// `show topology` / `show maps topology` (None), `show map M topology` (Some).
    Topology { map: Option<String> },
    /// `show status`.
    Status,
    /// `show config`.
    Config,
    /// `show wildcards`.
    Wildcards,
}

/// `show paths`' default format (print.c `PRINT_PATH_CHECKER`).
pub const PATHS_FORMAT: &str = "%i %d %D %p %t %T %o %C";
/// `show maps`' default format (`PRINT_MAP_NAMES`).
pub const MAPS_FORMAT: &str = "%n %d %w";
/// `show maps status` (`PRINT_MAP_STATUS`).
pub const MAPS_STATUS_FORMAT: &str = "%n %F %Q %N %t %r";
/// `show maps stats` (`PRINT_MAP_STATS`).
pub const MAPS_STATS_FORMAT: &str = "%n %0 %1 %2 %3 %4";

/// What `show` answers need beyond the maps, from the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonFacts {
    /// `show config`: the effective configuration as `multipath -t` prints it
    /// (`config::print`).
    pub config: String,
    /// Session LUNs the node has but no map uses (blacklisted, or waiting for
    /// find_multipaths): `show paths` lists them as `orphan`
    /// ([`PathSnapshot::orphan`]).
    pub orphans: Vec<PathSnapshot>,
}

/// The daemon's answer to a `show` command over `maps` (in the order the daemon keeps
/// them): the text, or why the command fails (multipathd's `fail`).
pub fn answer(show: &Show, maps: &[MapSnapshot], daemon: &DaemonFacts) -> Result<String, String> {
    let text = match show {
        Show::Paths { format } => {
            let rows: Vec<&PathSnapshot> = maps
                .iter()
                .flat_map(|m| m.paths())
                .chain(daemon.orphans.iter())
                .collect();
            paths(format.as_deref().unwrap_or(PATHS_FORMAT), &rows)
        }
        Show::PathsRaw { format } => {
            let rows: Vec<&PathSnapshot> = maps
                .iter()
                .flat_map(|m| m.paths())
                .chain(daemon.orphans.iter())
                .collect();
            path_table(format).render_raw(&rows)
        }
        Show::Maps { format } => self::maps(format.as_deref().unwrap_or(MAPS_FORMAT), maps),
        Show::MapsRaw { format } => {
            let rows: Vec<&MapSnapshot> = maps.iter().collect();
            map_table(format).render_raw(&rows)
        }
        Show::MapsStatus => self::maps(MAPS_STATUS_FORMAT, maps),
        Show::MapsStats => self::maps(MAPS_STATS_FORMAT, maps),
        Show::Topology { map: None } => topology(maps, 2, false),
        Show::Topology { map: Some(name) } => match find(maps, name) {
            Some(m) => topology(std::slice::from_ref(m), 2, false),
            None => return Err(format!("{name}: invalid map name")),
        },
        Show::Status => status(maps, daemon),
        Show::Config => daemon.config.clone(),
        Show::Wildcards => wildcards::list(),
    };
    Ok(text)
}

/// The map `name` names: its alias, WWID or serving device (as multipathd's `map $map`
/// takes `dm-N`, an alias or a WWID), also as `/dev/mapper/NAME` or `/dev/loopN`.
pub fn find<'a>(maps: &'a [MapSnapshot], name: &str) -> Option<&'a MapSnapshot> {
    let name = name
        .strip_prefix("/dev/mapper/")
        .or_else(|| name.strip_prefix("/dev/"))
        .unwrap_or(name);
    maps.iter()
        .find(|m| m.name == name || m.wwid == name || m.sysfs.as_deref() == Some(name))
}

/// The path `name` names in `maps`, with its map: its device name (`s1l0`, also as
/// `/dev/s1l0`) or its `H:C:T:L`, as multipathd's `fail path $path` takes `sdX` or a
/// device number.
pub fn find_path<'a>(
    maps: &'a [MapSnapshot],
    name: &str,
) -> Option<(&'a MapSnapshot, &'a PathSnapshot)> {
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    maps.iter().find_map(|m| {
        m.paths()
            .find(|p| p.dev == name || p.hcil == name)
            .map(|p| (m, p))
    })
}

fn path_table(format: &str) -> Table<'_, PathSnapshot> {
    Table {
        format,
        value: wildcards::path_value,
        header: wildcards::path_header,
    }
}

fn map_table(format: &str) -> Table<'_, MapSnapshot> {
    Table {
        format,
        value: wildcards::map_value,
        header: wildcards::map_header,
    }
}

/// `show paths [format F]`: a header, then one line per path; nothing without paths.
pub fn paths(format: &str, rows: &[&PathSnapshot]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    path_table(format).render(rows, true)
}

/// `show maps [format F]`, `show maps status|stats`: a header, then one line per map;
/// nothing without maps.
pub fn maps(format: &str, maps: &[MapSnapshot]) -> String {
    if maps.is_empty() {
        return String::new();
    }
    let rows: Vec<&MapSnapshot> = maps.iter().collect();
    map_table(format).render(&rows, true)
}

/// `show status` (print.c `snprint_status`): paths counted by checker state, in the
/// checkers' state order, under multipath-tools' state names.
pub fn status(maps: &[MapSnapshot], daemon: &DaemonFacts) -> String {
    // checker_state_name() for PATH_UNCHECKED, PATH_DOWN, PATH_UP, PATH_SHAKY,
    // PATH_GHOST, PATH_PENDING, keyed by the `%T` text.
    const STATES: &[(&str, &str)] = &[
        ("undef", "unchecked"),
        ("faulty", "down"),
        ("ready", "up"),
        ("shaky", "shaky"),
        ("ghost", "ghost"),
        ("i/o pending", "pending"),
    ];
    let all: Vec<&PathSnapshot> = maps
        .iter()
        .flat_map(|m| m.paths())
        .chain(daemon.orphans.iter())
        .collect();
    let mut out = String::from("path checker states:\n");
    for (chk, name) in STATES {
        let n = all.iter().filter(|p| p.checker == *chk).count();
        if n > 0 {
            out.push_str(&format!("{name:<20}{n}\n"));
        }
    }
    out.push_str(&format!("\npaths: {}\nbusy: False\n", all.len()));
    out
}

#[cfg(test)]
mod tests;
