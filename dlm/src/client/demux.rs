//! Who is waiting for what on one connection: the calls in flight by `req`, the locks by
//! (lockspace, lkid), and the callbacks that came before the reply naming their lock.
//! No I/O here: the reader task feeds it frames under a mutex; the frames it wants sent
//! (releases of locks nobody holds a handle to) come back in `out`.

use tokio::sync::{mpsc, oneshot};

use crate::api::{Callback, ClientFrame, DaemonFrame, Errno, Request};
use crate::flags::Flags;
use crate::fxhash::FxHashMap;
use crate::wire::CLIENT_PROTOCOL;

use super::completions;
use super::{Blocked, Completion, EINPROGRESS, EPROTO};

/// Where a lock's blocking callbacks go (libdlm's bast routine and astarg).
pub type BastSender = mpsc::UnboundedSender<Blocked>;

/// What the reply to a call is for.
pub(super) enum Pending {
    /// Join, Leave, FenceAck, a conversion or an unlock: only the result matters.
    Call(oneshot::Sender<Result<u32, Errno>>),
    /// A new lock: an accepted reply names its lkid, from which on its callbacks are
    /// routed to the handle made here.
    NewLock {
        ls: String,
        basts: Option<BastSender>,
        tx: oneshot::Sender<Result<NewLock, Errno>>,
    },
    Query(oneshot::Sender<Result<String, Errno>>),
    /// The FORCEUNLOCK of a lock whose handle went away; nobody waits for it.
    Release {
        ls: String,
        lkid: u32,
    },
}

/// A new lock as the reply made it: its id and its completions.
pub(super) struct NewLock {
    pub lkid: u32,
    pub completions: completions::Receiver,
}

struct Route {
    /// `None` once the handle is gone: its callbacks are dropped until the lock ends.
    completions: Option<completions::Sender>,
    basts: Option<BastSender>,
}

type Key = (String, u32);

#[derive(Default)]
pub(super) struct Demux {
    next_req: u64,
    pending: FxHashMap<u64, Pending>,
    routes: FxHashMap<Key, Route>,
    /// Callbacks for lkids no reply has named yet. The daemon queues a lock's first
    /// completion before the reply that carries its lkid when the grant is immediate
    /// (lockspace.rs `request` pushes the callback, then the reply; an adopted orphan
    /// and a down-conversion do the same), so these wait for that reply.
    early: FxHashMap<Key, Vec<Callback>>,
    /// New-lock calls without a reply yet. With none, an unknown lkid's callback
    /// cannot belong to a reply still to come, and `early` is emptied.
    new_locks: usize,
    closed: Option<Errno>,
    /// The daemon's Hello arrived (its first frame, and only that).
    greeted: bool,
}

impl Demux {
    /// Give a call its `req`, or the reason the connection is gone.
    pub fn register(&mut self, p: Pending) -> Result<u64, Errno> {
        self.register_with(p, 0)
    }

