//! One multipath map's decisions, sans-IO: which path an I/O goes down, what a
//! completion or a path event changes, when paths are checked, when I/O waits for a
//! path and when it fails. dm-multipath's kernel rules (`drivers/md/dm-mpath.c`: fail a
//! path on a path error, retry the I/O on the next usable path or group, queue if
//! asked) and multipathd's (`multipathd/main.c`: checker schedule, reinstate,
//! failback, `no_path_retry`) in one state machine.
//!
//! No clock, no tasks: every input carries `now`, every output is pulled. A driver
//! runs it as one loop (quinn-proto's shape):
//!
//! 1. feed what happened: [`Map::submit`] (a new I/O from the block device),
//!    [`Map::handle_completion`] (a dispatch ended), [`Map::handle_path_event`] (the
//!    session's state stream), [`Map::handle_check`] (a checker answer), operator
//!    commands ([`Map::fail_path`], [`Map::reinstate_path`], [`Map::switch_group`]);
//! 2. drain [`Map::poll_event`] and act: [`Event::Dispatch`] sends the I/O on that
//!    path, [`Event::Done`] answers the caller, [`Event::CheckPath`] runs the checker
//!    (TEST UNIT READY, then the prioritizer) and feeds the answer back, [`Event::Log`]
//!    logs;
//! 3. sleep until [`Map::poll_timeout`] or the next input, then call
//!    [`Map::handle_timeout`].
//!
//! Every submitted I/O ends in exactly one [`Event::Done`], and never with
//! [`IoResult::NoPath`] while a usable path exists or queueing holds it.
//!
//! Files: [`path`] (a path's states), [`group`] (grouping policies, group order),
//! [`selector`] (round-robin, queue-length, service-time), [`io`] (an I/O and its
//! outcomes), `checker` (check schedule), [`queueing`] (`no_path_retry`).

pub mod group;
pub mod io;
pub mod path;
pub mod queueing;
pub mod selector;

mod checker;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::{Failback, Globals, NoPathRetry, PgPolicy, RrWeight, SelectorKind, Settings};
use crate::{Error, Result};

use checker::CheckSchedule;
pub use group::{GroupStatus, PathGroup};
use io::IoRecord;
pub use io::{IoId, IoResult, Outcome};
pub use path::{AluaState, CheckResult, CheckerState, DmState, Path, PathId, PathInfo};
pub use queueing::QueueState;
use queueing::Queueing;
use selector::PathSelector;

/// How many times an I/O is retried on the same path for [`Outcome::Retry`] before it
/// counts as a path error (the SCSI midlayer's 5 retries for disks, `SD_MAX_RETRIES`).
pub const MAX_RETRIES: u32 = 5;

/// What a map runs by, taken from the resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    pub wwid: String,
    /// The map's name (alias or WWID).
    pub alias: String,
    pub pg_policy: PgPolicy,
    pub selector: SelectorKind,
    /// The selector as written ("service-time 0"), for the printers.
    pub selector_text: String,
    pub rr_min_io_rq: u32,
    pub rr_weight: RrWeight,
    pub failback: Failback,
    pub no_path_retry: NoPathRetry,
    pub polling_interval: Duration,
    pub max_polling_interval: Duration,
    pub max_retries: u32,
}

impl MapConfig {
    /// The configuration of the map `alias` of `wwid` from its resolved settings.
    pub fn new(wwid: &str, alias: &str, s: &Settings, g: &Globals) -> MapConfig {
        MapConfig {
            wwid: wwid.to_string(),
            alias: alias.to_string(),
            pg_policy: s.path_grouping_policy.value,
            selector: s.path_selector.value.kind,
            selector_text: s.path_selector.value.text.clone(),
            rr_min_io_rq: s.rr_min_io_rq.value,
            rr_weight: s.rr_weight.value,
            failback: s.failback.value,
            no_path_retry: s.no_path_retry.value,
            polling_interval: Duration::from_secs(g.polling_interval.max(1).into()),
            max_polling_interval: Duration::from_secs(g.max_polling_interval.max(1).into()),
            max_retries: MAX_RETRIES,
        }
    }
}

/// What the driver must do, pulled with [`Map::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send the I/O on this path (again, if it was sent before).
    Dispatch { io: IoId, path: PathId },
    /// The I/O is finished; answer its caller.
    Done { io: IoId, result: IoResult },
    /// Run the path checker on this path and feed [`Map::handle_check`].
    CheckPath(PathId),
    /// A line for the log, worded as multipathd's where it has one.
    Log { level: LogLevel, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// A session's state, as the map needs it (from `hydra_initiator::PathState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEvent {
    /// Logged in again: checked at once, reinstated when the checker answers.
    Up,
    /// The connection is lost: the path fails at once.
    Down { why: String },
}

