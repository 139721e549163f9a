//! When each path is checked: multipathd's `check_path` schedule. A path is checked
//! every `polling_interval`; while it stays up and unchanged the interval doubles, up
//! to `max_polling_interval`; any change (or a failed path) brings it back to
//! `polling_interval`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::path::PathId;

#[derive(Debug, Clone)]
pub(crate) struct CheckSchedule {
    pub polling: Duration,
    pub max: Duration,
    /// When each path is due.
    next: BTreeMap<PathId, Instant>,
    /// Paths whose check was asked for and has not been answered.
    outstanding: BTreeSet<PathId>,
    /// Outstanding paths to check again as soon as they answer (their session came
    /// back while the check was out, so its answer may be stale).
    again: BTreeSet<PathId>,
}

impl CheckSchedule {
    pub fn new(polling: Duration, max: Duration) -> CheckSchedule {
        CheckSchedule {
            polling,
            max: max.max(polling),
            next: BTreeMap::new(),
            outstanding: BTreeSet::new(),
            again: BTreeSet::new(),
        }
    }

    /// Check `id` at `when` (a new path, or a session that came back: at once).
    pub fn check_at(&mut self, id: PathId, when: Instant) {
        if self.outstanding.contains(&id) {
            self.again.insert(id);
        }
        self.next.insert(id, when);
    }

    pub fn remove(&mut self, id: PathId) {
        self.next.remove(&id);
        self.outstanding.remove(&id);
        self.again.remove(&id);
    }

    /// The paths due at `now` with no check outstanding; they become outstanding.
    pub fn due(&mut self, now: Instant) -> Vec<PathId> {
        let due: Vec<PathId> = self
            .next
            .iter()
            .filter(|(id, at)| **at <= now && !self.outstanding.contains(id))
            .map(|(id, _)| *id)
            .collect();
        self.outstanding.extend(due.iter().copied());
        due
    }

    /// A check of `id` was answered at `now`: the next interval after `interval`,
    /// given whether the path is up and whether its state changed. Returns it.
    pub fn answered(
        &mut self,
        id: PathId,
        now: Instant,
        interval: Duration,
        up: bool,
        changed: bool,
    ) -> Duration {
        self.outstanding.remove(&id);
        let next = if up && !changed {
            (interval * 2).clamp(self.polling, self.max)
        } else {
            self.polling
        };
        let at = if self.again.remove(&id) {
            now
        } else {
            now + next
        };
        self.next.insert(id, at);
        next
    }

    /// When `id` is next due (None: a check is outstanding, or unknown path).
    pub fn next_check(&self, id: PathId) -> Option<Instant> {
        if self.outstanding.contains(&id) {
            return None;
        }
        self.next.get(&id).copied()
    }

    /// The earliest instant a check falls due.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
            .iter()
            .filter(|(id, _)| !self.outstanding.contains(id))
            .map(|(_, at)| *at)
            .min()
    }
}