    /// [`Demux::register`] with `bits` set in the `req` (`REPLY_WITH_COMPLETION`).
    pub fn register_with(&mut self, p: Pending, bits: u64) -> Result<u64, Errno> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        self.next_req += 1;
        let req = self.next_req | bits;
        if matches!(p, Pending::NewLock { .. }) {
            self.new_locks += 1;
        }
        self.pending.insert(req, p);
        Ok(req)
    }

    pub fn closed(&self) -> Option<&Errno> {
        self.closed.as_ref()
    }

    /// The connection ended: every waiter gets `why`, and dropping the routes closes
    /// every lock's completion channel (its handle then reports `why` too).
    pub fn close(&mut self, why: Errno) -> bool {
        if self.closed.is_some() {
            return false;
        }
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Call(tx) => drop(tx.send(Err(why.clone()))),
                Pending::NewLock { tx, .. } => drop(tx.send(Err(why.clone()))),
                Pending::Query(tx) => drop(tx.send(Err(why.clone()))),
                Pending::Release { .. } => {}
            }
        }
        self.routes.clear();
        self.early.clear();
        self.new_locks = 0;
        self.closed = Some(why);
        true
    }

    /// Whether the daemon has said Hello.
    pub fn greeted(&self) -> bool {
        self.greeted
    }

    /// Take one frame from the daemon. `Err` says why the connection cannot go on (a
    /// daemon of another protocol version).
    pub fn on_frame(
        &mut self,
        frame: DaemonFrame,
        out: &mut Vec<ClientFrame>,
    ) -> Result<(), String> {
        match (self.greeted, &frame) {
            (false, DaemonFrame::Hello { protocol }) if *protocol == CLIENT_PROTOCOL => {
                self.greeted = true;
                return Ok(());
            }
            (false, DaemonFrame::Hello { protocol }) => {
                return Err(format!(
                    "it speaks client protocol {protocol}, this hydra {CLIENT_PROTOCOL} \
                     (a dlm_controld of another version: restart it after an upgrade)"
                ))
            }
            (false, _) => {
                return Err(
                    "it answered before saying Hello (a dlm_controld older than \
                     this hydra: restart it after an upgrade)"
                        .to_string(),
                )
            }
            (true, DaemonFrame::Hello { .. }) => {
                return Err("it said Hello twice".to_string());
            }
            (true, _) => {}
        }
        match frame {
            DaemonFrame::Hello { .. } => {} // handled above
            DaemonFrame::Reply { req, result } => self.on_reply(req, result, out),
            DaemonFrame::Text { req, result } => match self.pending.remove(&req) {
                Some(Pending::Query(tx)) => drop(tx.send(result)),
                Some(other) => {
                    // Text for a call: tell its waiter rather than leave it hanging.
                    let e = Errno::new(EPROTO, format!("daemon answered call {req} with text"));
                    self.fail(other, e);
                }
                None => tracing::warn!(req, "dlm client: text for no query in flight"),
            },
            DaemonFrame::Callback { ls, cb } => self.on_callback(ls, cb),
        }
        Ok(())
    }

    fn fail(&mut self, p: Pending, e: Errno) {
        match p {
            Pending::Call(tx) => drop(tx.send(Err(e))),
            Pending::Query(tx) => drop(tx.send(Err(e))),
            Pending::NewLock { tx, .. } => {
                self.new_lock_done();
                drop(tx.send(Err(e)));
            }
            Pending::Release { .. } => {}
        }
    }

    fn new_lock_done(&mut self) {
        self.new_locks = self.new_locks.saturating_sub(1);
        if self.new_locks == 0 && !self.early.is_empty() {
            tracing::debug!(
                n = self.early.len(),
                "dlm client: dropping callbacks of locks no reply named"
            );
            self.early.clear();
        }
    }

    fn on_reply(&mut self, req: u64, result: Result<u32, Errno>, out: &mut Vec<ClientFrame>) {
        match self.pending.remove(&req) {
            None => tracing::warn!(req, "dlm client: reply to no call in flight"),
            Some(Pending::Call(tx)) => drop(tx.send(result)),
            Some(p @ Pending::Query(_)) => {
                let e = Errno::new(EPROTO, format!("daemon answered query {req} with a reply"));
                self.fail(p, e);
            }
            Some(Pending::Release { ls, lkid }) => {
                // EINPROGRESS: an unlock already under way ends the lock; anything else
                // refused means the daemon has no such lock (say, its lockspace was
                // left by force), so no callback will ever end the route.
                if let Err(e) = result {
                    if e.code != EINPROGRESS {
                        self.routes.remove(&(ls, lkid));
                    }
                }
            }
            Some(Pending::NewLock { ls, basts, tx }) => {
                let lkid = match result {
                    Ok(lkid) => lkid,
                    Err(e) => {
                        // Refused: libdlm's "the call returned an error, no AST follows".
                        self.new_lock_done();
                        drop(tx.send(Err(e)));
                        return;
                    }
                };
                let key = (ls, lkid);
                let (ctx, crx) = completions::queue();
                let mut route = Route {
                    completions: Some(ctx),
                    basts,
                };
                let mut ended = false;
                for cb in self.early.remove(&key).unwrap_or_default() {
                    ended |= deliver(&key.0, &mut route, cb);
                }
                // Taken out of `new_locks` only now, so `early` still held this lock's
                // callbacks above.
                self.new_lock_done();
                let waiter_gone = tx
                    .send(Ok(NewLock {
                        lkid,
                        completions: crx,
                    }))
                    .is_err();
                if ended {
                    return;
                }
                self.routes.insert(key.clone(), route);
                if waiter_gone {
                    // The caller stopped waiting (its future was dropped, a timeout):
                    // nobody can ever unlock this lock, so release it now rather than
                    // hold it until the connection closes.
                    self.abandon(key.0, key.1, true, out);
                }
            }
        }
    }

    fn on_callback(&mut self, ls: String, cb: Callback) {
        let lkid = match &cb {
            Callback::Completion { lkid, .. } | Callback::Blocking { lkid, .. } => *lkid,
        };
        let key = (ls, lkid);
        if let Some(route) = self.routes.get_mut(&key) {
            if deliver(&key.0, route, cb) {
                self.routes.remove(&key);
            }
        } else if self.new_locks > 0 {
            self.early.entry(key).or_default().push(cb);
        } else {
            tracing::debug!(ls = %key.0, lkid, "dlm client: callback for no lock of ours");
        }
    }

    /// The handle of a live lock went away. Its callbacks are dropped from now on; with
    /// `release` a FORCEUNLOCK ends it (whatever it is doing), without it the lock stays
    /// held by the connection until the connection closes.
    pub fn abandon(&mut self, ls: String, lkid: u32, release: bool, out: &mut Vec<ClientFrame>) {
        let key = (ls, lkid);
        let Some(route) = self.routes.get_mut(&key) else {
            return; // already ended
        };
        route.completions = None;
        route.basts = None;
        if !release || self.closed.is_some() {
            return;
        }
        let (ls, lkid) = key;
        let p = Pending::Release {
            ls: ls.clone(),
            lkid,
        };
        if let Ok(req) = self.register(p) {
            out.push(ClientFrame::Call {
                req,
                request: Request::Unlock {
                    ls,
                    lkid,
                    flags: Flags(Flags::FORCEUNLOCK),
                    lvb: None,
                },
            });
        }
    }

    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.pending.len(), self.routes.len(), self.early.len())
    }
}

/// Hand one callback to a lock's owner; true when it ends the lock. A completion
/// without a mode is the lock's last: the daemon sends one exactly when it forgets the
/// lock (lockspace.rs `drop_lock`: unlocked, cancelled or refused request, forced
/// unlock), and every other completion leaves the lock granted in its `mode`.
fn deliver(ls: &str, route: &mut Route, cb: Callback) -> bool {
    match cb {
        Callback::Completion {
            status,
            mode,
            sbflags,
            lvb,
            ..
        } => {
            if let Some(tx) = &route.completions {
                // A handle being dropped right now does not take it; its Drop abandons
                // the lock.
                tx.send(Completion {
                    status,
                    mode,
                    sbflags,
                    lvb,
                });
            }
            mode.is_none()
        }
        Callback::Blocking { lkid, mode } => {
            if let Some(tx) = &route.basts {
                let _ = tx.send(Blocked {
                    ls: ls.to_string(),
                    lkid,
                    mode,
                });
            }
            false
        }
    }
}
