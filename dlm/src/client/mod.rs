//! The client library: libdlm's calls over hydra's unix socket, async.
//!
//! A [`Client`] is one connection to this node's `hydra dlm_controld`
//! (`<run dir>/hydra-dlm.sock`, `ClientFrame`s out, `DaemonFrame`s in). It is cheap to
//! clone and usable from many tasks at once; one reader task routes replies to their
//! calls by `req` and callbacks to their locks by (lockspace, lkid).
//!
//! The shapes follow libdlm (dlm_lock(3), dlm_unlock(3)):
//! - a call that is refused returns `Err(Errno)`, like libdlm's -1 and errno, and then
//!   no completion follows; a connection that is gone is refused the same way, with
//!   `ENOTCONN` and what happened;
//! - an accepted lock call gives a [`Lock`], whose completions (libdlm's AST and
//!   `lksb`) come from [`Lock::completion`]: the outcome of a request, conversion,
//!   cancel or unlock is a [`Status`] in the completion (`sb_status`), not an error —
//!   EAGAIN for a NOQUEUE request that was not granted, EDEADLK, ECANCEL, EUNLOCK;
//! - blocking callbacks (basts) go to the channel given with the lock call, and the
//!   daemon sends them only when one was given.
//!
//! Locks belong to the connection: when every handle is gone the socket closes and the
//! daemon releases the connection's locks (PERSISTENT ones become orphans, as when a
//! libdlm process exits). Dropping one [`Lock`] handle releases that lock
//! ([`Lock::detach`] keeps it held instead).

mod completions;
mod demux;
mod io;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::api::{ClientFrame, Errno, Query, Request, SOCKET_NAME};
use crate::flags::libc_errno::{EINPROGRESS, ENOENT, ENOTCONN};
use crate::flags::{Flags, Status};
use crate::membership::NodeId;
use crate::mode::Mode;
use crate::resource::Lvb;
use crate::socket::Socket;
use crate::wire::REPLY_WITH_COMPLETION;
use crate::{Error, Result};

pub use demux::BastSender;
use demux::{NewLock, Pending};
use io::Shared;

/// Linux's EPROTO: the daemon broke the protocol (not in `flags::libc_errno`, which
/// holds what the lock core itself returns).
const EPROTO: i32 = 71;

/// A lock's completion: libdlm's `lksb` after its AST ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `sb_status`.
    pub status: Status,
    /// The lock's granted mode afterwards; `None` when the lock has ended (unlocked,
    /// cancelled before its first grant, refused with EAGAIN).
    pub mode: Option<Mode>,
    /// `sb_flags`: `flags::SBF_DEMOTED`, `SBF_VALNOTVALID`, `SBF_ALTMODE`.
    pub sbflags: u8,
    /// The value block the grant read from the resource (with VALBLK).
    pub lvb: Option<Lvb>,
}

impl Completion {
    pub fn granted(&self) -> bool {
        self.status == Status::Granted
    }
}

/// A blocking callback: the lock `lkid` in `ls` blocks a request for `mode`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub ls: String,
    pub lkid: u32,
    pub mode: Mode,
}

/// One connection to the lock manager daemon. Clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Dropped with the last handle: stops the reader task.
    _stop: oneshot::Sender<()>,
}

/// The socket of the daemon whose run directory is `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET_NAME)
}

