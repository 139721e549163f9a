//! One path of a map and the states `multipath -ll` and `multipathd show paths` print
//! for it (multipath-tools `libmultipath/print.c`: `%t` dm state, `%T` checker state,
//! `%p` priority).

use std::fmt;
use std::time::Duration;

/// A path's handle inside its map, given by the driver (e.g. its session and LUN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(pub u64);

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path {}", self.0)
    }
}

/// What the driver knows about a path when it adds it: the grouping keys and the
/// names the printers show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// How logs and printers name the path (hydra's stand-in for `sdX`, e.g.
    /// `s3:l1`, the session and LUN).
    pub name: String,
    /// `group_by_serial`'s key: the LUN's unit serial number (INQUIRY VPD page 0x80,
    /// SPC-4 §7.8.15). tgt and hydra tgtd give a LUN one serial on every portal, so
    /// paths to one target group together; a second target system serving the same
    /// WWID (an HA pair) has its own serial and gets its own group.
    pub serial: String,
    /// `group_by_node_name`'s key: for iSCSI, multipath-tools uses the session's
    /// target name (`/sys/class/iscsi_session/*/targetname`), so for hydra it is the
    /// target IQN the session logged in to. Portals of one target share a group.
    pub target_name: String,
    /// The target port group (REPORT TARGET PORT GROUPS, SPC-4 §6.37) of the port
    /// this path goes through, when the LUN reports ALUA; shown, not used for
    /// grouping (`group_by_prio` with the `alua` prioritizer groups by access state).
    pub tpg: Option<u16>,
    /// The path's relative throughput for `service-time` (dm-service-time's
    /// per-path argument, 0..=100; multipath-tools writes 1 for every path).
    pub relative_throughput: u32,
}

impl PathInfo {
    /// A path with the given name and keys, ALUA unknown, relative throughput 1.
    pub fn new(name: &str, serial: &str, target_name: &str) -> PathInfo {
        PathInfo {
            name: name.to_string(),
            serial: serial.to_string(),
            target_name: target_name.to_string(),
            tpg: None,
            relative_throughput: 1,
        }
    }
}

/// The kernel's view (`%t`): whether dm-multipath may send I/O down the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmState {
    Active,
    Failed,
}

impl DmState {
    pub fn as_str(self) -> &'static str {
        match self {
            DmState::Active => "active",
            DmState::Failed => "failed",
        }
    }
}

/// The checker's view (`%T`, multipath-tools `checker_state_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckerState {
    /// Not checked yet.
    Undef,
    /// A check is outstanding.
    Pending,
    /// TEST UNIT READY (or the read) succeeded.
    Ready,
    /// The check failed, or the session is down.
    Faulty,
    /// The port answers but is in ALUA standby (NOT READY 04/0B): usable, in a lower
    /// priority group.
    Ghost,
    /// Up, but failed and came back too often (multipath-tools' shaky paths): kept
    /// failed until it settles. hydra does not detect it yet; the state exists so a
    /// checker can report it.
    Shaky,
}

impl CheckerState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckerState::Undef => "undef",
            CheckerState::Pending => "i/o pending",
            CheckerState::Ready => "ready",
            CheckerState::Faulty => "faulty",
            CheckerState::Ghost => "ghost",
            CheckerState::Shaky => "shaky",
        }
    }
}

/// The ALUA access state of the path's target port group (SPC-4 §6.37, Table 193).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    Transitioning,
}

impl AluaState {
    /// The `alua` prioritizer's value (multipath-tools `prioritizers/alua.c`): 50, 10,
    /// 1, 0, 0; plus 80 with the preferred bit (PREF, SPC-4 §6.37).
    pub fn prio(self, preferred: bool) -> i32 {
        let base = match self {
            AluaState::ActiveOptimized => 50,
            AluaState::ActiveNonOptimized => 10,
            AluaState::Standby => 1,
            AluaState::Unavailable | AluaState::Transitioning => 0,
        };
        base + if preferred { 80 } else { 0 }
    }
}

/// A checker's answer, fed back with [`crate::map::Map::handle_check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Ready, with the prioritizer's value (and ALUA state, if known).
    Up { prio: i32, alua: Option<AluaState> },
    /// Answers, but in standby: usable at low priority.
    Ghost { prio: i32, alua: Option<AluaState> },
    /// Did not answer, or answered with an error; `why` goes into the log line.
    Down { why: String },
}

/// One path as the map keeps it.
#[derive(Debug, Clone)]
pub struct Path {
    pub id: PathId,
    pub info: PathInfo,
    pub dm_state: DmState,
    pub checker: CheckerState,
    pub prio: i32,
    pub alua: Option<AluaState>,
    /// I/Os dispatched on this path and not completed yet (queue-length's load).
    pub in_flight: u32,
    /// Their bytes (service-time's load).
    pub in_flight_bytes: u64,
    /// Why the path was last failed (for logs and `show paths`).
    pub failed_because: Option<String>,
    /// The checker's interval now: polling_interval, doubling while healthy.
    pub check_interval: Duration,
    /// Times the path was failed (`show maps stats` counts them per map).
    pub faults: u64,
}

impl Path {
    pub fn usable(&self) -> bool {
        self.dm_state == DmState::Active
    }
}
