//! The lock manager daemon (`hydra dlm_controld`): the tokio driver around one lock
//! core ([`Node`]). It plays the parts dlm_controld and the kernel's dlm play on Linux
//! (dlm.md §2.4–2.7): membership and quorum from corosync, fencing, lock traffic between
//! nodes over TCP, and the clients of this node over a unix socket.
//!
//! One event loop owns the core and is the only place it is touched. It waits on:
//! - corosync's events (cluster.rs' [`Events`]): configuration changes, quorum, and CPG
//!   deliveries decoded into the core's recovery ([`LsCpg`]) and fencing ([`DaemonCpg`])
//!   messages;
//! - its own channel, fed by the connection tasks: client frames ([`clients`]), peer
//!   messages and link trouble ([`peers`]), fence agent outcomes ([`fencing`]) and failed
//!   CPG joins ([`cpg`]);
//! - new client and peer connections, a 100 ms tick, SIGTERM and SIGINT.
//!
//! SIGTERM and SIGINT stop it as dlm_controld stops: not while a lockspace exists (its
//! leaving would look like a failure to the other members); otherwise it drains with
//! hydra-daemon's [`Shutdown`]: it stops taking clients, handles the calls and queries
//! its clients had sent, writes their answers, then leaves the daemons' group and exits.
//!
//! Every input goes to [`Node::handle`] with the milliseconds since the daemon started,
//! and every output is carried out at once without waiting: messages to peers and
//! clients go into per-connection queues with their own writer tasks, CPG requests to
//! one task that makes them in order, fence agents run in tasks of their own. Inputs
//! that outputs cause (a client dropped for not reading, a message to this node) queue
//! behind the current one, so the core never sees a nested call.
//!
//! What the core does not track but `dlm_tool status` and `ls` show (join and failure
//! times, change counts) is kept by [`history`]; the debug log `dlm_tool dump` prints is
//! [`log`].

mod clients;
mod cpg;
pub mod dump;
mod fencing;
mod framed;
pub mod history;
mod lockstate;
pub mod log;
mod peers;
mod pidfile;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hydra_daemon::{Shutdown, Signals};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Callback;
use crate::api::{ClientFrame, ClientId, DaemonFrame, Errno, Query, Request};
use crate::config::Config;
use crate::corosync::{Corosync, Events};
use crate::error::{Error, Result};
use crate::flags::libc_errno::{ENOTCONN, ESHUTDOWN};
use crate::flags::Flags;
use crate::fxhash::FxHashMap;
use crate::io::{Input, Output};
use crate::membership::{lockspace_group, ClusterEvent, Confchg, NodeId, DAEMON_GROUP};
use crate::message::{DaemonCpg, LsCpg};
use crate::node::{CoreConfig, Node};
use crate::wire::{Wire, MAX_FRAME, REPLY_WITH_COMPLETION};

use clients::{ClientEvent, Clients};
use cpg::CpgOp;
use fencing::{FenceOutcome, Fencing, AGENT_TIMEOUT};
use history::{reason_str, Clock, History};
use lockstate::LockState;
use log::{DebugLog, LOG_LINES};
use peers::{PeerEvent, Peers};
use pidfile::PidFile;

/// Inputs from connection tasks waiting for the event loop; a full queue makes the
/// readers wait (and TCP push back on the peers sending).
const EVENT_QUEUE: usize = 4096;
/// Inputs taken from the queue in one go before the loop looks at its other sources.
const EVENT_BATCH: usize = 64;
/// The core's clock tick (toss timers, fence retries).
const TICK: Duration = Duration::from_millis(100);
/// How long leaving the CPG groups may take at shutdown.
const LEAVE_LIMIT: Duration = Duration::from_secs(10);
/// How long a stopping daemon waits for its clients' readers to hand on what they read,
/// and then for their answers to be written.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest query answer sent: a frame holds at most MAX_FRAME bytes, with room
/// left for the frame's other fields.
const TEXT_MAX: usize = MAX_FRAME - 64 * 1024;
/// The client id the daemon uses for calls of its own (never given to a connection).
const DAEMON_CLIENT: ClientId = 0;