impl Client {
    /// Connect to the daemon; `path` is its run directory (`api::DEFAULT_RUN_DIR`) or
    /// the socket itself. Must run inside a tokio runtime (it starts two tasks).
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let sock = if path.is_dir() {
            socket_path(path)
        } else {
            path.to_path_buf()
        };
        let stream = UnixStream::connect(&sock).await.map_err(|e| {
            Error::io(
                format!("connecting to dlm_controld at {}", sock.display()),
                e,
            )
        })?;
        Client::from_stream(stream, sock)
    }

    /// A client over a connected stream (`path` only names it in messages). Must run
    /// inside a tokio runtime (it starts the reader and writer tasks).
    pub fn from_stream(stream: UnixStream, path: PathBuf) -> Result<Client> {
        let socket = Socket::new(stream)
            .map(Arc::new)
            .map_err(|e| Error::io(format!("registering the socket {}", path.display()), e))?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let shared = Arc::new(Shared::new(path, socket.clone()));
        // Said first, ahead of any call (no wait: the daemon's Hello is checked when
        // it arrives, before any answer).
        let hello = ClientFrame::Hello {
            protocol: crate::wire::CLIENT_PROTOCOL,
        };
        shared
            .send(&[hello])
            .map_err(|e| Error::Request(e.detail))?;
        tokio::spawn(io::reader(shared.clone(), socket, stop_rx));
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                _stop: stop_tx,
            }),
        })
    }

    /// The daemon's socket.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// Why the connection ended, if it has.
    pub fn closed_reason(&self) -> Option<Errno> {
        self.inner.shared.closed.borrow().clone()
    }

    /// Wait until the connection ends and say why. Its locks are gone from then on (the
    /// daemon released them when it saw the connection close).
    pub async fn closed(&self) -> Errno {
        let mut rx = self.inner.shared.closed.subscribe();
        let why = match rx.wait_for(|c| c.is_some()).await {
            Ok(c) => c.clone(),
            // The sender lives in `Shared`, which this handle keeps alive.
            Err(_) => None,
        };
        why.unwrap_or_else(|| self.lost())
    }

    fn lost(&self) -> Errno {
        let closed = self.inner.shared.demux().closed().cloned();
        closed.unwrap_or_else(|| self.inner.shared.lost("its reader ended"))
    }

    fn send(&self, frame: ClientFrame) -> Result<(), Errno> {
        self.inner.shared.send(std::slice::from_ref(&frame))
    }

    /// A call whose reply is all there is to it.
    async fn call(&self, request: Request) -> Result<u32, Errno> {
        self.call_with(request, 0).await
    }

    /// [`Client::call`] with `bits` in its `req` (`REPLY_WITH_COMPLETION`).
    async fn call_with(&self, request: Request, bits: u64) -> Result<u32, Errno> {
        check_names(&request)?;
        let (tx, rx) = oneshot::channel();
        let req = self
            .inner
            .shared
            .demux()
            .register_with(Pending::Call(tx), bits)?;
        self.send(ClientFrame::Call { req, request })?;
        rx.await.map_err(|_| self.lost())?
    }

    /// Join (create) lockspace `ls` on this node (`dlm_new_lockspace`); returns once
    /// the node's first recovery in it is done. Joining a joined lockspace succeeds.
    pub async fn join(&self, ls: &str) -> Result<(), Errno> {
        self.call(Request::Join { ls: ls.to_string() }).await?;
        Ok(())
    }

    /// Leave `ls` (`dlm_release_lockspace`); without `force`, EBUSY while this node
    /// holds locks in it.
    pub async fn leave(&self, ls: &str, force: bool) -> Result<(), Errno> {
        self.call(Request::Leave {
            ls: ls.to_string(),
            force,
        })
        .await?;
        Ok(())
    }

    /// `dlm_tool fence_ack`: record `node` as fenced (unblocks recovery; dangerous if
    /// the node may still be writing).
    pub async fn fence_ack(&self, node: NodeId) -> Result<(), Errno> {
        self.call(Request::FenceAck { node }).await?;
        Ok(())
    }

    /// Ask the daemon for one of dlm_tool's reports; the text is in dlm_tool's layout.
    pub async fn query(&self, query: Query) -> Result<String, Errno> {
        let (tx, rx) = oneshot::channel();
        let req = self.inner.shared.demux().register(Pending::Query(tx))?;
        self.send(ClientFrame::Query { req, query })?;
        rx.await.map_err(|_| self.lost())?
    }

    /// `dlm_ls_lock`: request a new lock on `name` in `ls`. Returns once the daemon has
    /// accepted the request; its outcome is the lock's first [`Lock::completion`].
    /// `flags` must not hold CONVERT (use [`Lock::convert`]); with VALBLK, `lvb` is the
    /// value block sent along (libdlm's `sb_lvbptr`; zeros if `None`). With ORPHAN this
    /// adopts an orphan of the same name and mode. Blocking callbacks for the lock go to
    /// `basts`; without it the daemon sends none.
    pub async fn lock(
        &self,
        ls: &str,
        name: &[u8],
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        basts: Option<BastSender>,
    ) -> Result<Lock, Errno> {
        self.lock_with(ls, name, mode, flags, lvb, basts, 0).await
    }

    /// [`Client::lock`] with `bits` in the call's `req`: with `REPLY_WITH_COMPLETION`
    /// it returns when the first completion has come too.
    #[allow(clippy::too_many_arguments)]
    async fn lock_with(
        &self,
        ls: &str,
        name: &[u8],
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        basts: Option<BastSender>,
        bits: u64,
    ) -> Result<Lock, Errno> {
        if flags.has(Flags::CONVERT) {
            return Err(Errno::new(
                crate::flags::libc_errno::EINVAL,
                "CONVERT needs the lock: use Lock::convert",
            ));
        }
        check_name("lockspace name", ls.as_bytes(), crate::LOCKSPACE_LEN)?;
        check_name("resource name", name, crate::RESNAME_MAXLEN)?;
        let bast = basts.is_some();
        let (tx, rx) = oneshot::channel();
        let req = self.inner.shared.demux().register_with(
            Pending::NewLock {
                ls: ls.to_string(),
                basts,
                tx,
            },
            bits,
        )?;
        // From here the request may be accepted; if this future is dropped before it
        // returns the handle, the guard releases whatever lock the daemon made.
        let mut guard = ReplyGuard {
            client: self,
            ls,
            rx: Some(rx),
        };
        self.send(ClientFrame::Call {
            req,
            request: Request::Lock {
                ls: ls.to_string(),
                name: name.to_vec(),
                mode,
                flags,
                lvb,
                bast,
                lkid: 0,
            },
        })?;
        let reply = match guard.rx.as_mut() {
            Some(rx) => rx.await,
            None => return Err(self.lost()), // only Drop takes it
        };
        guard.rx = None;
        let new = reply.map_err(|_| self.lost())??;
        Ok(Lock {
            client: self.clone(),
            ls: ls.to_string(),
            name: name.to_vec(),
            lkid: new.lkid,
            bast,
            completions: new.completions,
            mode: None,
            ended: false,
            detached: false,
        })
    }

    /// `dlm_ls_lock_wait`-like: request a lock and wait for its first completion. The
    /// lock handle comes back whatever the status; with EAGAIN (NOQUEUE, not granted)
    /// the lock has already ended.
    ///
    /// The daemon answers the call together with the completion (one wake-up, see
    /// `wire::REPLY_WITH_COMPLETION`), so until then this call has no lkid to cancel:
    /// dropping the future releases the lock only once its completion comes (a request
    /// queued behind a holder stays queued until granted). To give up on a wait, use
    /// [`Client::lock`] and [`Lock::cancel`].
    pub async fn lock_wait(
        &self,
        ls: &str,
        name: &[u8],
        mode: Mode,
        flags: Flags,
        lvb: Option<Lvb>,
        basts: Option<BastSender>,
    ) -> Result<(Lock, Completion), Errno> {
        // Only one wake-up when the grant comes later than the acceptance.
        let mut lock = self
            .lock_with(ls, name, mode, flags, lvb, basts, REPLY_WITH_COMPLETION)
            .await?;
        let c = lock.completion().await?;
        Ok((lock, c))
    }

    fn abandon(&self, ls: String, lkid: u32, release: bool) {
        let mut out = Vec::new();
        self.inner
            .shared
            .demux()
            .abandon(ls, lkid, release, &mut out);
        // A failure closes the connection, which releases the lock as well.
        let _ = self.inner.shared.send(&out);
    }
}

