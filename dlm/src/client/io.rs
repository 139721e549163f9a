//! The two tasks of a connection. The writer batches whatever frames are queued into
//! one write; the reader decodes frames and hands them to the `Demux`. Neither keeps
//! the connection alive: when the last `Client` handle drops, the writer's queue closes
//! and `stop` fires, both tasks end and the socket closes, which is how the daemon
//! learns to release this connection's locks.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{ClientFrame, DaemonFrame, Errno};
use crate::flags::libc_errno::ENOTCONN;
use crate::wire::{put_frame, take_frame};

use super::demux::Demux;
use super::EPROTO;

/// Bytes gathered into one write before it is issued.
const WRITE_BATCH: usize = 64 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// What the tasks and the handles share.
pub(super) struct Shared {
    /// The socket's path, for messages.
    pub path: std::path::PathBuf,
    pub demux: Mutex<Demux>,
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
            tracing::debug!(path = %self.path.display(), code = why.code, "dlm client: {}", why.detail);
            self.closed.send_replace(Some(why));
        }
    }

    fn lost(&self, what: impl std::fmt::Display) -> Errno {
        Errno::new(
            ENOTCONN,
            format!(
                "connection to dlm_controld at {} lost: {what}",
                self.path.display()
            ),
        )
    }
}

pub(super) async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ClientFrame>,
    mut w: OwnedWriteHalf,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    // The reader may end the connection (a bad frame, EOF): then stop writing too, so
    // the socket closes although handles remain.
    let mut closed = shared.closed.subscribe();
    loop {
        let frame = tokio::select! {
            f = rx.recv() => match f {
                Some(f) => f,
                None => break,
            },
            _ = closed.wait_for(|c| c.is_some()) => break,
        };
        buf.clear();
        put_frame(&frame, &mut buf);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => put_frame(&f, &mut buf),
                Err(_) => break,
            }
        }
        if let Err(e) = w.write_all(&buf).await {
            shared.close(shared.lost(format_args!("writing: {e}")));
            return;
        }
    }
    // Every handle is gone, or the connection ended: half-close so the daemon sees the
    // end at once.
    let _ = w.shutdown().await;
}

pub(super) async fn reader(
    shared: Arc<Shared>,
    tx: mpsc::WeakUnboundedSender<ClientFrame>,
    mut r: OwnedReadHalf,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::new();
    loop {
        let mut start = 0;
        let bad = {
            let mut d = shared.demux();
            loop {
                match take_frame::<DaemonFrame>(&buf[start..]) {
                    Ok(Some((frame, n))) => {
                        start += n;
                        d.on_frame(frame, &mut out);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            }
        };
        if let Some(e) = bad {
            // The stream cannot be resynchronised after a frame that does not decode.
            shared.close(Errno::new(
                EPROTO,
                format!(
                    "dlm_controld at {} sent a bad frame: {e}",
                    shared.path.display()
                ),
            ));
            return;
        }
        if !out.is_empty() {
            if let Some(tx) = tx.upgrade() {
                for f in out.drain(..) {
                    let _ = tx.send(f);
                }
            }
            out.clear();
        }
        buf.drain(..start);
        buf.reserve(READ_CHUNK);
        let n = tokio::select! {
            _ = &mut stop => return,
            n = r.read_buf(&mut buf) => n,
        };
        match n {
            Ok(0) => {
                let why = if buf.is_empty() {
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