impl PathEvent {
    pub fn from_state(s: &hydra_initiator::PathState) -> PathEvent {
        match s {
            hydra_initiator::PathState::Up { .. } => PathEvent::Up,
            hydra_initiator::PathState::Down { reason, .. } => PathEvent::Down {
                why: reason.to_string(),
            },
            hydra_initiator::PathState::LoggedOut => PathEvent::Down {
                why: "logged out".into(),
            },
        }
    }
}

/// `multipathd show maps stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Paths failed (`path_faults`).
    pub path_faults: u64,
    /// Group switches (`switch_grp`).
    pub switch_group: u64,
    /// Times queueing ran out and queued I/O failed (`q_timeouts`).
    pub queue_timeouts: u64,
}

/// One map. See the module doc for the driver's loop.
#[derive(Debug)]
pub struct Map {
    cfg: MapConfig,
    paths: Vec<Path>,
    groups: Vec<PathGroup>,
    selectors: Vec<PathSelector>,
    /// The group I/O goes to (dm's current_pg).
    current: Option<usize>,
    /// The path last chosen, to find the current group again after regrouping.
    last_path: Option<PathId>,
    ios: BTreeMap<IoId, IoRecord>,
    queued: VecDeque<IoId>,
    next_io: u64,
    events: VecDeque<Event>,
    checks: CheckSchedule,
    queueing: Queueing,
    failback_at: Option<Instant>,
    stats: MapStats,
}

impl Map {
    pub fn new(cfg: MapConfig) -> Map {
        let checks = CheckSchedule::new(cfg.polling_interval, cfg.max_polling_interval);
        let queueing = Queueing::new(cfg.no_path_retry, cfg.polling_interval);
        Map {
            cfg,
            paths: Vec::new(),
            groups: Vec::new(),
            selectors: Vec::new(),
            current: None,
            last_path: None,
            ios: BTreeMap::new(),
            queued: VecDeque::new(),
            next_io: 0,
            events: VecDeque::new(),
            checks,
            queueing,
            failback_at: None,
            stats: MapStats::default(),
        }
    }

    // ----- inputs ---------------------------------------------------------------

    /// Add a path (a session's LUN with this map's WWID). It is usable at once (its
    /// session is logged in) and checked at once, which gives it its priority.
    pub fn add_path(&mut self, now: Instant, id: PathId, info: PathInfo) -> Result<()> {
        if self.path_index(id).is_some() {
            return Err(Error::DuplicatePath {
                map: self.cfg.alias.clone(),
                path: id.0,
            });
        }
        self.log(
            LogLevel::Info,
            format!("{}: add {}", self.cfg.alias, info.name),
        );
        self.paths.push(Path {
            id,
            info,
            dm_state: DmState::Active,
            checker: CheckerState::Undef,
            prio: 0,
            alua: None,
            in_flight: 0,
            in_flight_bytes: 0,
            failed_because: None,
            check_interval: self.cfg.polling_interval,
            faults: 0,
        });
        self.checks.check_at(id, now);
        self.regroup();
        self.path_usable(now, id);
        Ok(())
    }

    /// Remove a path. Its I/Os must have been completed first
    /// ([`Map::handle_completion`] with a path error re-dispatches them).
    pub fn remove_path(&mut self, now: Instant, id: PathId) -> Result<()> {
        let i = self.index_or_err(id)?;
        if self.paths[i].in_flight > 0 {
            return Err(Error::PathBusy {
                map: self.cfg.alias.clone(),
                path: id.0,
                in_flight: self.paths[i].in_flight,
            });
        }
        let was_usable = self.paths[i].usable();
        let p = self.paths.remove(i);
        self.checks.remove(id);
        self.log(
            LogLevel::Info,
            format!("{}: remove {}", self.cfg.alias, p.info.name),
        );
        self.regroup();
        if was_usable {
            self.after_loss(now);
        }
        Ok(())
    }

    /// A new I/O of `bytes` from the map's user. Its handle comes back in the events.
    pub fn submit(&mut self, now: Instant, bytes: u64) -> IoId {
        let io = IoId(self.next_io);
        self.next_io += 1;
        self.ios.insert(
            io,
            IoRecord {
                bytes,
                path: None,
                retries: 0,
                last_path_error: None,
            },
        );
        self.dispatch(now, io);
        io
    }

