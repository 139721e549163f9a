//! The client socket, `<run dir>/hydra-dlm.sock`: libdlm-style clients and `dlm_tool`
//! send [`ClientFrame`]s and get [`DaemonFrame`]s (api.rs). Each connection is a client
//! of the lock core with its own [`ClientId`]; its locks go when it goes, as a process's
//! locks go when it closes its lockspace device (the kernel's `dlm_user_purge`).
//!
//! One reader and one writer task per connection. The event loop never waits on a
//! client: what it sends goes into a bounded queue, and a client that lets the queue
//! fill (it does not read its replies and callbacks) is disconnected, so one stuck
//! client cannot hold up the daemon or anyone else's locks.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::api::{ClientFrame, ClientId, DaemonFrame, SOCKET_NAME};
use crate::error::{Error, Result};

use super::framed::{write_all_from, FrameReader};
use super::Event;

/// Frames queued for one client before it counts as not reading.
pub const CLIENT_QUEUE: usize = 16 * 1024;

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

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No such client (it went away; callbacks for it are dropped).
    Gone,
    /// Its queue is full: it is not reading.
    Full,
}

struct Client {
    tx: mpsc::Sender<DaemonFrame>,
    pid: u32,
    tasks: [AbortHandle; 2],
}

pub struct Clients {
    listener: UnixListener,
    path: PathBuf,
    conns: HashMap<ClientId, Client>,
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
            listener,
            path,
            conns: HashMap::new(),
            next: 1,
            events,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection (the event loop waits on this alongside everything else).
    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        self.listener.accept().await.map(|(s, _)| s)
    }

    /// Take on a new connection: it becomes a client with a fresh id.
    pub fn add(&mut self, stream: UnixStream) -> ClientId {
        let client = self.next;
        self.next += 1;
        // The peer's pid, for lockdump's `pid` column (SO_PEERCRED).
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel(CLIENT_QUEUE);
        let writer = tokio::spawn(async move {
            // A write error means the client is gone; its reader sees the same and
            // reports it.
            let _ = write_all_from(&mut rx, &mut wr).await;
        });
        let events = self.events.clone();
        let reader = tokio::spawn(async move {
            let mut frames = FrameReader::new();
            let error = loop {
                match frames.next::<ClientFrame, _>(&mut rd).await {
                    Ok(Some(frame)) => {
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
                tx,
                pid,
                tasks: [writer.abort_handle(), reader.abort_handle()],
            },
        );
        client
    }

    /// Queue a frame for a client without waiting.
    pub fn send(&mut self, client: ClientId, frame: DaemonFrame) -> Result<(), SendError> {
        let c = self.conns.get(&client).ok_or(SendError::Gone)?;
        c.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }

    /// Close a client's connection at once, unsent frames included. Returns whether it
    /// was connected.
    pub fn remove(&mut self, client: ClientId) -> bool {
        match self.conns.remove(&client) {
            Some(c) => {
                for t in c.tasks {
                    t.abort();
                }
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

impl Drop for Clients {
    fn drop(&mut self) {
        for c in self.conns.values() {
            for t in &c.tasks {
                t.abort();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
