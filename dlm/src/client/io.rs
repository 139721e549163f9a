//! A connection's reader task, and its writes. Calls write their frame in place
//! (outbox.rs: one system call, no hand-off to a task, unless the socket is full); the
//! reader decodes frames and hands them to the `Demux`. The reader does not keep the
//! connection alive: when the last `Client` handle drops, `stop` fires, the reader ends,
//! the outbox goes with the shared state and the socket closes, which is how the daemon
//! learns to release this connection's locks.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};

use crate::api::{ClientFrame, DaemonFrame, Errno};
use crate::flags::libc_errno::ENOTCONN;
use crate::outbox::{Outbox, OutboxError};
use crate::socket::Socket;
use crate::wire::{put_frame, take_frame};

use super::demux::Demux;
use super::EPROTO;

/// Bytes a connection may have waiting to be written: far more than any caller
/// produces unless the daemon stopped reading.
const WRITE_LIMIT: usize = 64 << 20;
/// Room for one call's frame (a lock call is 29 bytes plus its two names, plus 32 with a
/// value block): growing a buffer from empty took four allocations per call.
const CALL_ROOM: usize = 128;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// What the tasks and the handles share.
pub(super) struct Shared {
    /// The socket's path, for messages.
    pub path: std::path::PathBuf,
    pub demux: Mutex<Demux>,
    pub out: Outbox<Arc<Socket>>,
    /// Why the connection ended, once it has.
    pub closed: watch::Sender<Option<Errno>>,
}

impl Shared {
    pub fn demux(&self) -> MutexGuard<'_, Demux> {
        // No code panics while holding it; a poisoned lock still holds consistent maps.
        self.demux.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn close(&self, why: Errno) {
        if self.demux().close(why.clone()) {
            self.out.close();
            tracing::debug!(path = %self.path.display(), code = why.code, "dlm client: {}", why.detail);
            self.closed.send_replace(Some(why));
        }
    }

    pub fn lost(&self, what: impl std::fmt::Display) -> Errno {
        Errno::new(
            ENOTCONN,
            format!(
                "connection to dlm_controld at {} lost: {what}",
                self.path.display()
            ),
        )
    }

    pub fn new(path: std::path::PathBuf, w: Arc<Socket>) -> Shared {
        Shared {
            path,
            demux: Mutex::new(Demux::default()),
            out: Outbox::new(w, WRITE_LIMIT),
            closed: watch::Sender::new(None),
        }
    }

    /// Write `frames` in order; a connection that is gone (or a daemon that stopped
    /// reading) is refused with why, and ends.
    pub fn send(&self, frames: &[ClientFrame]) -> Result<(), Errno> {
        if let Some(e) = self.demux().closed() {
            return Err(e.clone());
        }
        let mut buf = Vec::with_capacity(CALL_ROOM * frames.len());
        for f in frames {
            put_frame(f, &mut buf);
        }
        let why = match self.out.push(&buf) {
            Ok(()) => return Ok(()),
            Err(OutboxError::Full) => self.lost(format_args!(
                "{WRITE_LIMIT} bytes not taken by dlm_controld"
            )),
            Err(OutboxError::Broken(e)) => self.lost(e),
        };
        self.close(why.clone());
        Err(why)
    }
}

pub(super) async fn reader(
    shared: Arc<Shared>,
    socket: Arc<Socket>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut r: &Socket = &socket;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::new();
    loop {
        let mut start = 0;
        // Calls answered by this read: each has a caller to wake.
        let mut answered = 0;
        let bad = {
            let mut d = shared.demux();
            loop {
                match take_frame::<DaemonFrame>(&buf[start..]) {
                    Ok(Some((frame, n))) => {
                        start += n;
                        if matches!(frame, DaemonFrame::Reply { .. } | DaemonFrame::Text { .. }) {
                            answered += 1;
                        }
                        if let Err(e) = d.on_frame(frame, &mut out) {
                            break Some(e);
                        }
                    }
                    Ok(None) => break None,
                    // The stream cannot be resynchronised after a frame that does not
                    // decode.
                    Err(e) => break Some(format!("it sent a bad frame: {e}")),
                }
            }
        };
        if let Some(e) = bad {
            let path = shared.path.display();
            shared.close(Errno::new(EPROTO, format!("dlm_controld at {path}: {e}")));
            return;
        }
        if !out.is_empty() {
            // Releases of locks whose handles are gone; a failure closes the
            // connection, which releases them as well.
            let _ = shared.send(&out);
            out.clear();
        }
        if answered > 1 && shared.out.cork() {
            // Several callers share this connection and were just woken: their next
            // calls, made in this turn of the runtime, go out in one write (the
            // daemon then reads them in one go and answers them in one write). The
            // yield lets every task that is ready run first.
            let _uncork = Uncork(&shared.out);
            tokio::task::yield_now().await;
        }
        buf.drain(..start);
        buf.reserve(READ_CHUNK);
        let n = tokio::select! {
            _ = &mut stop => return,
            n = r.read_buf(&mut buf) => n,
        };
        match n {
            Ok(0) => {
                let why = if !shared.demux().greeted() {
                    // A daemon older than the Hello refuses ours as an unknown frame.
                    "dlm_controld closed the connection before saying Hello (if it is \
                     older than this hydra, restart it after an upgrade)"
                        .to_string()
                } else if buf.is_empty() {
                    "dlm_controld closed the connection".to_string()
                } else {
                    format!(
                        "dlm_controld closed the connection in the middle of a frame ({} bytes)",
                        buf.len()
                    )
                };
                shared.close(shared.lost(why));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.close(shared.lost(format_args!("reading: {e}")));
                return;
            }
        }
    }
}

/// Uncorks an outbox when dropped, also if the task holding it is cancelled.
struct Uncork<'a>(&'a Outbox<Arc<Socket>>);

impl Drop for Uncork<'_> {
    fn drop(&mut self) {
        self.0.uncork();
    }
}