/// Covers a new-lock call between sending it and returning the handle.
struct ReplyGuard<'a> {
    client: &'a Client,
    ls: &'a str,
    rx: Option<oneshot::Receiver<Result<NewLock, Errno>>>,
}

impl Drop for ReplyGuard<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // After close() the reader's send fails and it releases the lock itself; a
        // reply it delivered before is still here to release.
        rx.close();
        if let Ok(Ok(new)) = rx.try_recv() {
            self.client.abandon(self.ls.to_string(), new.lkid, true);
        }
    }
}

/// One lock of this connection (libdlm's lkid and the AST routine's queue).
///
/// Calls on the handle return when the daemon has accepted them; their outcomes come
/// from [`Lock::completion`] in order. Like libdlm, a cancel that finds nothing to
/// cancel is accepted and no completion follows, and a cancel or forced unlock of a
/// pending request yields that request's completion (ECANCEL or EUNLOCK), not a second
/// one.
pub struct Lock {
    client: Client,
    ls: String,
    name: Vec<u8>,
    lkid: u32,
    bast: bool,
    completions: completions::Receiver,
    mode: Option<Mode>,
    ended: bool,
    detached: bool,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("ls", &self.ls)
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("lkid", &format_args!("{:#x}", self.lkid))
            .field("mode", &self.mode)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Lock {
    pub fn lkid(&self) -> u32 {
        self.lkid
    }

    pub fn lockspace(&self) -> &str {
        &self.ls
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The granted mode as of the last completion taken.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Whether the last completion taken ended the lock.
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The next completion of this lock. ENOENT after the lock ended; ENOTCONN (with
    /// why) once the connection is gone and the completions it delivered are taken.
    pub async fn completion(&mut self) -> Result<Completion, Errno> {
        match self.completions.recv().await {
            Some(c) => {
                self.mode = c.mode;
                self.ended = c.mode.is_none();
                Ok(c)
            }
            None if self.ended => Err(Errno::new(
                ENOENT,
                format!(
                    "lock {:#x} on \"{}\" in \"{}\" has ended",
                    self.lkid,
                    String::from_utf8_lossy(&self.name),
                    self.ls
                ),
            )),
            None => Err(self.client.lost()),
        }
    }

    /// `dlm_ls_lock` with CONVERT: convert to `mode` (`flags` may add NOQUEUE, QUECVT,
    /// CONVDEADLK, VALBLK, IVVALBLK, …; CONVERT is added). The outcome is the next
    /// completion: granted, EAGAIN (NOQUEUE), EDEADLK or ECANCEL, the lock keeping its
    /// old mode in the last three. A down-conversion completes at once.
    pub async fn convert(&self, mode: Mode, flags: Flags, lvb: Option<Lvb>) -> Result<(), Errno> {
        self.client
            .call(Request::Lock {
                ls: self.ls.clone(),
                name: self.name.clone(),
                mode,
                flags: Flags(flags.0 | Flags::CONVERT),
                lvb,
                bast: self.bast,
                lkid: self.lkid,
            })
            .await?;
        Ok(())
    }

    /// `dlm_ls_unlock` with `flags` (CANCEL, FORCEUNLOCK, VALBLK, IVVALBLK).
    pub async fn unlock_flags(&self, flags: Flags, lvb: Option<Lvb>) -> Result<(), Errno> {
        self.client
            .call(Request::Unlock {
                ls: self.ls.clone(),
                lkid: self.lkid,
                flags,
                lvb,
            })
            .await?;
        Ok(())
    }

    /// Unlock a granted lock; with `lvb`, write it (VALBLK: stored when the lock is
    /// held in PW or EX). Its completion is EUNLOCK. EBUSY while a request or
    /// conversion is in flight (cancel it, or use [`Lock::force_unlock`]).
    pub async fn unlock(&self, lvb: Option<Lvb>) -> Result<(), Errno> {
        let flags = if lvb.is_some() { Flags::VALBLK } else { 0 };
        self.unlock_flags(Flags(flags), lvb).await
    }

    /// Cancel the request or conversion in flight (LKF_CANCEL): a request ends with
    /// ECANCEL, a conversion returns to its granted mode with ECANCEL. If it was granted
    /// already, nothing happens and no completion follows.
    pub async fn cancel(&self) -> Result<(), Errno> {
        self.unlock_flags(Flags(Flags::CANCEL), None).await
    }

    /// Unlock whatever the lock is doing (LKF_FORCEUNLOCK); its completion is EUNLOCK.
    pub async fn force_unlock(&self) -> Result<(), Errno> {
        self.unlock_flags(Flags(Flags::FORCEUNLOCK), None).await
    }

    /// `dlm_ls_unlock_wait`: unlock and wait for the lock to end. Completions still due
    /// from earlier calls are skipped; the last one is returned.
    pub async fn unlock_wait(&mut self, lvb: Option<Lvb>) -> Result<Completion, Errno> {
        // A plain unlock that is accepted always ends in a completion (EUNLOCK): the
        // reply may wait for it, so this wakes once.
        let flags = if lvb.is_some() { Flags::VALBLK } else { 0 };
        self.client
            .call_with(
                Request::Unlock {
                    ls: self.ls.clone(),
                    lkid: self.lkid,
                    flags: Flags(flags),
                    lvb,
                },
                REPLY_WITH_COMPLETION,
            )
            .await?;
        loop {
            let c = self.completion().await?;
            if c.mode.is_none() {
                return Ok(c);
            }
        }
    }

    /// Drop the handle but keep the lock held by the connection (until the connection
    /// closes; a PERSISTENT lock then becomes an orphan). Its callbacks are discarded.
    pub fn detach(mut self) -> u32 {
        self.detached = true;
        if !self.ended {
            self.client.abandon(self.ls.clone(), self.lkid, false);
        }
        self.lkid
    }
}

impl Drop for Lock {
    /// A lock nobody can reach any more is released (FORCEUNLOCK, whatever it was
    /// doing), as libdlm releases a closing process's locks; the reply and completion
    /// are discarded.
    fn drop(&mut self) {
        if !self.ended && !self.detached {
            self.client
                .abandon(std::mem::take(&mut self.ls), self.lkid, true);
        }
    }
}

/// Names too long for the wire are refused here with EINVAL, as libdlm's calls refuse
/// them: sent, they would make the daemon drop the whole connection (and its locks)
/// as a protocol error.
fn check_name(what: &str, name: &[u8], max: usize) -> Result<(), Errno> {
    if name.len() > max {
        return Err(Errno::new(
            crate::flags::libc_errno::EINVAL,
            format!("{what} is {} bytes, at most {max}", name.len()),
        ));
    }
    Ok(())
}

fn check_names(request: &Request) -> Result<(), Errno> {
    let ls = match request {
        Request::Join { ls }
        | Request::Leave { ls, .. }
        | Request::Lock { ls, .. }
        | Request::Unlock { ls, .. } => ls,
        Request::FenceAck { .. } => return Ok(()),
    };
    check_name("lockspace name", ls.as_bytes(), crate::LOCKSPACE_LEN)
}

/// The name of an errno value (Linux numbering) or DLM status, for messages.
pub fn errno_name(code: i32) -> &'static str {
    match code {
        1 => "EPERM",
        ENOENT => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        15 => "ENOTBLK",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        53 => "EBADR",
        EPROTO => "EPROTO",
        95 => "EOPNOTSUPP",
        ENOTCONN => "ENOTCONN",
        110 => "ETIMEDOUT",
        EINPROGRESS => "EINPROGRESS",
        125 => "ECANCELED",
        0x10001 => "DLM_ECANCEL",
        0x10002 => "DLM_EUNLOCK",
        _ => "errno",
    }
}

/// `EBUSY (16): detail` — an `Errno` as a person reads it.
pub fn describe(e: &Errno) -> String {
    let name = errno_name(e.code);
    match (name, e.detail.is_empty()) {
        ("errno", true) => format!("errno {}", e.code),
        ("errno", false) => format!("errno {}: {}", e.code, e.detail),
        (n, true) => n.to_string(),
        (n, false) => format!("{n}: {}", e.detail),
    }
}
