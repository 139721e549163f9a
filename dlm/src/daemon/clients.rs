//! The client socket, `<run dir>/hydra-dlm.sock`: libdlm-style clients and `dlm_tool`
//! send [`ClientFrame`]s and get [`DaemonFrame`]s (api.rs). Each connection is a client
//! of the lock core with its own [`ClientId`]; its locks go when it goes, as a process's
//! locks go when it closes its lockspace device (the kernel's `dlm_user_purge`).
//!
//! One reader task per connection. The event loop never waits on a client: what it
//! sends is gathered per client while it handles an input and written at the end in one
//! go (`flush`), in place when the socket takes it (outbox.rs); a client that lets
//! [`CLIENT_QUEUE_BYTES`] pile up (it does not read its replies and callbacks) is
//! disconnected, so one stuck client cannot hold up the daemon or anyone else's locks.
//!
//! A stopping daemon drains its clients (hydra-daemon's [`Stop`]): the socket stops
//! taking connections, each reader hands on the whole frames its client had sent and ends,
//! and the daemon writes the replies to them before it closes the connections.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use hydra_daemon::Stop;

use crate::api::{ClientFrame, ClientId, DaemonFrame, SOCKET_NAME};
use crate::error::{Error, Result};
use crate::fxhash::FxHashMap;

use crate::outbox::{Outbox, OutboxError};
use crate::socket::Socket;
use crate::wire::{put_frame, CLIENT_PROTOCOL};

use super::framed::FrameReader;
use super::Event;

/// Bytes queued for one client before it counts as not reading.
pub const CLIENT_QUEUE_BYTES: usize = 4 << 20;

/// What a client connection reports to the event loop.
#[derive(Debug)]
pub enum ClientEvent {
    Frame {
        client: ClientId,
        frame: ClientFrame,
    },
    /// The connection ended: `None` for a clean close, else what was wrong.
    Closed {
        client: ClientId,
        error: Option<String>,
    },
}

struct Client {
    out: Outbox<Arc<Socket>>,
    /// Frames produced since the last flush.
    batch: Vec<u8>,
    pid: u32,
    reader: AbortHandle,
}

pub struct Clients {
    /// `None` once the daemon stops taking clients.
    listener: Option<UnixListener>,
    path: PathBuf,
    conns: FxHashMap<ClientId, Client>,
    /// Clients with frames in their batch.
    dirty: Vec<ClientId>,
    /// Client ids are never reused; 0 is never given out.
    next: ClientId,
    events: mpsc::Sender<Event>,
}