    /// A dispatch of `io` ended with `outcome`.
    pub fn handle_completion(&mut self, now: Instant, io: IoId, outcome: Outcome) -> Result<()> {
        let unknown = |state| Error::UnknownIo {
            map: self.cfg.alias.clone(),
            io: io.0,
            state,
        };
        let rec = self.ios.get(&io).ok_or_else(|| unknown("not in flight"))?;
        let Some(pid) = rec.path else {
            return Err(unknown("queued, not dispatched"));
        };
        let bytes = rec.bytes;
        if let Some(i) = self.path_index(pid) {
            let p = &mut self.paths[i];
            p.in_flight -= 1;
            p.in_flight_bytes -= bytes;
        }
        // The path error to fail the path with, if any.
        let why = match outcome {
            Outcome::Final => {
                self.finish(io, IoResult::Completed);
                return Ok(());
            }
            Outcome::Retry => {
                let usable = self.path(pid).is_some_and(Path::usable);
                let rec = self.ios.get_mut(&io).expect("looked up above");
                if usable && rec.retries < self.cfg.max_retries {
                    rec.retries += 1;
                    self.send(io, pid);
                    return Ok(());
                }
                // Out of retries, a path error as Linux makes it (BLK_STS_IOERR); a
                // path failed meanwhile needs no failing, the I/O just moves on.
                usable.then(|| format!("{} retries exhausted", self.cfg.max_retries))
            }
            Outcome::PathError { why } => Some(why),
        };
        if let Some(why) = &why {
            self.fail(now, pid, why);
        }
        let rec = self.ios.get_mut(&io).expect("looked up above");
        rec.path = None;
        rec.retries = 0;
        if why.is_some() {
            rec.last_path_error = why;
        }
        self.dispatch(now, io);
        Ok(())
    }

    /// The session under path `id` changed state.
    pub fn handle_path_event(&mut self, now: Instant, id: PathId, ev: PathEvent) -> Result<()> {
        let i = self.index_or_err(id)?;
        match ev {
            PathEvent::Up => {
                self.paths[i].check_interval = self.cfg.polling_interval;
                self.checks.check_at(id, now);
            }
            PathEvent::Down { why } => {
                let changed = self.paths[i].checker != CheckerState::Faulty;
                self.paths[i].checker = CheckerState::Faulty;
                self.paths[i].check_interval = self.cfg.polling_interval;
                if self.checks.next_check(id).is_some() {
                    self.checks.check_at(id, now + self.cfg.polling_interval);
                }
                self.fail(now, id, &format!("session down: {why}"));
                if changed {
                    self.refresh_group_prios();
                }
            }
        }
        Ok(())
    }

    /// The checker's answer for path `id` (after [`Event::CheckPath`]).
    pub fn handle_check(&mut self, now: Instant, id: PathId, res: CheckResult) -> Result<()> {
        let i = self.index_or_err(id)?;
        let (old_state, old_prio) = (self.paths[i].checker, self.paths[i].prio);
        let (state, up) = match &res {
            CheckResult::Up { prio, alua } | CheckResult::Ghost { prio, alua } => {
                self.paths[i].prio = *prio;
                self.paths[i].alua = *alua;
                let s = match res {
                    CheckResult::Up { .. } => CheckerState::Ready,
                    _ => CheckerState::Ghost,
                };
                (s, true)
            }
            CheckResult::Down { .. } => (CheckerState::Faulty, false),
        };
        self.paths[i].checker = state;
        let was_failed = !self.paths[i].usable();
        let changed = state != old_state || (up && was_failed);
        let interval = self.paths[i].check_interval;
        self.paths[i].check_interval = self.checks.answered(id, now, interval, up, changed);
        if self.paths[i].prio != old_prio {
            self.regroup();
        } else if state != old_state {
            self.refresh_group_prios();
        }
        match res {
            CheckResult::Down { why } => self.fail(now, id, &format!("checker: {why}")),
            _ if was_failed => self.reinstate(now, id, "checker"),
            _ if self.paths[i].prio != old_prio => self.consider_failback(now, None),
            _ => {}
        }
        Ok(())
    }