/// How the daemon is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pid file and client socket (`--run-dir`, default [`crate::api::DEFAULT_RUN_DIR`]).
    pub run_dir: PathBuf,
    /// The parsed dlm.conf.
    pub config: Config,
    /// Where it was read from (for the log).
    pub config_path: PathBuf,
}

/// What connection tasks report to the event loop.
#[derive(Debug)]
pub enum Event {
    Client(ClientEvent),
    Peer(PeerEvent),
    Fenced(FenceOutcome),
    /// corosync refused to join a CPG group.
    JoinFailed {
        group: String,
        error: String,
    },
}

/// The core's settings from dlm.conf, with corosync's nodelist for startup fencing; the
/// rest keep the core's defaults.
pub fn core_config(config: &Config, nodes: &[NodeId]) -> CoreConfig {
    let o = &config.options;
    CoreConfig {
        enable_fencing: o.enable_fencing,
        enable_quorum_fencing: o.enable_quorum_fencing,
        enable_quorum_lockspace: o.enable_quorum_lockspace,
        enable_startup_fencing: o.enable_startup_fencing,
        post_join_delay_ms: u64::from(o.post_join_delay) * 1000,
        nodes: nodes.to_vec(),
        ..CoreConfig::default()
    }
}

/// A started daemon: the pid file is locked, corosync connected, this node unfenced,
/// the peer port and the client socket bound. [`Daemon::serve`] runs it.
pub struct Daemon {
    node: Node,
    config: Arc<Config>,
    origin: Instant,
    log: DebugLog,
    cluster: Events,
    peers: Peers,
    clients: Clients,
    cpg: mpsc::UnboundedSender<CpgOp>,
    fencing: Fencing,
    history: History,
    lock_state: LockState,
    /// Inputs caused by outputs, handled after the current one.
    inputs: VecDeque<Input>,
    events: mpsc::Receiver<Event>,
    /// SIGTERM and SIGINT, caught from before the daemon reports ready.
    signals: Signals,
    /// The client readers' stop; drained when the daemon stops.
    shutdown: Shutdown,
    /// A stop is under way: no new lockspace is joined.
    stopping: bool,
    /// A batch of events is being handled: `settle` only runs the core, and the
    /// batch's end does the rest (writes, log, state checks) once.
    batching: bool,
    /// Calls sent with `REPLY_WITH_COMPLETION` and not answered yet, by (client, req):
    /// the lkid an Unlock names (0 for a new lock, whose lkid is in the reply).
    with_completion: FxHashMap<(ClientId, u64), u32>,
    /// Their accepting replies, held until the lock's next completion goes to the
    /// client, by (client, lkid): (req, the reply's value). Keyed without the
    /// lockspace: a completion of the same lkid in another lockspace of the same client
    /// only sends a reply early, which is always correct.
    held: FxHashMap<(ClientId, u32), (u64, u32)>,
    /// (client, lkid) of the completions sent by the outputs being carried out.
    completed: Vec<(ClientId, u32)>,
    /// Last of all, so it is removed after the socket.
    _pidfile: PidFile,
}

