//! The map's task: owns the sans-IO [`Map`] and runs the loop of map/mod.rs's module
//! doc — feed what happened, act on [`Map::poll_event`], sleep until
//! [`Map::poll_timeout`] or the next input.
//!
//! Inputs come over two channels: the outside one (the [`super::MapHandle`]s and the
//! block device; when every sender is gone the map stops) and the inside one (the
//! dispatch, checker and path-watcher tasks the loop spawned).
//!
//! A command stuck on a path whose session went down: a fail-fast session hands it
//! back at once; one that is not fail-fast would hold it for replacement_timeout, so
//! the loop takes it back with [`Session::withdraw_all`] and the map sends the I/O on
//! another path (at the Down event, and again at each failed check, for a dispatch
//! that reached the session after it). `withdraw_all` takes back every command of the
//! session, other maps' LUNs on it included: their paths are down too, and their maps
//! move them the same way.
//!
//! The window this leaves is dm-multipath's after fast_io_fail_tmo: a WRITE that had
//! reached the target may still be executed by it until the session is reinstated
//! (the reconnect with the same ISID) or the target drops the old connection's tasks
//! (DefaultTime2Wait + DefaultTime2Retain, RFC 7143 §6.3.5), after the same blocks
//! were written again through another path. Linux does not wait for either before
//! retrying on another path, and neither does hydra; a caller that cannot live with
//! it fences with persistent reservations (PREEMPT AND ABORT).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hydra_initiator::{PathState, Session};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::checker::{self, CheckerOptions};
use super::dispatch::{self, Answer, IoOp};
use super::geometry::Geometry;
use super::pr::PrPath;
use crate::export::DeviceError;
use crate::map::{
    CheckResult, Event, IoId, IoResult, LogLevel, Map, Outcome, PathEvent, PathId, PathInfo,
};
use crate::{Error, Result};

pub(crate) type Job = Box<dyn FnOnce(&mut Map, Instant) + Send>;