    /// Time passed: issue due checks, fail back after `failback N`, end
    /// `no_path_retry N`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for id in self.checks.due(now) {
            self.events.push_back(Event::CheckPath(id));
        }
        if self.failback_at.is_some_and(|at| at <= now) {
            self.failback_at = None;
            if let (Some(best), Some(cur)) = (self.best_group(), self.current) {
                if best != cur {
                    self.switch_to(best, "deferred failback");
                }
            }
        }
        if let Some(why) = self.queueing.expire(now) {
            self.stats.queue_timeouts += 1;
            self.log(LogLevel::Error, format!("{}: {why}", self.cfg.alias));
            let why = format!("{}: {why}", self.cfg.alias);
            while let Some(io) = self.queued.pop_front() {
                self.finish(io, IoResult::NoPath { why: why.clone() });
            }
        }
    }

    /// When [`Map::handle_timeout`] is next needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.checks.deadline(),
            self.failback_at,
            self.queueing.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing the driver must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- operator commands (multipathd) -----------------------------------------

    /// `multipathd fail path P`. The checker reinstates it at its next check if it
    /// answers, as multipathd's does.
    pub fn fail_path(&mut self, now: Instant, id: PathId) -> Result<()> {
        self.index_or_err(id)?;
        self.fail(now, id, "failed by operator");
        Ok(())
    }

    /// `multipathd reinstate path P`.
    pub fn reinstate_path(&mut self, now: Instant, id: PathId) -> Result<()> {
        let i = self.index_or_err(id)?;
        if !self.paths[i].usable() {
            self.reinstate(now, id, "operator");
        }
        Ok(())
    }

    /// `multipathd switchgroup map M group N` (N counts from 1, as printed). If the
    /// group has no usable path, the next I/O moves on as after a failure.
    pub fn switch_group(&mut self, group: usize) -> Result<()> {
        if group == 0 || group > self.groups.len() {
            return Err(Error::NoSuchGroup {
                map: self.cfg.alias.clone(),
                group,
                groups: self.groups.len(),
            });
        }
        self.failback_at = None;
        self.switch_to(group - 1, "operator");
        Ok(())
    }

    /// `multipathd disablequeueing map M`: I/O held for lack of a path fails now, and
    /// so does any later I/O that finds no path, until [`Map::restore_queueing`].
    pub fn disable_queueing(&mut self, now: Instant) {
        self.queueing.operator_off = true;
        if self.usable_paths() == 0 {
            self.queueing.state = QueueState::Off;
            self.after_loss(now);
            let why = format!("{}: {}", self.cfg.alias, self.queueing.off_reason());
            while let Some(io) = self.queued.pop_front() {
                self.finish(io, IoResult::NoPath { why: why.clone() });
            }
        }
        self.log(
            LogLevel::Info,
            format!("{}: queueing disabled by operator", self.cfg.alias),
        );
    }

    /// `multipathd restorequeueing map M`: `no_path_retry` applies again (and starts
    /// over if the map has no usable path now).
    pub fn restore_queueing(&mut self, now: Instant) {
        self.queueing.operator_off = false;
        self.queueing.state = QueueState::Normal;
        self.after_loss(now);
        self.log(
            LogLevel::Info,
            format!("{}: queueing restored", self.cfg.alias),
        );
    }

    // ----- state for printers -------------------------------------------------------

    pub fn config(&self) -> &MapConfig {
        &self.cfg
    }

    /// Paths in the order they were added.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    pub fn path(&self, id: PathId) -> Option<&Path> {
        self.path_index(id).map(|i| &self.paths[i])
    }

    /// Groups in kernel order (`multipath -ll` numbers them from 1 in this order).
    pub fn groups(&self) -> &[PathGroup] {
        &self.groups
    }

    /// The group I/O goes to, as an index into [`Map::groups`].
    pub fn active_group(&self) -> Option<usize> {
        self.current
    }

    pub fn group_status(&self, index: usize) -> GroupStatus {
        if Some(index) == self.current {
            GroupStatus::Active
        } else {
            GroupStatus::Enabled
        }
    }

    /// When path `id` is next checked (None while a check is outstanding); for
    /// `show paths`' `next_check` column with [`Path::check_interval`].
    pub fn next_check(&self, id: PathId) -> Option<Instant> {
        self.checks.next_check(id)
    }

    /// `multipathd show paths`' `next_check` column (`%C`, print.c
    /// `snprint_progress`): ten characters, an `X` per tenth of the interval still to
    /// wait, then `remaining/interval` in seconds, e.g. `XXXX...... 9/20`. A path
    /// whose check is out shows 0 remaining.
    pub fn next_check_column(&self, id: PathId, now: Instant) -> Option<String> {
        let interval = self.path(id)?.check_interval.as_secs();
        let left = self.checks.next_check(id).map_or(0, |at| {
            let d = at.saturating_duration_since(now);
            d.as_secs() + u64::from(d.subsec_nanos() > 0)
        });
        let x = (10 * left).checked_div(interval).unwrap_or(0).min(10) as usize;
        Some(format!(
            "{}{} {left}/{interval}",
            "X".repeat(x),
            ".".repeat(10 - x)
        ))
    }

    /// `show maps status`' `queueing` column.
    pub fn queueing_display(&self, now: Instant) -> String {
        self.queueing.display(now)
    }

    pub fn queue_state(&self) -> QueueState {
        self.queueing.state
    }

    /// I/Os held for lack of a path.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// I/Os not finished (queued or on a path).
    pub fn pending(&self) -> usize {
        self.ios.len()
    }

    pub fn usable_paths(&self) -> usize {
        self.paths.iter().filter(|p| p.usable()).count()
    }

    pub fn stats(&self) -> MapStats {
        self.stats
    }

    // ----- the decisions --------------------------------------------------------------

    /// Send `io` down a path, or hold it, or fail it.
    fn dispatch(&mut self, now: Instant, io: IoId) {
        let bytes = self.ios[&io].bytes;
        let path = self.choose_path(bytes);
        if path.is_none() && self.queueing.state == QueueState::Normal {
            // A map that never had a path (all removed, or none added yet) queues as
            // configured too.
            self.after_loss(now);
        }
        if let Some(pid) = path {
            self.send(io, pid);
        } else if self.queueing.holds() {
            self.queued.push_back(io);
        } else {
            let mut why = format!("{}: {}", self.cfg.alias, self.queueing.off_reason());
            if let Some(last) = &self.ios[&io].last_path_error {
                why.push_str(&format!(" (last path error: {last})"));
            }
            self.finish(io, IoResult::NoPath { why });
        }
    }

    fn send(&mut self, io: IoId, pid: PathId) {
        let rec = self.ios.get_mut(&io).expect("dispatching a known I/O");
        rec.path = Some(pid);
        let bytes = rec.bytes;
        let i = self.path_index(pid).expect("chosen path exists");
        self.paths[i].in_flight += 1;
        self.paths[i].in_flight_bytes += bytes;
        self.events.push_back(Event::Dispatch { io, path: pid });
    }

    fn finish(&mut self, io: IoId, result: IoResult) {
        self.ios.remove(&io);
        self.events.push_back(Event::Done { io, result });
    }

    /// dm-mpath's `choose_pgpath`: the current group if it has a usable path, else
    /// the first group (in priority order) that has one.
    fn choose_path(&mut self, bytes: u64) -> Option<PathId> {
        let has_usable = |m: &Map, g: usize| {
            m.groups[g]
                .paths
                .iter()
                .any(|id| m.path_index(*id).is_some_and(|i| m.paths[i].usable()))
        };
        let g = match self.current.filter(|&g| has_usable(self, g)) {
            Some(g) => g,
            None => {
                let g = (0..self.groups.len()).find(|&g| has_usable(self, g))?;
                if self.current.is_some() {
                    self.switch_to(g, "current group has no usable path");
                } else {
                    self.current = Some(g);
                }
                g
            }
        };
        let paths = &self.paths;
        let members: Vec<&Path> = self.groups[g]
            .paths
            .iter()
            .filter_map(|id| paths.iter().find(|p| p.id == *id))
            .collect();
        let k = self.selectors[g].select(&members, bytes)?;
        let pid = members[k].id;
        self.last_path = Some(pid);
        Some(pid)
    }

    fn switch_to(&mut self, g: usize, why: &str) {
        if self.current == Some(g) {
            return;
        }
        self.current = Some(g);
        self.stats.switch_group += 1;
        self.log(
            LogLevel::Info,
            format!(
                "{}: switch to path group #{} ({why})",
                self.cfg.alias,
                g + 1
            ),
        );
    }

    /// dm-mpath's `fail_path` and multipathd's log lines.
    fn fail(&mut self, now: Instant, id: PathId, why: &str) {
        let Some(i) = self.path_index(id) else {
            return;
        };
        if !self.paths[i].usable() {
            return;
        }
        let p = &mut self.paths[i];
        p.dm_state = DmState::Failed;
        p.failed_because = Some(why.to_string());
        p.faults += 1;
        let name = p.info.name.clone();
        self.stats.path_faults += 1;
        let remaining = self.usable_paths();
        self.log(
            LogLevel::Warn,
            format!(
                "{}: failing path {name}: {why}; remaining active paths: {remaining}",
                self.cfg.alias
            ),
        );
        if remaining == 0 {
            self.after_loss(now);
        }
    }

    /// Called when the map may have lost its last usable path.
    fn after_loss(&mut self, now: Instant) {
        if self.usable_paths() > 0 || self.queueing.holds() {
            return;
        }
        let line = self.queueing.lost_all(now);
        self.log(LogLevel::Warn, format!("{}: {line}", self.cfg.alias));
    }

    fn reinstate(&mut self, now: Instant, id: PathId, by: &str) {
        let Some(i) = self.path_index(id) else {
            return;
        };
        self.paths[i].dm_state = DmState::Active;
        self.paths[i].failed_because = None;
        let name = self.paths[i].info.name.clone();
        self.log(
            LogLevel::Info,
            format!("{}: {name}: reinstated ({by})", self.cfg.alias),
        );
        self.path_usable(now, id);
    }

    /// Path `id` became usable: queueing back to normal, held I/O flows, failback.
    fn path_usable(&mut self, now: Instant, id: PathId) {
        if let Some(line) = self.queueing.path_back() {
            self.log(LogLevel::Info, format!("{}: {line}", self.cfg.alias));
        }
        while let Some(io) = self.queued.pop_front() {
            self.dispatch(now, io);
        }
        self.consider_failback(now, Some(id));
    }

    /// multipathd's `need_switch_pathgroup` and `failback`: move to the best group
    /// when it is not the current one.
    fn consider_failback(&mut self, now: Instant, came_up: Option<PathId>) {
        let (Some(best), Some(cur)) = (self.best_group(), self.current) else {
            return;
        };
        if best == cur {
            self.failback_at = None;
            return;
        }
        match self.cfg.failback {
            Failback::Manual => {}
            Failback::Immediate => self.switch_to(best, "failback"),
            Failback::Deferred(secs) => {
                if self.failback_at.is_none() {
                    self.failback_at = Some(now + Duration::from_secs(secs.into()));
                }
            }
            // followover_should_failback: only when the path that came up is the
            // first usable one of the best group, i.e. that group came back (not
            // when another group merely failed over to it).
            Failback::FollowOver => {
                let first_of_best = came_up.is_some_and(|id| {
                    self.groups[best].paths.contains(&id)
                        && self.groups[best]
                            .paths
                            .iter()
                            .filter(|p| self.path(**p).is_some_and(Path::usable))
                            .count()
                            == 1
                });
                if first_of_best {
                    self.switch_to(best, "followover failback");
                }
            }
        }
    }

    /// The first group (in priority order) with a usable path.
    fn best_group(&self) -> Option<usize> {
        (0..self.groups.len()).find(|&g| {
            self.groups[g]
                .paths
                .iter()
                .any(|id| self.path(*id).is_some_and(Path::usable))
        })
    }

    /// The groups' priorities and enabled paths after a checker state changed, in the
    /// order they have: multipathd updates them (`path_group_prio_update`) but reloads
    /// the map, which reorders the groups, only when a path is added or removed or a
    /// priority changes.
    fn refresh_group_prios(&mut self) {
        let fresh = group::build(self.cfg.pg_policy, &self.paths);
        for g in &mut self.groups {
            if let Some(f) = fresh.iter().find(|f| f.paths == g.paths) {
                g.prio = f.prio;
                g.enabled_paths = f.enabled_paths;
            }
        }
    }

    /// Rebuild groups after a path was added or removed or a priority changed (multipathd
    /// reloads the map then). The current group stays the one holding the path used
    /// last, if any.
    fn regroup(&mut self) {
        self.groups = group::build(self.cfg.pg_policy, &self.paths);
        self.selectors = self
            .groups
            .iter()
            .map(|_| {
                PathSelector::new(self.cfg.selector, self.cfg.rr_min_io_rq, self.cfg.rr_weight)
            })
            .collect();
        let keep = self
            .last_path
            .and_then(|p| self.groups.iter().position(|g| g.paths.contains(&p)));
        self.current = keep.or(self.current.filter(|&g| g < self.groups.len()));
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.events.push_back(Event::Log { level, message });
    }

    fn path_index(&self, id: PathId) -> Option<usize> {
        self.paths.iter().position(|p| p.id == id)
    }

    fn index_or_err(&self, id: PathId) -> Result<usize> {
        self.path_index(id).ok_or_else(|| Error::UnknownPath {
            map: self.cfg.alias.clone(),
            path: id.0,
        })
    }
}