impl Daemon {
    /// Everything that can fail at start-up, in dlm_controld's order where it matters:
    /// one daemon per run directory, corosync, unfencing this node before it joins the
    /// daemons' group (after which others may fence it), then the sockets.
    pub async fn start(opts: Options) -> Result<Daemon> {
        let origin = Instant::now();
        let log = DebugLog::new(origin, LOG_LINES);
        let pidfile = PidFile::acquire(&opts.run_dir)?;
        // Before anything that takes time: a signal sent once the daemon is up is heard.
        let signals = Signals::new()?;
        let lock_state = LockState::check(&opts.run_dir)?;
        let config = Arc::new(opts.config);
        let (corosync, cluster) = Corosync::connect().await.map_err(|e| Error::Corosync {
            call: "connect",
            detail: format!("{e} (is corosync running on this node?)"),
        })?;
        let me = corosync.local_nodeid();
        let nodes = corosync.nodelist().to_vec();
        log.line(format!(
            "dlm_controld (hydra {}) started: node {me}, config {}, run dir {}",
            env!("CARGO_PKG_VERSION"),
            opts.config_path.display(),
            opts.run_dir.display()
        ));
        let unused = config.unused_settings();
        if !unused.is_empty() {
            log.line(format!(
                "dlm.conf sets options hydra keeps but does not act on: {}",
                unused.join(", ")
            ));
        }
        let o = &config.options;
        let unfence = config.unfence_plan(me);
        if !unfence.is_empty() {
            log.line(format!("unfence {me}: {} agent runs", unfence.len()));
            let outcomes = crate::fence::unfence(&unfence, me, AGENT_TIMEOUT).await?;
            log.line(format!("unfence {me}: done ({} agents)", outcomes.len()));
        }
        let my_addr = nodes
            .iter()
            .find(|(n, _)| *n == me)
            .map(|(_, a)| *a)
            .ok_or_else(|| Error::Corosync {
                call: "cmap_get",
                detail: format!("node {me} has no address in the nodelist"),
            })?;
        let bind = match (o.bind_all, my_addr) {
            (false, a) => a,
            (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let peers = Peers::bind(me, &nodes, bind, o.port, events_tx.clone(), log.clone()).await?;
        let clients = Clients::bind(&opts.run_dir, events_tx.clone())?;
        log.line(format!(
            "listening for peers on {}, clients on {}",
            peers
                .local_addr()
                .map_or_else(|| format!("{bind}:{}", o.port), |a| a.to_string()),
            clients.path().display()
        ));
        let node_ids: Vec<NodeId> = nodes.iter().map(|(n, _)| *n).collect();
        let corosync = Arc::new(corosync);
        let cpg = cpg::spawn(corosync.clone(), events_tx.clone(), log.clone());
        let fencing = Fencing::new(config.clone(), events_tx.clone(), log.clone());
        Ok(Daemon {
            node: Node::new(me, core_config(&config, &node_ids)),
            config,
            origin,
            log,
            cluster,
            peers,
            clients,
            cpg,
            fencing,
            history: History::new(me),
            lock_state,
            inputs: VecDeque::new(),
            events,
            signals,
            shutdown: Shutdown::new(),
            stopping: false,
            batching: false,
            with_completion: FxHashMap::default(),
            held: FxHashMap::default(),
            completed: Vec::new(),
            _pidfile: pidfile,
        })
    }

    /// Run until SIGTERM or SIGINT with no lockspace left (Ok), or until corosync goes
    /// away or the daemons' group cannot be joined (the error). The socket and pid file
    /// are removed either way.
    ///
    /// The loop runs as a task of its own, not as the future the runtime blocks on:
    /// tokio's current-thread scheduler polls that future only after another look at
    /// epoll (a zero-timeout epoll_wait whenever a connection task wakes it), which cost
    /// one system call per client frame and peer message; a task it just runs.
    pub async fn serve(self) -> Result<()> {
        match tokio::spawn(self.run()).await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Err(Error::Request(format!("the event loop ended: {e}"))),
            },
        }
    }