impl Clients {
    /// Bind `<run_dir>/hydra-dlm.sock` (owner-only: anyone who can connect can take
    /// locks and fence nodes). A socket file left by an earlier daemon is removed first;
    /// the pid file lock has made sure no live daemon uses it.
    pub fn bind(run_dir: &Path, events: mpsc::Sender<Event>) -> Result<Clients> {
        let path = run_dir.join(SOCKET_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    format!("removing the stale socket {}", path.display()),
                    e,
                ))
            }
        }
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("binding the client socket {}", path.display()), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("chmod 0600 {}", path.display()), e))?;
        Ok(Clients {
            listener: Some(listener),
            path,
            conns: FxHashMap::default(),
            dirty: Vec::new(),
            next: 1,
            events,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection (the event loop waits on this alongside everything else);
    /// never, once the daemon stopped taking clients.
    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        match &self.listener {
            Some(l) => l.accept().await.map(|(s, _)| s),
            None => std::future::pending().await,
        }
    }

    /// Stop taking clients: the socket file goes and a new client's connect fails at
    /// once (ENOENT) instead of waiting on a daemon that will not answer it.
    pub fn stop_accepting(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Wait until what every client was sent is written (or its connection broke).
    pub async fn flushed(&self) {
        for c in self.conns.values() {
            c.out.flushed().await;
        }
    }

    /// Take on a new connection: it becomes a client with a fresh id. Its reader ends
    /// at `stop`, after handing on the whole frames its client had sent.
    pub fn add(&mut self, stream: UnixStream, mut stop: Stop) -> std::io::Result<ClientId> {
        // The peer's pid, for lockdump's `pid` column (SO_PEERCRED).
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let socket = Arc::new(Socket::new(stream)?);
        let client = self.next;
        self.next += 1;
        let events = self.events.clone();
        let rd = socket.clone();
        let reader = tokio::spawn(async move {
            let mut frames = FrameReader::new();
            let mut rd: &Socket = &rd;
            let mut hello = Hello::Awaited { pid };
            let error = loop {
                let next = tokio::select! {
                    next = frames.next::<ClientFrame, _>(&mut rd) => next,
                    // Reading is cancel-safe: bytes read stay in `frames`.
                    _ = stop.recv() => {
                        // What the client sent before the stop (read already, or
                        // waiting in the socket) is handed on; nothing is waited for.
                        let now = std::time::Duration::ZERO;
                        while let Ok(Ok(Some(frame))) =
                            tokio::time::timeout(now, frames.next::<ClientFrame, _>(&mut rd)).await
                        {
                            let frame = match hello.admit(frame) {
                                Ok(Some(frame)) => frame,
                                Ok(None) => continue, // its Hello
                                Err(_) => break,      // refused: nothing more is read
                            };
                            let ev = Event::Client(ClientEvent::Frame { client, frame });
                            if events.send(ev).await.is_err() {
                                break;
                            }
                        }
                        return; // `stop` goes with the task: the drain hears it
                    }
                };
                match next.map(|f| f.map(|f| hello.admit(f))) {
                    Ok(Some(Err(e))) => break Some(e),
                    Ok(Some(Ok(None))) => {}
                    Ok(Some(Ok(Some(frame)))) => {
                        let ev = Event::Client(ClientEvent::Frame { client, frame });
                        if events.send(ev).await.is_err() {
                            return; // the daemon is stopping
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            let _ = events
                .send(Event::Client(ClientEvent::Closed { client, error }))
                .await;
        });
        self.conns.insert(
            client,
            Client {
                out: Outbox::new(socket, CLIENT_QUEUE_BYTES),
                batch: Vec::new(),
                pid,
                reader: reader.abort_handle(),
            },
        );
        // Said first and written at once, whatever the client says: a client of
        // another version learns which protocol this daemon speaks even when it is
        // refused (and its connection closed) within the same batch of inputs.
        let mut hello = Vec::new();
        put_frame(
            &DaemonFrame::Hello {
                protocol: CLIENT_PROTOCOL,
            },
            &mut hello,
        );
        if let Some(c) = self.conns.get(&client) {
            // A fresh socket takes a few bytes; a failure means the client is gone
            // already, which its reader reports.
            let _ = c.out.push(&hello);
        }
        Ok(client)
    }

    /// Add a frame to a client's batch (written by the next `flush`); a frame for a
    /// client that went away is dropped.
    pub fn send(&mut self, client: ClientId, frame: DaemonFrame) {
        if let Some(c) = self.conns.get_mut(&client) {
            if c.batch.is_empty() {
                self.dirty.push(client);
            }
            put_frame(&frame, &mut c.batch);
        }
    }

    /// Write every batch. Returns the clients that are not reading (their queue is
    /// full): the caller disconnects them. A write that fails means the client is gone;
    /// its reader sees the same and reports it.
    pub fn flush(&mut self) -> Vec<ClientId> {
        let mut full = Vec::new();
        for id in self.dirty.drain(..) {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.out.push(&c.batch) == Err(OutboxError::Full) {
                full.push(id);
            }
            c.batch.clear();
        }
        full
    }

    /// Close a client's connection at once, unsent frames included. Returns whether it
    /// was connected.
    pub fn remove(&mut self, client: ClientId) -> bool {
        match self.conns.remove(&client) {
            Some(c) => {
                // The outbox goes with it, unsent frames included; the client reads
                // the end of the stream at once (the descriptor closes when the aborted
                // reader is dropped).
                c.out.close();
                c.reader.abort();
                true
            }
            None => false,
        }
    }

    /// The process id of a connected client (0 if unknown).
    pub fn pid(&self, client: ClientId) -> u32 {
        self.conns.get(&client).map_or(0, |c| c.pid)
    }
}

/// Where a connection is with its Hello (the first frame, and only that).
enum Hello {
    Awaited { pid: u32 },
    Said,
}

impl Hello {
    /// The frame to hand on (`None`: the Hello itself), or why the connection is
    /// refused.
    fn admit(&mut self, frame: ClientFrame) -> std::result::Result<Option<ClientFrame>, String> {
        match (&*self, frame) {
            (Hello::Awaited { .. }, ClientFrame::Hello { protocol })
                if protocol == CLIENT_PROTOCOL =>
            {
                *self = Hello::Said;
                Ok(None)
            }
            (Hello::Awaited { pid }, ClientFrame::Hello { protocol }) => Err(format!(
                "process {pid} speaks client protocol {protocol}, this dlm_controld \
                 {CLIENT_PROTOCOL} (a hydra of another version; restart dlm_controld \
                 after an upgrade): refused"
            )),
            (Hello::Awaited { pid }, _) => Err(format!(
                "process {pid} called before saying Hello (a hydra client older than this \
                 dlm_controld?): refused"
            )),
            (Hello::Said, ClientFrame::Hello { .. }) => {
                Err("a second Hello on the connection: refused".to_string())
            }
            (Hello::Said, frame) => Ok(Some(frame)),
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for c in self.conns.values() {
            c.reader.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Query;

    fn query() -> ClientFrame {
        ClientFrame::Query {
            req: 1,
            query: Query::Dump,
        }
    }

    #[test]
    fn a_connection_says_hello_first_and_once() {
        let hello = ClientFrame::Hello {
            protocol: CLIENT_PROTOCOL,
        };
        let mut h = Hello::Awaited { pid: 42 };
        assert_eq!(
            h.admit(hello.clone()),
            Ok(None),
            "the Hello is not handed on"
        );
        assert_eq!(h.admit(query()), Ok(Some(query())));
        let e = h.admit(hello).unwrap_err();
        assert!(e.contains("a second Hello"), "{e}");

        let e = Hello::Awaited { pid: 42 }.admit(query()).unwrap_err();
        assert!(e.contains("process 42 called before saying Hello"), "{e}");
        let other = ClientFrame::Hello {
            protocol: CLIENT_PROTOCOL + 1,
        };
        let e = Hello::Awaited { pid: 42 }.admit(other).unwrap_err();
        assert!(
            e.contains(&format!(
                "process 42 speaks client protocol {}, this dlm_controld {CLIENT_PROTOCOL}",
                CLIENT_PROTOCOL + 1
            )),
            "{e}"
        );
    }
}
