//! What happens to I/O when a map has no usable path: `no_path_retry` (and
//! `features "1 queue_if_no_path"`, folded into it by the configuration). multipathd
//! counts `no_path_retry N` in checker ticks once the last path is gone ("Entering
//! recovery mode"), then disables queueing ("Disable queueing") and the kernel fails
//! what was queued; a path that comes back turns queueing on again.

use std::time::{Duration, Instant};

use crate::config::NoPathRetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    /// Paths are usable (or none was lost yet): queueing is armed as configured.
    Normal,
    /// No usable path; holding I/O until this instant (`no_path_retry N`), or forever
    /// (None: `queue`).
    Recovery { until: Option<Instant> },
    /// Queueing is off: `fail`, or `N` ran out (until a path returns).
    Off,
}

#[derive(Debug, Clone)]
pub(crate) struct Queueing {
    pub policy: NoPathRetry,
    pub polling: Duration,
    pub state: QueueState,
    /// `multipathd disablequeueing map M`: no queueing until `restorequeueing`, even
    /// when paths come and go.
    pub operator_off: bool,
}

impl Queueing {
    pub fn new(policy: NoPathRetry, polling: Duration) -> Queueing {
        Queueing {
            policy,
            polling,
            state: QueueState::Normal,
            operator_off: false,
        }
    }

    /// The last usable path is gone at `now`. Returns the log line.
    pub fn lost_all(&mut self, now: Instant) -> String {
        if self.operator_off {
            self.state = QueueState::Off;
            return "queueing disabled by operator: I/O fails at once".into();
        }
        match self.policy {
            NoPathRetry::Fail => {
                self.state = QueueState::Off;
                "no_path_retry fail: I/O fails at once".into()
            }
            NoPathRetry::Queue => {
                self.state = QueueState::Recovery { until: None };
                "queueing I/O until a path returns (no_path_retry queue)".into()
            }
            NoPathRetry::Retries(n) => {
                self.state = QueueState::Recovery {
                    until: Some(now + self.polling * n),
                };
                format!(
                    "Entering recovery mode: max_retries={n} (queueing for {} s)",
                    self.polling.as_secs() * n as u64
                )
            }
        }
    }

    /// A path is usable again. Returns the log line if queueing was in recovery or off.
    pub fn path_back(&mut self) -> Option<String> {
        let was = std::mem::replace(&mut self.state, QueueState::Normal);
        match (was, self.policy) {
            _ if self.operator_off => None,
            (QueueState::Normal, _) | (QueueState::Off, NoPathRetry::Fail) => None,
            (QueueState::Off, _) => Some("queue_if_no_path enabled".into()),
            (QueueState::Recovery { .. }, _) => Some("Recovered to normal mode".into()),
        }
    }

    /// Whether I/O without a path is held now.
    pub fn holds(&self) -> bool {
        matches!(self.state, QueueState::Recovery { .. })
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            QueueState::Recovery { until } => until,
            _ => None,
        }
    }

    /// At `now`, has `no_path_retry N` run out? Then queueing is off, and the reason
    /// each queued I/O fails with is returned.
    pub fn expire(&mut self, now: Instant) -> Option<String> {
        let until = self.deadline()?;
        if now < until {
            return None;
        }
        self.state = QueueState::Off;
        let NoPathRetry::Retries(n) = self.policy else {
            return None;
        };
        Some(format!(
            "no usable path for {n} checker intervals ({} s, no_path_retry {n}); queueing disabled",
            self.polling.as_secs() * n as u64
        ))
    }

    /// Why I/O fails when queueing is off.
    pub fn off_reason(&self) -> String {
        if self.operator_off {
            return "no usable path and queueing was disabled by the operator (disablequeueing)"
                .into();
        }
        match self.policy {
            NoPathRetry::Fail => "no usable path and no_path_retry is fail".into(),
            NoPathRetry::Retries(n) => format!(
                "no usable path; queueing was disabled after {n} checker intervals (no_path_retry {n})"
            ),
            NoPathRetry::Queue => "no usable path and queueing is disabled".into(),
        }
    }

    /// `multipathd show maps status`'s `queueing` column at `now`: `off`, `on`,
    /// `N chk` (armed with N retries), `N sec` (seconds of queueing left).
    pub fn display(&self, now: Instant) -> String {
        match (self.state, self.policy) {
            _ if self.operator_off => "off".into(),
            (QueueState::Off, _) | (_, NoPathRetry::Fail) => "off".into(),
            (_, NoPathRetry::Queue) => "on".into(),
            (QueueState::Recovery { until: Some(u) }, _) => {
                format!("{} sec", u.saturating_duration_since(now).as_secs())
            }
            (_, NoPathRetry::Retries(n)) => format!("{n} chk"),
        }
    }
}