    async fn run(mut self) -> Result<()> {
        let first = self.node.start();
        self.execute(first);
        self.settle();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The readers' drain, once a stop is under way.
        let mut drained = None;
        loop {
            tokio::select! {
                ev = self.cluster.recv() => match ev {
                    Ok(ev) => self.cluster_event(ev),
                    Err(e) => {
                        self.log.line(format!("cluster is down, exiting: {e}"));
                        return Err(e);
                    }
                },
                Some(ev) = self.events.recv() => {
                    // What the connection tasks queued meanwhile, without a round of
                    // select! per input (it polls every branch, signals and the timer
                    // included); bounded, so the other branches still get their turn.
                    // The core handles each input as it comes; what they send is
                    // written once for the batch (a write per client and per peer, not
                    // per frame), as are the log and state checks of `settle`.
                    self.batching = true;
                    let mut handled = self.event(ev);
                    for _ in 1..EVENT_BATCH {
                        if handled.is_err() {
                            break;
                        }
                        match self.events.try_recv() {
                            Ok(ev) => handled = self.event(ev),
                            Err(_) => break,
                        }
                    }
                    self.batching = false;
                    self.settle();
                    handled?;
                }
                conn = self.clients.accept() => match conn {
                    Ok(stream) => match self.clients.add(stream, self.shutdown.subscribe()) {
                        Ok(id) => tracing::debug!("client {id} connected (pid {})", self.clients.pid(id)),
                        Err(e) => self.log.line(format!("client connection not taken on: {e}")),
                    },
                    Err(e) => self.accept_failed("client socket", e).await,
                },
                conn = self.peers.accept() => match conn {
                    Ok((stream, from)) => self.peers.add_incoming(stream, from),
                    Err(e) => self.accept_failed("peer port", e).await,
                },
                _ = tick.tick() => self.input(Input::Tick),
                sig = self.signals.recv(), if drained.is_none() => if self.may_stop(sig) {
                    drained = Some(Box::pin(self.stop()));
                },
                done = async { drained.as_mut().expect("stopping").await }, if drained.is_some() => {
                    if !done {
                        self.log.line(format!("clients still sending after {DRAIN:?}: stopping anyway"));
                    }
                    break;
                }
            }
        }
        self.finish_clients().await?;
        self.leave_groups().await;
        Ok(())
    }

