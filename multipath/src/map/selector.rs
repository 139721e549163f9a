//! The path selectors of dm-multipath, choosing a path inside the active group
//! (Linux `drivers/md/dm-round-robin.c`, `dm-queue-length.c`, `dm-service-time.c`).
//!
//! Each keeps a rotating start so that paths of equal load take turns, as the kernel
//! selectors do by moving the first valid path to the tail before they look.

use super::path::Path;
use crate::config::{RrWeight, SelectorKind};

/// A group's selector state.
#[derive(Debug, Clone)]
pub struct PathSelector {
    kind: SelectorKind,
    /// `rr_min_io_rq`: I/Os sent down a path before round-robin moves on.
    min_io: u32,
    weight: RrWeight,
    /// Index (in the group) of the path round-robin is on, or where the next scan of
    /// the load-based selectors starts.
    cursor: usize,
    /// I/Os round-robin may still send down the path at `cursor`.
    left: u32,
    /// Whether round-robin has chosen a path yet.
    started: bool,
}

impl PathSelector {
    pub fn new(kind: SelectorKind, min_io: u32, weight: RrWeight) -> PathSelector {
        PathSelector {
            kind,
            min_io: min_io.max(1),
            weight,
            cursor: 0,
            left: 0,
            started: false,
        }
    }

    /// The index in `paths` (the group's paths, in group order) of the path for an I/O
    /// of `bytes`, among the usable ones; None when none is usable.
    pub fn select(&mut self, paths: &[&Path], bytes: u64) -> Option<usize> {
        let n = paths.len();
        if !paths.iter().any(|p| p.usable()) {
            return None;
        }
        match self.kind {
            SelectorKind::RoundRobin => {
                if self.left > 0 && self.cursor < n && paths[self.cursor].usable() {
                    self.left -= 1;
                    return Some(self.cursor);
                }
                // The first time, start at the group's first path.
                let from = if self.started { 1 } else { 0 };
                self.started = true;
                let next = (from..from + n)
                    .map(|i| (self.cursor + i) % n)
                    .find(|&i| paths[i].usable())?;
                self.cursor = next;
                self.left = self.repeat(paths[next]) - 1;
                Some(next)
            }
            SelectorKind::QueueLength => self.least(paths, |p| (p.in_flight as u128, 1)),
            // historical-service-time keeps latency history the core does not have;
            // it chooses as service-time does.
            SelectorKind::ServiceTime | SelectorKind::HistoricalServiceTime => {
                self.least(paths, |p| {
                    (
                        (p.in_flight_bytes + bytes) as u128,
                        p.info.relative_throughput as u128,
                    )
                })
            }
        }
    }

    /// round-robin's repeat count: `rr_min_io_rq`, times the path's priority with
    /// `rr_weight priorities` (multipath-tools writes `minio * prio` as the path's
    /// repeat count), as multipath.conf(5) documents them. Linux (seen in 4.9.227 and
    /// later) warns "repeat_count > 1 is deprecated, using 1 instead" in all three
    /// selectors' `add_path` and switches path on every request; hydra keeps the documented
    /// meaning, which equals the kernel's with the default `rr_min_io_rq 1` and
    /// `rr_weight uniform`.
    fn repeat(&self, p: &Path) -> u32 {
        match self.weight {
            RrWeight::Uniform => self.min_io,
            RrWeight::Priorities => self.min_io.saturating_mul(p.prio.max(1) as u32),
        }
    }

    /// The usable path with the least `load / throughput`, scanning from one past the
    /// last start so that ties rotate (`ql_select_path`, `st_select_path`). A
    /// throughput of 0 is used only when no other path is usable
    /// (`st_compare_load`); between equal loads the higher throughput wins.
    fn least(&mut self, paths: &[&Path], load: impl Fn(&Path) -> (u128, u128)) -> Option<usize> {
        let n = paths.len();
        self.cursor = (self.cursor + 1) % n;
        let mut best: Option<(usize, (u128, u128))> = None;
        for i in (0..n).map(|k| (self.cursor + k) % n) {
            if !paths[i].usable() {
                continue;
            }
            let l = load(paths[i]);
            let better = match best {
                None => true,
                Some((_, b)) => less_loaded(l, b),
            };
            if better {
                best = Some((i, l));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Whether load `a` = (size, throughput) is strictly lighter than `b`: compares
/// sa/ta with sb/tb by cross-multiplying, as `st_compare_load` does.
fn less_loaded((sa, ta): (u128, u128), (sb, tb): (u128, u128)) -> bool {
    match (ta, tb) {
        (0, 0) => sa < sb,
        (0, _) => false,
        (_, 0) => true,
        _ if sa * tb == sb * ta => ta > tb,
        _ => sa * tb < sb * ta,
    }
}