/// What the loop is told.
pub(crate) enum Input {
    /// A block I/O from the device.
    Io {
        op: IoOp,
        reply: oneshot::Sender<Answer>,
    },
    AddPath {
        id: PathId,
        info: PathInfo,
        session: Arc<Session>,
        lun: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    RemovePath {
        id: PathId,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Run against the core (views, operator commands).
    Run(Job),
    /// The paths for a PERSISTENT RESERVE command, usable ones first.
    Paths(oneshot::Sender<Vec<PrPath>>),
    /// The key this node registers (and whether with APTPL), for paths added later.
    SetKey(Option<(u64, bool)>),
    Shutdown(oneshot::Sender<()>),
    // ----- from the loop's own tasks -----
    Completed {
        io: IoId,
        outcome: Outcome,
        answer: Answer,
    },
    Checked {
        id: PathId,
        result: CheckResult,
    },
    PathEvent {
        id: PathId,
        ev: PathEvent,
    },
}

struct Link {
    session: Arc<Session>,
    lun: u64,
    name: String,
    tpg: Option<u16>,
    watcher: JoinHandle<()>,
}

struct Pending {
    op: Arc<IoOp>,
    reply: oneshot::Sender<Answer>,
    /// The last dispatch's answer, given to the caller on [`IoResult::Completed`].
    answer: Option<Answer>,
}

pub(crate) struct Task {
    map: Map,
    geometry: Geometry,
    checker: CheckerOptions,
    links: HashMap<PathId, Link>,
    ios: HashMap<IoId, Pending>,
    /// Paths being removed: failed in the map, waiting for their I/O to come back.
    removing: HashMap<PathId, Vec<oneshot::Sender<Result<()>>>>,
    /// The map's reservation key (multipathd's `reservation_key` / prkeys file) and
    /// APTPL: registered on each path added while it is registered on the others.
    key: Option<(u64, bool)>,
    /// A command met RESERVATION CONFLICT since the key was last set: the node has
    /// been told (logged once) that its registration is gone.
    conflict_seen: bool,
    inside: mpsc::UnboundedSender<Input>,
}

impl Task {
    pub fn new(
        map: Map,
        geometry: Geometry,
        checker: CheckerOptions,
        inside: mpsc::UnboundedSender<Input>,
    ) -> Task {
        Task {
            map,
            geometry,
            checker,
            links: HashMap::new(),
            ios: HashMap::new(),
            removing: HashMap::new(),
            key: None,
            conflict_seen: false,
            inside,
        }
    }

    /// The first RESERVATION CONFLICT after the key was set: under a Registrants Only
    /// reservation that means this node's key has been preempted, i.e. another node
    /// fenced it (fence_scsi). It fails at once, on no other path (it is the LUN's
    /// answer, not the path's); say so once, loudly.
    fn conflict_seen(&mut self, io: IoId) {
        if std::mem::replace(&mut self.conflict_seen, true) {
            return;
        }
        let key = match self.key {
            Some((k, _)) => format!("{k:#x}"),
            None => "(none set)".into(),
        };
        let what = self.ios.get(&io).map(|p| p.op.name()).unwrap_or("command");
        tracing::error!(
            "{}: {what}: RESERVATION CONFLICT: this node's key {key} is not registered on \
             the LUN: it has been fenced (or never unfenced); I/O that needs a \
             registration fails until `fence_scsi -o on` registers it again",
            self.alias()
        );
    }

    fn alias(&self) -> &str {
        &self.map.config().alias
    }

    pub async fn run(
        mut self,
        mut outside: mpsc::UnboundedReceiver<Input>,
        mut inside: mpsc::UnboundedReceiver<Input>,
    ) {
        loop {
            self.act();
            let deadline = self.map.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                biased;
                i = inside.recv() => i,
                i = outside.recv() => match i {
                    Some(i) => Some(i),
                    // Every handle and device is gone.
                    None => {
                        self.stop();
                        return;
                    }
                },
                _ = sleep => {
                    self.map.handle_timeout(Instant::now());
                    continue;
                }
            };
            let Some(input) = input else { continue };
            if let Some(done) = self.input(input) {
                self.stop();
                // Closed before the answer: whoever saw `shutdown` return finds the
                // channel closed (a flush with nothing to send reports Shutdown by it),
                // not open until this task's receiver is dropped a moment later.
                outside.close();
                let _ = done.send(());
                return;
            }
        }
    }

    /// Feed one input; Some(reply) when it is the shutdown.
    fn input(&mut self, input: Input) -> Option<oneshot::Sender<()>> {
        let now = Instant::now();
        match input {
            Input::Io { op, reply } => {
                let bytes = op.bytes();
                // Registered before the events of submit are acted on.
                let io = self.map.submit(now, bytes);
                self.ios.insert(
                    io,
                    Pending {
                        op: Arc::new(op),
                        reply,
                        answer: None,
                    },
                );
            }
            Input::AddPath {
                id,
                info,
                session,
                lun,
                reply,
            } => {
                let _ = reply.send(self.add_path(now, id, info, session, lun));
            }
            Input::RemovePath { id, reply } => self.remove_path(now, id, reply),
            Input::Run(job) => job(&mut self.map, now),
            Input::Paths(reply) => {
                let _ = reply.send(self.pr_paths());
            }
            Input::SetKey(key) => {
                self.key = key;
                self.conflict_seen = false;
            }
            Input::Shutdown(reply) => return Some(reply),
            Input::Completed {
                io,
                outcome,
                answer,
            } => {
                if matches!(answer, Err(DeviceError::ReservationConflict)) {
                    self.conflict_seen(io);
                }
                if let Some(p) = self.ios.get_mut(&io) {
                    p.answer = Some(answer);
                }
                if let Err(e) = self.map.handle_completion(now, io, outcome) {
                    tracing::error!("{e}");
                }
                self.finish_removals(now);
            }
            Input::Checked { id, result } => {
                if self.removing.contains_key(&id) || !self.links.contains_key(&id) {
                    return None;
                }
                let down = matches!(result, CheckResult::Down { .. });
                if let Err(e) = self.map.handle_check(now, id, result) {
                    tracing::debug!("{e}");
                }
                // A dispatch that reached the session after the withdraw at its Down
                // event is held there too: take it back at each failed check.
                if down {
                    self.withdraw_stuck(id);
                }
            }
            Input::PathEvent { id, ev } => {
                if self.removing.contains_key(&id) || !self.links.contains_key(&id) {
                    return None;
                }
                let down = matches!(ev, PathEvent::Down { .. });
                if let Err(e) = self.map.handle_path_event(now, id, ev) {
                    tracing::debug!("{e}");
                }
                if down {
                    self.withdraw_stuck(id);
                }
            }
        }
        None
    }

    fn add_path(
        &mut self,
        now: Instant,
        id: PathId,
        info: PathInfo,
        session: Arc<Session>,
        lun: u64,
    ) -> Result<()> {
        if self.removing.contains_key(&id) {
            return Err(Error::DuplicatePath {
                map: self.alias().to_string(),
                path: id.0,
            });
        }
        let (name, tpg) = (info.name.clone(), info.tpg);
        self.map.add_path(now, id, info)?;
        if let Some((key, aptpl)) = self.key {
            let (s, alias) = (session.clone(), self.alias().to_string());
            tokio::spawn(super::pr::register_new_path(
                alias,
                name.clone(),
                s,
                lun,
                key,
                aptpl,
            ));
        }
        let watcher = tokio::spawn(watch_path(id, session.clone(), self.inside.clone()));
        self.links.insert(
            id,
            Link {
                session,
                lun,
                name,
                tpg,
                watcher,
            },
        );
        Ok(())
    }

    fn remove_path(&mut self, now: Instant, id: PathId, reply: oneshot::Sender<Result<()>>) {
        if !self.links.contains_key(&id) {
            let _ = reply.send(Err(Error::UnknownPath {
                map: self.alias().to_string(),
                path: id.0,
            }));
            return;
        }
        // No new I/O goes there; what is on it comes back before it goes.
        let _ = self.map.fail_path(now, id);
        self.removing.entry(id).or_default().push(reply);
        if !self.links[&id].session.path_state().is_up() {
            self.withdraw_stuck(id);
        }
        self.finish_removals(now);
    }

    /// Remove the paths being removed whose I/O has all come back.
    fn finish_removals(&mut self, now: Instant) {
        let ready: Vec<PathId> = self
            .removing
            .keys()
            .filter(|id| self.map.path(**id).is_none_or(|p| p.in_flight == 0))
            .copied()
            .collect();
        for id in ready {
            let replies = self.removing.remove(&id).unwrap_or_default();
            let r = match self.map.path(id) {
                Some(_) => self.map.remove_path(now, id),
                None => Ok(()),
            };
            if let Some(link) = self.links.remove(&id) {
                link.watcher.abort();
            }
            let msg = r.err().map(|e| e.to_string());
            for reply in replies {
                let _ = reply.send(match &msg {
                    None => Ok(()),
                    Some(m) => Err(Error::Probe {
                        what: format!("remove {id}"),
                        reason: m.clone(),
                    }),
                });
            }
        }
    }

    /// The session under `id` is down with commands of this map on it: take them back
    /// unless it already came back up (see the module doc for the window this leaves).
    fn withdraw_stuck(&self, id: PathId) {
        let busy = self.map.path(id).is_some_and(|p| p.in_flight > 0);
        let Some(link) = self.links.get(&id).filter(|_| busy) else {
            return;
        };
        let (session, name, alias) = (
            link.session.clone(),
            link.name.clone(),
            self.alias().to_string(),
        );
        tokio::spawn(async move {
            if session.path_state().is_up() {
                return;
            }
            match session.withdraw_all().await {
                Ok(n) if n > 0 => {
                    tracing::info!("{alias}: {name}: withdrew {n} command(s) from the lost session")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("{alias}: {name}: withdraw: {e}"),
            }
        });
    }

    fn pr_paths(&self) -> Vec<PrPath> {
        let mut v: Vec<PrPath> = self
            .map
            .paths()
            .iter()
            .filter(|p| !self.removing.contains_key(&p.id))
            .filter_map(|p| {
                let l = self.links.get(&p.id)?;
                Some(PrPath {
                    id: p.id,
                    name: l.name.clone(),
                    session: l.session.clone(),
                    lun: l.lun,
                    usable: p.usable(),
                })
            })
            .collect();
        // The active group's paths first, then the others in group order.
        let order: Vec<PathId> = self
            .map
            .active_group()
            .into_iter()
            .chain(0..self.map.groups().len())
            .flat_map(|g| self.map.groups()[g].paths.clone())
            .collect();
        v.sort_by_key(|p| {
            order
                .iter()
                .position(|id| *id == p.id)
                .unwrap_or(usize::MAX)
        });
        v
    }

    /// Act on every event the core has.
    fn act(&mut self) {
        while let Some(ev) = self.map.poll_event() {
            match ev {
                Event::Dispatch { io, path } => self.dispatch(io, path),
                Event::Done { io, result } => {
                    let Some(p) = self.ios.remove(&io) else {
                        continue;
                    };
                    let answer = match result {
                        IoResult::Completed => p
                            .answer
                            .unwrap_or_else(|| Err(DeviceError::Io("no answer recorded".into()))),
                        IoResult::NoPath { why } => Err(DeviceError::Io(why)),
                    };
                    let _ = p.reply.send(answer);
                }
                Event::CheckPath(id) => self.check(id),
                Event::Log { level, message } => match level {
                    LogLevel::Info => tracing::info!("{message}"),
                    LogLevel::Warn => tracing::warn!("{message}"),
                    LogLevel::Error => tracing::error!("{message}"),
                },
            }
        }
    }

    fn dispatch(&mut self, io: IoId, path: PathId) {
        let (Some(link), Some(p)) = (self.links.get(&path), self.ios.get(&io)) else {
            // Cannot happen (the core dispatches to its own paths): end it as a path
            // error so the I/O moves on rather than hangs.
            let _ = self.inside.send(Input::Completed {
                io,
                outcome: Outcome::PathError {
                    why: format!("{path} has no session"),
                },
                answer: Err(DeviceError::Io("path without a session".into())),
            });
            return;
        };
        let (session, lun, op, g) = (link.session.clone(), link.lun, p.op.clone(), self.geometry);
        let tx = self.inside.clone();
        tokio::spawn(async move {
            let (outcome, answer) = dispatch::run(&session, lun, &op, &g).await;
            let _ = tx.send(Input::Completed {
                io,
                outcome,
                answer,
            });
        });
    }

    fn check(&mut self, id: PathId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let (session, lun, tpg) = (link.session.clone(), link.lun, link.tpg);
        let (bs, opts, tx) = (self.geometry.block_size, self.checker, self.inside.clone());
        tokio::spawn(async move {
            let result = checker::check(&session, lun, bs, tpg, opts).await;
            let _ = tx.send(Input::Checked { id, result });
        });
    }

    /// Fail every I/O with Shutdown, stop the watchers, answer pending removals.
    fn stop(&mut self) {
        for (_, p) in self.ios.drain() {
            let _ = p.reply.send(Err(DeviceError::Shutdown));
        }
        for (_, l) in self.links.drain() {
            l.watcher.abort();
        }
        for (_, replies) in self.removing.drain() {
            for r in replies {
                let _ = r.send(Ok(()));
            }
        }
        tracing::info!("{}: map stopped", self.alias());
    }
}

/// Forward the session's state changes as path events. An `Up` with a newer `since`
/// than the last one seen means the path went down and came back in between.
async fn watch_path(id: PathId, session: Arc<Session>, tx: mpsc::UnboundedSender<Input>) {
    let mut rx = session.state();
    let mut last = rx.borrow_and_update().clone();
    let send = |ev: PathEvent| tx.send(Input::PathEvent { id, ev }).is_ok();
    if !last.is_up() && !send(PathEvent::from_state(&last)) {
        return;
    }
    drop(session);
    loop {
        if rx.changed().await.is_err() {
            let _ = send(PathEvent::Down {
                why: "session ended".into(),
            });
            return;
        }
        let now = rx.borrow_and_update().clone();
        let ok = match (&last, &now) {
            (a, b) if a == b => true,
            (PathState::Up { .. }, PathState::Up { .. }) => {
                send(PathEvent::Down {
                    why: "connection lost and re-established".into(),
                }) && send(PathEvent::Up)
            }
            (_, b) => send(PathEvent::from_state(b)),
        };
        if !ok || now == PathState::LoggedOut {
            return;
        }
        last = now;
    }
}

/// A read's data, for the device.
pub(crate) fn data(a: Answer) -> Result<Bytes, DeviceError> {
    a.map(|d| d.unwrap_or_default())
}