    /// Start the stop: no new clients, and every reader hands on what it has read and
    /// ends. The future resolves once they all have (false: not within [`DRAIN`]); the
    /// loop goes on handling what they hand on meanwhile.
    fn stop(&mut self) -> impl std::future::Future<Output = bool> + 'static {
        self.stopping = true;
        self.clients.stop_accepting();
        std::mem::take(&mut self.shutdown).drain(DRAIN)
    }

    /// The readers are done: handle the last frames they handed on, and write every
    /// answer before the connections close with the daemon.
    async fn finish_clients(&mut self) -> Result<()> {
        while let Ok(ev) = self.events.try_recv() {
            self.event(ev)?;
        }
        if tokio::time::timeout(DRAIN, self.clients.flushed())
            .await
            .is_err()
        {
            self.log.line(format!(
                "answers to clients not all written within {DRAIN:?}"
            ));
        }
        Ok(())
    }

    /// dlm_controld refuses to quit while lockspaces exist ("shutdown ignored, active
    /// lockspaces"): its leaving would look like a failure to the other members.
    fn may_stop(&self, what: &str) -> bool {
        if self.node.lockspaces.is_empty() {
            self.log.line(format!("{what}: shutting down"));
            return true;
        }
        let names: Vec<&str> = self.node.lockspaces.keys().map(String::as_str).collect();
        self.log.line(format!(
            "{what}: shutdown ignored, active lockspaces: {} (leave them first)",
            names.join(", ")
        ));
        false
    }

    /// Leave the CPG groups cleanly, so the other daemons see a leave, not a failure
    /// that needs fencing (dlm_controld's `close_cpg_daemon`).
    async fn leave_groups(&mut self) {
        let (done, wait) = oneshot::channel();
        let _ = self.cpg.send(CpgOp::Leave(DAEMON_GROUP.to_string()));
        let _ = self.cpg.send(CpgOp::Flush(done));
        if tokio::time::timeout(LEAVE_LIMIT, wait).await.is_err() {
            self.log
                .line("leaving the daemons' CPG group did not finish in time");
        }
    }

    /// An accept error (EMFILE and the like): say so and pause instead of spinning.
    async fn accept_failed(&self, what: &str, e: std::io::Error) {
        self.log.line(format!("accept on the {what} failed: {e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn clock(&self) -> Clock {
        Clock {
            mono: self.origin.elapsed().as_secs(),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn cluster_event(&mut self, ev: ClusterEvent) {
        match ev {
            ClusterEvent::Confchg(c) => {
                self.log.line(confchg_line(&c));
                self.history.confchg(&c, self.clock());
                let gone: Vec<NodeId> = if c.group == DAEMON_GROUP {
                    c.left.iter().map(|(n, _)| *n).collect()
                } else {
                    Vec::new()
                };
                self.input(Input::Confchg(c));
                for n in gone {
                    self.peers.forget(n);
                }
            }
            ClusterEvent::Quorum(q) => {
                self.log.line(format!(
                    "quorum: quorate {} ring {} members {:?}",
                    u8::from(q.quorate),
                    q.ring_seq,
                    q.members
                ));
                self.history.cluster_ring = q.ring_seq;
                self.input(Input::Quorum(q));
            }
            ClusterEvent::Deliver { group, from, data } => {
                if group == DAEMON_GROUP {
                    match DaemonCpg::decode(&data) {
                        Ok(msg) => {
                            self.history.daemon_cpg(from, &msg, self.clock());
                            self.input(Input::DaemonCpg { from, msg });
                        }
                        Err(e) => self.undecodable(&group, from, data.len(), &e),
                    }
                } else if let Some(ls) = group.strip_prefix("dlm:ls:") {
                    match LsCpg::decode(&data) {
                        Ok(msg) => self.input(Input::LsCpg {
                            ls: ls.to_string(),
                            from,
                            msg,
                        }),
                        Err(e) => self.undecodable(&group, from, data.len(), &e),
                    }
                } else {
                    self.log.line(format!(
                        "cpg {group}: message from node {from} for a group hydra does not \
                         use: dropped"
                    ));
                }
            }
        }
    }

    fn undecodable(&self, group: &str, from: NodeId, len: usize, e: &Error) {
        self.log.line(format!(
            "cpg {group}: undecodable message from node {from} ({len} bytes): {e}: dropped"
        ));
    }

    fn event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Client(ClientEvent::Frame { client, frame }) => match frame {
                // The reader checks a connection's Hello and never hands it on.
                ClientFrame::Hello { .. } => {}
                // A lockspace joined now would be left behind by the exiting daemon.
                ClientFrame::Call {
                    req,
                    request: Request::Join { .. },
                } if self.stopping => {
                    let result = Err(Errno::new(ESHUTDOWN, "dlm_controld is shutting down"));
                    self.clients
                        .send(client, DaemonFrame::Reply { req, result });
                    self.settle();
                }
                ClientFrame::Call { req, request } => {
                    // Only a Lock, or an Unlock that is not a CANCEL (which may find
                    // nothing to cancel), always has a completion to come; any other
                    // call is answered at once, marked or not.
                    if req & REPLY_WITH_COMPLETION != 0 {
                        match &request {
                            Request::Lock { lkid, .. } => {
                                self.with_completion.insert((client, req), *lkid);
                            }
                            Request::Unlock { lkid, flags, .. } if !flags.has(Flags::CANCEL) => {
                                self.with_completion.insert((client, req), *lkid);
                            }
                            _ => {}
                        }
                    }
                    self.input(Input::Client {
                        client,
                        req,
                        request,
                    })
                }
                ClientFrame::Query { req, query } => {
                    let result = self.query(query);
                    self.clients.send(client, DaemonFrame::Text { req, result });
                    self.settle();
                }
            },
            Event::Client(ClientEvent::Closed { client, error }) => {
                if let Some(e) = error {
                    self.log.line(format!("client {client}: {e}"));
                }
                if self.clients.remove(client) {
                    self.forget_held(client);
                    self.input(Input::ClientGone(client));
                }
            }
            Event::Peer(PeerEvent::Msg { from, msg }) => self.input(Input::Peer { from, msg }),
            Event::Peer(PeerEvent::ConnectFailed {
                node,
                link,
                attempt,
                error,
            }) => {
                if !self.peers.is_current(node, link) {
                    // From a link closed since (the node left): nothing to do.
                } else if !self.wanted(node) {
                    self.log.line(format!(
                        "peer {node}: {error}; node {node} is not a member any more: \
                         dropping its link and what was queued for it"
                    ));
                    self.peers.forget(node);
                } else if attempt.is_power_of_two() {
                    self.log.line(format!(
                        "peer {node}: {error} (attempt {attempt}); retrying"
                    ));
                }
            }
            Event::Peer(PeerEvent::Incoming { conn, node }) => {
                tracing::debug!("peer {node}: incoming connection {conn}");
                self.peers.incoming_ready(conn, node);
            }
            Event::Peer(PeerEvent::Closed { conn }) => self.peers.incoming_closed(conn),
            Event::Fenced(o) => {
                self.log
                    .line(format!("fence agents {}: {}", o.node, o.detail));
                self.fencing.finished(o.node);
                self.input(Input::FenceDone {
                    node: o.node,
                    ok: o.ok,
                });
            }
            Event::JoinFailed { group, error } => self.join_failed(group, error)?,
        }
        Ok(())
    }

    /// The core has no input for a failed CPG join. For a lockspace, the calls waiting
    /// on the join are answered with the error and the lockspace is dropped again (a
    /// forced leave on the daemon's own behalf); without the daemons' group the daemon
    /// cannot work at all.
    fn join_failed(&mut self, group: String, error: String) -> Result<()> {
        if group == DAEMON_GROUP {
            return Err(Error::Corosync {
                call: "cpg_join",
                detail: format!("joining {DAEMON_GROUP}: {error}"),
            });
        }
        let Some(name) = group.strip_prefix("dlm:ls:") else {
            return Ok(());
        };
        let waiters = match self.node.lockspaces.get_mut(name) {
            Some(ls) if !ls.joined => std::mem::take(&mut ls.join_waiters),
            _ => return Ok(()),
        };
        for (client, req) in waiters {
            let result = Err(Errno::new(
                ENOTCONN,
                format!("joining the CPG group {group} failed: {error}"),
            ));
            self.clients
                .send(client, DaemonFrame::Reply { req, result });
        }
        self.input(Input::Client {
            client: DAEMON_CLIENT,
            req: 0,
            request: Request::Leave {
                ls: name.to_string(),
                force: true,
            },
        });
        Ok(())
    }

    /// Whether links to `node` are still of use: it is in the daemons' group or in a
    /// lockspace this node is in.
    fn wanted(&self, node: NodeId) -> bool {
        self.node.daemon_members.contains(&node)
            || self
                .node
                .lockspaces
                .values()
                .any(|l| l.members.contains(&node))
    }

    fn query(&self, q: Query) -> Result<String, Errno> {
        let text = match q {
            Query::Ls { name, nodes } => {
                dump::ls(&self.node, &self.history, name.as_deref(), nodes)?
            }
            Query::Status { verbose } => {
                dump::status(&self.node, &self.history, verbose, self.clock())
            }
            // The newest lines matter most: a dump too big for one frame keeps its tail.
            Query::Dump => return Ok(tail(self.log.dump(), TEXT_MAX)),
            Query::DumpConfig => self.config.dump_config(),
            Query::Lockdump { ls, master_copies } => {
                dump::lockdump(&self.node, &ls, master_copies, &|c| self.clients.pid(c))?
            }
            Query::Lockdebug { ls } => dump::lockdebug(&self.node, &ls)?,
        };
        Ok(head(text, TEXT_MAX))
    }

    /// Write what clients were sent; one that does not read is dropped.
    fn flush_clients(&mut self) {
        for client in self.clients.flush() {
            self.log.line(format!(
                "client {client}: {} bytes queued and not read: disconnecting it",
                clients::CLIENT_QUEUE_BYTES
            ));
            self.clients.remove(client);
            self.forget_held(client);
            self.inputs.push_back(Input::ClientGone(client));
        }
    }

    /// Hand one input to the core, then everything it causes.
    fn input(&mut self, input: Input) {
        self.inputs.push_back(input);
        self.settle();
    }

    fn settle(&mut self) {
        loop {
            while let Some(input) = self.inputs.pop_front() {
                let now = self.now_ms();
                let out = self.node.handle(input, now);
                self.execute(out);
            }
            if self.batching {
                return; // the batch's end settles
            }
            self.flush_clients();
            self.peers.flush();
            if !self.inputs.is_empty() {
                continue;
            }
            for line in self.history.after(&self.node) {
                self.log.line(line);
            }
            let held = self.node.lockspaces.values().any(|l| l.has_run());
            if let Err(e) = self.lock_state.set(held) {
                self.log.line(format!("{e}"));
            }
            let node = &self.node;
            let stopped = self
                .fencing
                .cancel_unneeded(|n| node.fencing.contains_key(&n));
            if stopped.is_empty() {
                return;
            }
            for n in stopped {
                self.log.line(format!(
                    "fence agents {n}: stopped, node {n} needs no fencing any more \
                     (it rejoined cleanly or was acknowledged)"
                ));
                self.inputs
                    .push_back(Input::FenceDone { node: n, ok: false });
            }
        }
    }

    /// A client went: its held replies and marked calls with it.
    fn forget_held(&mut self, client: ClientId) {
        if !self.with_completion.is_empty() || !self.held.is_empty() {
            self.with_completion.retain(|(c, _), _| *c != client);
            self.held.retain(|(c, _), _| *c != client);
        }
    }

    /// An answer to a call: one marked `REPLY_WITH_COMPLETION` and accepted waits for
    /// the lock's next completion, unless that went out already (an immediate grant
    /// comes out before its reply).
    fn reply(&mut self, client: ClientId, req: u64, result: std::result::Result<u32, Errno>) {
        if req & REPLY_WITH_COMPLETION != 0 {
            if let Some(named) = self.with_completion.remove(&(client, req)) {
                if let Ok(v) = result {
                    let lkid = if named == 0 { v } else { named };
                    if !self.completed.contains(&(client, lkid)) {
                        self.held.insert((client, lkid), (req, v));
                        return;
                    }
                }
            }
        }
        self.clients
            .send(client, DaemonFrame::Reply { req, result });
    }

    fn execute(&mut self, out: Vec<Output>) {
        self.completed.clear();
        for o in out {
            match o {
                Output::Send { to, msg } if to == self.node.me => {
                    // The core handles its own messages itself; should one come out, it
                    // is delivered like any other.
                    self.inputs.push_back(Input::Peer { from: to, msg });
                }
                Output::Send { to, msg } if !self.wanted(to) => {
                    // `to` left (its links were closed then): a message for it must not
                    // wait on a new link and reach its next incarnation, whose lock ids
                    // start again at 1.
                    tracing::debug!(
                        "peer {to}: not a member: message for lockspace {} dropped",
                        msg.lockspace()
                    );
                }
                Output::Send { to, msg } => self.peers.send(to, msg),
                Output::McastLs { ls, msg } => {
                    let mut data = Vec::new();
                    msg.encode(&mut data);
                    let _ = self.cpg.send(CpgOp::Mcast(lockspace_group(&ls), data));
                }
                Output::McastDaemon(msg) => {
                    let mut data = Vec::new();
                    msg.encode(&mut data);
                    let _ = self.cpg.send(CpgOp::Mcast(DAEMON_GROUP.to_string(), data));
                }
                Output::CpgJoin(group) => {
                    self.log.line(format!("cpg_join {group}"));
                    let _ = self.cpg.send(CpgOp::Join(group));
                }
                Output::CpgLeave(group) => {
                    self.log.line(format!("cpg_leave {group}"));
                    let _ = self.cpg.send(CpgOp::Leave(group));
                }
                Output::Reply {
                    client,
                    req,
                    result,
                } => self.reply(client, req, result),
                Output::Callback { client, ls, cb } => {
                    if let Callback::Completion { lkid, .. } = &cb {
                        if !self.with_completion.is_empty() || !self.held.is_empty() {
                            if let Some((req, v)) = self.held.remove(&(client, *lkid)) {
                                let result = Ok(v);
                                self.clients
                                    .send(client, DaemonFrame::Reply { req, result });
                            }
                            self.completed.push((client, *lkid));
                        }
                    }
                    self.clients.send(client, DaemonFrame::Callback { ls, cb })
                }
                Output::Fence { node } => {
                    let failed = self.history.nodes.get(&node).map_or(0, |n| n.fail_walltime);
                    let fail_time = if failed > 0 {
                        failed
                    } else {
                        self.clock().wall
                    };
                    self.fencing.request(node, fail_time);
                }
                Output::Kick { node } => {
                    let _ = self.cpg.send(CpgOp::Kick(node));
                }
                Output::Log(line) => self.log.line(line),
            }
        }
    }
}

/// A configuration change for the debug log: `confchg <group> members [..] joined [..]
/// left [<node> <reason>, ..]`.
fn confchg_line(c: &Confchg) -> String {
    let left: Vec<String> = c
        .left
        .iter()
        .map(|(n, why)| format!("{n} {}", reason_str(Some(*why))))
        .collect();
    format!(
        "confchg {} members {:?} joined {:?} left [{}]",
        c.group,
        c.members,
        c.joined,
        left.join(", ")
    )
}

/// At most `max` bytes of `text` from its start, cut at a line end.
fn head(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let cut = text[..max].rfind('\n').map_or(0, |i| i + 1);
    format!(
        "{}... ({} more bytes not shown)\n",
        &text[..cut],
        text.len() - cut
    )
}

/// At most `max` bytes of `text` from its end, cut at a line start.
fn tail(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let from = text.len() - max;
    let start = text[from..].find('\n').map_or(text.len(), |i| from + i + 1);
    format!("({start} earlier bytes not shown)\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::LeaveReason;

    #[test]
    fn confchg_lines_name_the_left_nodes_and_why() {
        let c = Confchg {
            group: "dlm:ls:alpha".into(),
            members: vec![1, 3],
            joined: vec![3],
            left: vec![(2, LeaveReason::NodeDown), (4, LeaveReason::Leave)],
        };
        assert_eq!(
            confchg_line(&c),
            "confchg dlm:ls:alpha members [1, 3] joined [3] left [2 nodedown, 4 leave]"
        );
    }

    #[test]
    fn long_answers_are_cut_at_line_ends() {
        let text = "aaaa\nbbbb\ncccc\n".to_string();
        assert_eq!(head(text.clone(), 100), text);
        assert_eq!(
            head(text.clone(), 12),
            "aaaa\nbbbb\n... (5 more bytes not shown)\n"
        );
        assert_eq!(
            tail(text.clone(), 12),
            "(5 earlier bytes not shown)\nbbbb\ncccc\n"
        );
    }

    #[test]
    fn the_core_gets_dlm_conf_settings() {
        let cfg = Config::parse(
            std::path::Path::new("dlm.conf"),
            "enable_fencing=0\nenable_quorum_fencing=0\nenable_quorum_lockspace=0\n",
        )
        .unwrap();
        let c = core_config(&cfg, &[1, 2]);
        assert!(!c.enable_fencing && !c.enable_quorum_fencing && !c.enable_quorum_lockspace);
        let d = core_config(&Config::default(), &[1, 2, 3]);
        assert!(d.enable_fencing && d.enable_quorum_fencing && d.enable_quorum_lockspace);
        assert!(d.enable_startup_fencing);
        assert_eq!(d.post_join_delay_ms, 30_000);
        assert_eq!(d.nodes, vec![1, 2, 3]);
        assert_eq!(d.toss_ms, CoreConfig::default().toss_ms);
    }
}
