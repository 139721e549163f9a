//! The daemon's in-memory debug log: what `dlm_tool dump` prints. dlm_controld keeps the
//! same kind of ring buffer (logging.c `log_dump`, `copy_log_dump`) so an operator can see
//! what the daemon did without a log file.
//!
//! Every line is `<secs>.<millis> <text>`, the time being monotonic since the daemon
//! started (dlm_controld prints whole seconds; milliseconds are kept here because the
//! recovery benchmark splits node loss → fence → grant into phases from these stamps).
//! Lines also go to `tracing`, so `-D` shows them on stderr as they happen.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// Lines kept (the oldest go first). At ~100 bytes a line this is about a megabyte.
pub const LOG_LINES: usize = 10_000;

/// A shared handle on the ring buffer; tasks log through their own clone.
#[derive(Clone)]
pub struct DebugLog {
    origin: Instant,
    ring: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl DebugLog {
    /// A log whose clock starts at `origin` (the daemon's start).
    pub fn new(origin: Instant, capacity: usize) -> Self {
        DebugLog {
            origin,
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
        }
    }

    /// Append one line (a multi-line text is kept as one entry per line).
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        tracing::info!("{text}");
        self.push(self.origin.elapsed(), text);
    }

    fn push(&self, elapsed: std::time::Duration, text: &str) {
        let stamp = stamp(elapsed);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        for l in text.lines() {
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(format!("{stamp} {l}"));
        }
    }

    /// Every line kept, oldest first, each ending in a newline.
    pub fn dump(&self) -> String {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(ring.iter().map(|l| l.len() + 1).sum());
        for l in ring.iter() {
            let _ = writeln!(out, "{l}");
        }
        out
    }
}

/// `<secs>.<millis>`.
fn stamp(d: std::time::Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn log(capacity: usize) -> DebugLog {
        // Instant::now() outside a runtime is fine: tokio's clock is only paused in tests
        // that ask for it.
        DebugLog::new(Instant::now(), capacity)
    }

    #[test]
    fn lines_carry_monotonic_millisecond_stamps() {
        let log = log(10);
        log.push(Duration::ZERO, "first");
        log.push(Duration::from_millis(1234), "second\nthird");
        log.push(Duration::from_millis(60_007), "later");
        assert_eq!(
            log.dump(),
            "0.000 first\n1.234 second\n1.234 third\n60.007 later\n"
        );
    }

    #[test]
    fn the_oldest_lines_go_first() {
        let log = log(3);
        for i in 0..5 {
            log.push(Duration::ZERO, &format!("l{i}"));
        }
        assert_eq!(log.dump(), "0.000 l2\n0.000 l3\n0.000 l4\n");
    }
}
