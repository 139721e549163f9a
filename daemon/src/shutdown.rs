//! Stopping a daemon so that it drains: one broadcast tells every task to stop, and the
//! daemon then waits until every task has dropped its [`Stop`] — the shape of
//! mini-redis's `shutdown.rs` and `server.rs`. A task finishes the request it is in the
//! middle of (a login, an admin change) instead of being aborted halfway.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{broadcast, mpsc};

use crate::{Error, Result};

/// The daemon's side: hands out [`Stop`]s, then [`Shutdown::drain`]s them.
pub struct Shutdown {
    notify: broadcast::Sender<()>,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

/// A task's side: [`Stop::recv`] resolves once the daemon stops; the daemon's drain
/// waits until every `Stop` (and every clone) is dropped.
pub struct Stop {
    stopped: bool,
    notify: broadcast::Receiver<()>,
    _done: mpsc::Sender<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (notify, _) = broadcast::channel(1);
        let (done_tx, done_rx) = mpsc::channel(1);
        Shutdown {
            notify,
            done_tx,
            done_rx,
        }
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A handle for one more task.
    pub fn subscribe(&self) -> Stop {
        Stop {
            stopped: false,
            notify: self.notify.subscribe(),
            _done: self.done_tx.clone(),
        }
    }

    /// Tell every task to stop, then wait until all of them have finished, at most
    /// `limit`. Whether they all finished in time.
    pub async fn drain(self, limit: Duration) -> bool {
        let Shutdown {
            notify,
            done_tx,
            mut done_rx,
        } = self;
        let _ = notify.send(());
        drop(done_tx);
        // recv() is None once every sender — every Stop — is gone.
        tokio::time::timeout(limit, done_rx.recv()).await.is_ok()
    }
}

impl Stop {
    /// Wait until the daemon stops (at once if it already has).
    pub async fn recv(&mut self) {
        if self.stopped {
            return;
        }
        // Lagged or closed mean the same as the message: the daemon is stopping.
        let _ = self.notify.recv().await;
        self.stopped = true;
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

impl Clone for Stop {
    fn clone(&self) -> Stop {
        Stop {
            stopped: self.stopped,
            notify: self.notify.resubscribe(),
            _done: self._done.clone(),
        }
    }
}

/// SIGTERM and SIGINT, the two ways a daemon is asked to stop from outside. Made before
/// the daemon reports ready, so that a signal sent right after is never missed.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?,
            int: signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?,
        })
    }

    /// The name of the next signal that arrives.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_every_task_to_finish_its_work() {
        let shutdown = Shutdown::new();
        let finished = Arc::new(AtomicBool::new(false));
        let mut stop = shutdown.subscribe();
        let f = finished.clone();
        tokio::spawn(async move {
            stop.recv().await;
            // Work after the stop (a logout, a flush) still completes before drain ends.
            tokio::time::sleep(Duration::from_millis(300)).await;
            f.store(true, Ordering::SeqCst);
            drop(stop);
        });
        let idle = shutdown.subscribe();
        tokio::spawn(async move {
            let mut s = idle;
            s.recv().await;
            assert!(s.is_stopped());
            s.recv().await; // a second recv returns at once
        });
        assert!(shutdown.drain(Duration::from_secs(5)).await);
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_on_a_task_that_never_ends() {
        let shutdown = Shutdown::new();
        let stuck = shutdown.subscribe();
        tokio::spawn(async move {
            let _stuck = stuck;
            std::future::pending::<()>().await;
        });
        assert!(!shutdown.drain(Duration::from_secs(1)).await);
    }
}
