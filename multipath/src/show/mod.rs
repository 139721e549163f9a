//! What the map printers print: [`MapSnapshot`] (plain data taken inside a map's task)
//! and the layouts of `multipath -ll`/`-l` and `multipathd show …`.
pub mod snapshot;

pub use snapshot::{
    DeviceFacts, GroupSnapshot, MapSnapshot, PathFacts, PathSnapshot, StatsSnapshot,
};

use crate::control::{Response, Show};

/// What `show` answers need beyond the maps, from the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonFacts {
    /// `show config`: the effective configuration as `multipath -t` prints it
    /// (`config::print`).
    pub config: String,
    /// Session LUNs the node has but no map uses (blacklisted, or waiting for
    /// find_multipaths): `show paths` lists them as `orphan`.
    pub orphans: Vec<PathSnapshot>,
}

/// The daemon's answer to a `show` command over `maps` (in the order the daemon keeps
/// them).
pub fn answer(show: &Show, maps: &[MapSnapshot], daemon: &DaemonFacts) -> Response {
    let _ = (show, maps, daemon);
    Response::Error {
        code: 1,
        message: "not implemented yet".into(),
    }
}
