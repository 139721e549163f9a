//! The corosync layer: CPG groups and quorum from the local corosync, as the
//! [`ClusterEvent`]s the lock core consumes — what dlm_controld takes from libcpg and
//! libquorum (dlm.md §2.5).
//!
//! A thin tokio driver over the rust-corosync bindings to Debian's libraries:
//! - One CPG connection per joined group: a CPG handle joins exactly one group
//!   (cpg_join(3): "may be only be called once for each handle"). dlm_controld likewise
//!   opens one per lockspace plus one for `dlm:controld`.
//! - One libquorum connection. Its callback carries the quorate flag, the ring id and the
//!   members in one notification (quorum_model_initialize(3)); the votes are counted by
//!   votequorum, the quorum provider corosync.conf names (votequorum(5)). The votequorum
//!   library's own quorum callback carries no ring id, so it is not the one used here.
//! - The nodelist (node id → ring0 address) and the local node id, read once from cmap
//!   (cmap_keys(8), `nodelist.*`).
//!
//! Each connection has a dispatcher task that waits for its library fd (cpg_fd_get(3),
//! quorum_fd_get(3)) to become readable and then calls dispatch with
//! CS_DISPATCH_ONE_NONBLOCKING until nothing is left. Requests (join, leave, mcast) are
//! IPC round trips that block until corosync answers, so they run on tokio's blocking
//! pool. Calls on one connection are serialized by a lock: a libqb IPC connection carries
//! one request at a time.
//!
//! Order: the events of one group arrive in corosync's delivery order, the same on every
//! member (CPG_TYPE_AGREED, cpg_mcast_joined(3)). Different groups and the quorum come
//! over different connections, so their order relative to each other is not defined:
//! compare ring ids where it matters, as dlm_controld does.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rust_corosync::{cfg, cmap, cpg, quorum, CsError, DispatchFlags, TrackFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, Mutex};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::membership::{ClusterEvent, Confchg, LeaveReason, NodeId, Quorum};

/// Events waiting for the consumer before the dispatchers stop reading from corosync
/// (corosync then queues them on its side of the IPC connection).
const EVENT_QUEUE: usize = 1024;

/// How long a request is retried while corosync answers CS_ERR_TRY_AGAIN, which it does
/// during a membership change and under flow control (cpg_mcast_joined(3)).
const TRY_AGAIN_LIMIT: Duration = Duration::from_secs(30);

/// Callbacks dispatched in one go before the dispatcher lets other tasks run.
const DISPATCH_BATCH: usize = 64;

/// A connection to the local corosync: CPG groups, quorum, the nodelist.
///
/// Dropping it stops the dispatchers and closes every connection (cpg_finalize(3),
/// quorum_finalize(3): one local IPC round trip each); corosync then reports this process
/// as gone from its groups.
pub struct Corosync {
    local: NodeId,
    nodes: Vec<(NodeId, IpAddr)>,
    events: mpsc::Sender<Result<ClusterEvent>>,
    /// The CPG connection of each joined group.
    groups: StdMutex<HashMap<String, Conn<cpg::Handle>>>,
    /// Every dispatcher started, aborted on drop (a finished one ignores it).
    dispatchers: StdMutex<Vec<AbortHandle>>,
}

/// What corosync reports, in its delivery order per group.
pub struct Events {
    rx: mpsc::Receiver<Result<ClusterEvent>>,
    /// Why the stream ended, once it has.
    lost: Option<String>,
}

/// One library connection, locked for each call into it.
type Conn<L> = Arc<Mutex<L>>;

impl Corosync {
    /// Connect to the local corosync: read the nodelist, start following the quorum (the
    /// first [`ClusterEvent::Quorum`] is the current state). Groups are joined with
    /// [`Corosync::join`].
    pub async fn connect() -> Result<(Corosync, Events)> {
        let (local, nodes) = blocking("cmap", read_nodelist).await?;
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let corosync = Corosync {
            local,
            nodes,
            events: tx,
            groups: StdMutex::new(HashMap::new()),
            dispatchers: StdMutex::new(Vec::new()),
        };
        let quorum = Arc::new(Mutex::new(blocking("quorum", open_quorum).await?));
        let _ = corosync.start_dispatcher(&quorum);
        // CS_TRACK_CHANGES also sends the current state first, as dlm_controld relies on
        // (quorum_trackstart(3)).
        call(&quorum, "quorum_trackstart", |q| {
            quorum::trackstart(q, TrackFlags::Changes)
        })
        .await?;
        Ok((corosync, Events { rx, lost: None }))
    }

    /// This node's id (nodelist `nodeid` at cmap `nodelist.local_node_pos`).
    pub fn local_nodeid(&self) -> NodeId {
        self.local
    }

    /// Every configured node with its ring0 address, in nodelist order.
    pub fn nodelist(&self) -> &[(NodeId, IpAddr)] {
        &self.nodes
    }

    /// Join a CPG group. The first event of the group is a [`Confchg`] whose members
    /// include this node.
    /// `corosync_cfg_kill_node`: corosync on `node` exits, and so the node leaves the
    /// cluster (dlm_controld's `kick_node_from_cluster`, for a stateful merge). A cfg
    /// connection of its own, for this one call.
    /// Right after a merge corosync is still synchronising and answers
    /// CS_ERR_TRY_AGAIN: asked again, as the other calls are ([`call`]).
    pub async fn kill_node(&self, node: NodeId, reason: String) -> Result<()> {
        let give_up = Instant::now() + TRY_AGAIN_LIMIT;
        let mut pause = Duration::from_millis(10);
        loop {
            let why = reason.clone();
            let answer = blocking("corosync_cfg_kill_node", move || {
                let callbacks = cfg::Callbacks {
                    corosync_cfg_shutdown_callback_fn: None,
                };
                let h = match cfg::initialize(&callbacks) {
                    Ok(h) => h,
                    Err(e) => return Ok(Err(("corosync_cfg_initialize", e))),
                };
                let r = cfg::kill_node(&h, rust_corosync::NodeId::from(node), &why);
                let _ = cfg::finalize(&h);
                Ok(r.map_err(|e| ("corosync_cfg_kill_node", e)))
            })
            .await?;
            match answer {
                Err((_, CsError::CsErrTryAgain)) if Instant::now() < give_up => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err((call, e)) => return Err(corosync_error(call, e)),
                Ok(()) => return Ok(()),
            }
        }
    }

    pub async fn join(&self, group: &str) -> Result<()> {
        let conn = Arc::new(Mutex::new(blocking("cpg", open_cpg).await?));
        {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            if groups.contains_key(group) {
                return Err(Error::Corosync {
                    call: "cpg_join",
                    detail: format!("already joined to {group}"),
                });
            }
            groups.insert(group.to_string(), conn.clone());
        }
        let dispatcher = self.start_dispatcher(&conn);
        let name = group.to_string();
        let joined = call(&conn, "cpg_join", move |h| cpg::join(h, &name)).await;
        if joined.is_err() {
            self.forget(group);
            dispatcher.abort();
        }
        joined
    }

    /// Leave a CPG group (a clean leave: the others see [`LeaveReason::Leave`]). The
    /// group's last event here is the confchg that lists this node as left; the
    /// connection closes after it (cpg_leave(3): a process has left only once its confchg
    /// says so).
    pub async fn leave(&self, group: &str) -> Result<()> {
        let conn = self.group(group, "cpg_leave")?;
        let name = group.to_string();
        call(&conn, "cpg_leave", move |h| cpg::leave(h, &name)).await?;
        self.forget(group);
        Ok(())
    }

    /// Multicast a message to a joined group, in agreed order: every member, this one
    /// included, gets it as a [`ClusterEvent::Deliver`] at the same place in the group's
    /// order (cpg_mcast_joined(3), CPG_TYPE_AGREED).
    pub async fn mcast(&self, group: &str, data: &[u8]) -> Result<()> {
        let conn = self.group(group, "cpg_mcast_joined")?;
        let data = data.to_vec();
        call(&conn, "cpg_mcast_joined", move |h| {
            cpg::mcast_joined(h, cpg::Guarantee::TypeAgreed, &data)
        })
        .await
    }

    fn group(&self, group: &str, call: &'static str) -> Result<Conn<cpg::Handle>> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(group).cloned().ok_or_else(|| Error::Corosync {
            call,
            detail: format!("not joined to {group}"),
        })
    }

    fn forget(&self, group: &str) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.remove(group);
    }

    fn start_dispatcher<L: Library>(&self, conn: &Conn<L>) -> AbortHandle {
        let task = tokio::spawn(dispatch(conn.clone(), self.local, self.events.clone()));
        let mut dispatchers = self.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
        dispatchers.retain(|d| !d.is_finished());
        dispatchers.push(task.abort_handle());
        task.abort_handle()
    }
}

impl Drop for Corosync {
    fn drop(&mut self) {
        let dispatchers = self
            .dispatchers
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        for d in dispatchers.drain(..) {
            d.abort();
        }
    }
}

impl Events {
    /// The next event. An error means the connection to corosync is lost (corosync
    /// stopped or crashed); the stream is over then, and every later call says so again.
    pub async fn recv(&mut self) -> Result<ClusterEvent> {
        if let Some(lost) = &self.lost {
            return Err(Error::Corosync {
                call: "dispatch",
                detail: format!("the event stream has ended: {lost}"),
            });
        }
        match self.rx.recv().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                self.lost = Some(e.to_string());
                Err(e)
            }
            None => {
                self.lost = Some("the corosync connection was closed".into());
                Err(Error::Corosync {
                    call: "dispatch",
                    detail: "the corosync connection was closed".into(),
                })
            }
        }
    }
}

/// What a dispatcher needs of a library connection.
trait Library: Send + 'static {
    /// The library's dispatch call, for errors.
    const DISPATCH: &'static str;
    fn fd(&self) -> rust_corosync::Result<i32>;
    fn dispatch_one(&self) -> rust_corosync::Result<()>;
}

impl Library for cpg::Handle {
    const DISPATCH: &'static str = "cpg_dispatch";
    fn fd(&self) -> rust_corosync::Result<i32> {
        cpg::fd_get(self)
    }
    fn dispatch_one(&self) -> rust_corosync::Result<()> {
        cpg::dispatch(self, DispatchFlags::OneNonblocking)
    }
}

impl Library for quorum::Handle {
    const DISPATCH: &'static str = "quorum_dispatch";
    fn fd(&self) -> rust_corosync::Result<i32> {
        quorum::fd_get(self)
    }
    fn dispatch_one(&self) -> rust_corosync::Result<()> {
        quorum::dispatch(self, DispatchFlags::OneNonblocking)
    }
}

/// A library's fd, for polling. The library owns it and closes it when the connection is
/// finalized; holding the connection here keeps it open for as long as it is registered.
struct LibraryFd<L> {
    fd: RawFd,
    _conn: Conn<L>,
}

impl<L> AsRawFd for LibraryFd<L> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Run one connection's dispatcher until the consumer goes away, this process has left
/// the group, or corosync is lost; the last is reported on the event stream.
async fn dispatch<L: Library>(
    conn: Conn<L>,
    local: NodeId,
    tx: mpsc::Sender<Result<ClusterEvent>>,
) {
    if let Err(e) = dispatch_until_done(&conn, local, &tx).await {
        tracing::error!("corosync: {e}");
        let _ = tx.send(Err(e)).await;
    }
    // Closing the connection is one more IPC round trip (cpg_finalize(3)): off the runtime.
    drop(tokio::task::spawn_blocking(move || drop(conn)));
}

async fn dispatch_until_done<L: Library>(
    conn: &Conn<L>,
    local: NodeId,
    tx: &mpsc::Sender<Result<ClusterEvent>>,
) -> Result<()> {
    let fd = conn
        .lock()
        .await
        .fd()
        .map_err(|e| corosync_error("fd_get", e))?;
    let fd = LibraryFd {
        fd,
        _conn: conn.clone(),
    };
    // SAFETY: the fd is the connection's open IPC socket, and `LibraryFd` holds the
    // connection, so the fd stays open and the same until the AsyncFd is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| Error::io("watching the corosync IPC fd", e.into_parts().1))?;
    loop {
        let mut ready = tokio::select! {
            ready = fd.readable() => ready.map_err(|e| Error::io("waiting for corosync", e))?,
            () = tx.closed() => return Ok(()),
        };
        // A hangup means corosync closed the connection; what it sent before is still
        // dispatched.
        let hangup = ready.ready().is_read_closed();
        let batch = dispatch_pending(&*conn.lock().await, local);
        if batch.drained {
            ready.clear_ready();
        }
        let nothing = batch.events.is_empty();
        for event in batch.events {
            if tx.send(Ok(event)).await.is_err() {
                return Ok(());
            }
        }
        if let Some(e) = batch.error {
            return Err(lost(L::DISPATCH, &e.to_string()));
        }
        if batch.we_left {
            return Ok(());
        }
        // The libraries answer CS_OK without a callback once the connection is gone
        // (a bad handle is not reported as an error by *_dispatch), so an empty round
        // after a hangup also ends it.
        if hangup && (batch.drained || nothing) {
            return Err(lost(L::DISPATCH, "the IPC connection was hung up"));
        }
    }
}

fn lost(call: &'static str, why: &str) -> Error {
    Error::Corosync {
        call,
        detail: format!("lost the connection to corosync ({why}): is corosync running?"),
    }
}

/// What one round of dispatching produced.
struct Batch {
    events: Vec<ClusterEvent>,
    /// Nothing is left to dispatch (corosync answered CS_ERR_TRY_AGAIN).
    drained: bool,
    /// This process's leave from the group was confirmed.
    we_left: bool,
    error: Option<rust_corosync::CsError>,
}

/// Where the library callbacks put what they report. The bindings take plain `fn`
/// callbacks, and corosync calls them synchronously inside `*_dispatch` on the calling
/// thread, so a dispatcher parks a sink in this thread-local for the length of the call.
struct Sink {
    local: NodeId,
    events: Vec<ClusterEvent>,
    we_left: bool,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

fn dispatch_pending<L: Library>(lib: &L, local: NodeId) -> Batch {
    SINK.with(|s| {
        *s.borrow_mut() = Some(Sink {
            local,
            events: Vec::new(),
            we_left: false,
        })
    });
    let mut drained = false;
    let mut error = None;
    for _ in 0..DISPATCH_BATCH {
        match lib.dispatch_one() {
            Ok(()) => {}
            Err(CsError::CsErrTryAgain) => {
                drained = true;
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let sink = SINK.with(|s| s.borrow_mut().take());
    let (events, we_left) = sink.map_or((Vec::new(), false), |s| (s.events, s.we_left));
    Batch {
        events,
        drained,
        we_left,
        error,
    }
}

fn emit(event: ClusterEvent) {
    SINK.with(|s| {
        if let Some(sink) = s.borrow_mut().as_mut() {
            sink.events.push(event);
        }
    });
}

fn on_deliver(
    _: &cpg::Handle,
    group: String,
    from: rust_corosync::NodeId,
    _pid: u32,
    data: &[u8],
    _len: usize,
) {
    emit(ClusterEvent::Deliver {
        group,
        from: u32::from(from),
        data: data.to_vec(),
    });
}

fn on_confchg(
    _: &cpg::Handle,
    group: &str,
    members: Vec<cpg::Address>,
    left: Vec<cpg::Address>,
    joined: Vec<cpg::Address>,
) {
    SINK.with(|s| {
        if let Some(sink) = s.borrow_mut().as_mut() {
            let pid = std::process::id();
            sink.we_left |= left
                .iter()
                .any(|a| u32::from(a.nodeid) == sink.local && a.pid == pid);
        }
    });
    emit(ClusterEvent::Confchg(confchg(
        group, &members, &left, &joined,
    )));
}

fn on_quorum(
    _: &quorum::Handle,
    quorate: bool,
    ring_id: quorum::RingId,
    members: Vec<rust_corosync::NodeId>,
) {
    let mut members: Vec<NodeId> = members.into_iter().map(u32::from).collect();
    members.sort_unstable();
    emit(ClusterEvent::Quorum(Quorum {
        quorate,
        members,
        ring_seq: ring_id.seq,
    }));
}

/// A CPG confchg in the lock core's terms: node ids sorted, one entry per node (CPG lists
/// processes; hydra runs one daemon per node).
fn confchg(
    group: &str,
    members: &[cpg::Address],
    left: &[cpg::Address],
    joined: &[cpg::Address],
) -> Confchg {
    let nodes = |list: &[cpg::Address]| {
        let mut ids: Vec<NodeId> = list.iter().map(|a| u32::from(a.nodeid)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut gone: Vec<(NodeId, LeaveReason)> = left
        .iter()
        .map(|a| (u32::from(a.nodeid), leave_reason(a.reason)))
        .collect();
    gone.sort_unstable_by_key(|&(id, _)| id);
    Confchg {
        group: group.to_string(),
        members: nodes(members),
        joined: nodes(joined),
        left: gone,
    }
}

/// Why a member left (cpg.h CPG_REASON_*). JOIN and NODEUP only appear in joined lists;
/// anything unexpected in a left list is taken as the node going down, which asks for
/// fencing instead of assuming a clean leave.
fn leave_reason(reason: cpg::Reason) -> LeaveReason {
    match reason {
        cpg::Reason::Leave => LeaveReason::Leave,
        cpg::Reason::NodeDown => LeaveReason::NodeDown,
        cpg::Reason::ProcDown => LeaveReason::ProcDown,
        other => {
            tracing::warn!("corosync: CPG left list with reason {other}; taken as node down");
            LeaveReason::NodeDown
        }
    }
}

/// A new CPG connection, for one group. cpg_model_initialize(3) with CPG_MODEL_V1, as
/// cpg_initialize(3) is deprecated; the totem confchg callback (ring ids) is not asked
/// for, since [`Confchg`] has no place for a ring id.
fn open_cpg() -> Result<cpg::Handle> {
    let model = cpg::ModelData::ModelV1(cpg::Model1Data {
        flags: cpg::Model1Flags::None,
        deliver_fn: Some(on_deliver),
        confchg_fn: Some(on_confchg),
        totem_confchg_fn: None,
    });
    cpg::initialize(&model, 0).map_err(|e| corosync_error("cpg_model_initialize", e))
}

fn open_quorum() -> Result<quorum::Handle> {
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: Some(on_quorum),
        nodelist_notification_fn: None,
    });
    let (handle, kind) =
        quorum::initialize(&model, 0).map_err(|e| corosync_error("quorum_model_initialize", e))?;
    match kind {
        quorum::QuorumType::Set => Ok(handle),
        // QUORUM_FREE: no provider, so no notifications and no quorum to wait for before
        // fencing (quorum_initialize(3)).
        quorum::QuorumType::Free => Err(Error::Corosync {
            call: "quorum_model_initialize",
            detail: "corosync runs without a quorum provider; hydra needs \
                     `quorum { provider: corosync_votequorum }` (votequorum(5))"
                .into(),
        }),
    }
}

/// The local node id and the nodelist, from cmap (cmap_keys(8): each node of the
/// configuration is `nodelist.node.<position>.*`, the local one is at
/// `nodelist.local_node_pos`).
fn read_nodelist() -> Result<(NodeId, Vec<(NodeId, IpAddr)>)> {
    let cmap =
        cmap::initialize(cmap::Map::Icmap).map_err(|e| corosync_error("cmap_initialize", e))?;
    let local_pos = cmap::get(&cmap, "nodelist.local_node_pos")
        .map_err(|e| corosync_error("cmap_get nodelist.local_node_pos", e))
        .and_then(|d| number(&d, "nodelist.local_node_pos"))?;
    let mut entries: BTreeMap<u32, (Option<NodeId>, Option<String>)> = BTreeMap::new();
    let keys = cmap::CmapIterStart::new(&cmap, "nodelist.node.")
        .map_err(|e| corosync_error("cmap_iter_init", e))?;
    for item in keys {
        let Some((pos, field)) = nodelist_key(item.key_name()) else {
            continue;
        };
        let entry = entries.entry(pos).or_default();
        match (field, item.data()) {
            ("nodeid", data) => entry.0 = Some(number(data, item.key_name())?),
            ("ring0_addr", cmap::Data::String(addr)) => entry.1 = Some(addr.clone()),
            _ => {}
        }
    }
    let mut local = None;
    let mut nodes = Vec::new();
    for (pos, (id, addr)) in entries {
        let missing = |what: &str| Error::Corosync {
            call: "cmap_get",
            detail: format!("nodelist.node.{pos}.{what} is not set; hydra needs both"),
        };
        let id = id.ok_or_else(|| missing("nodeid"))?;
        let addr = resolve(&addr.ok_or_else(|| missing("ring0_addr"))?)?;
        if pos == local_pos {
            local = Some(id);
        }
        nodes.push((id, addr));
    }
    let local = local.ok_or_else(|| Error::Corosync {
        call: "cmap_get",
        detail: format!("nodelist.local_node_pos is {local_pos}, which is not in the nodelist"),
    })?;
    Ok((local, nodes))
}

/// `nodelist.node.<pos>.<field>` → (pos, field).
fn nodelist_key(key: &str) -> Option<(u32, &str)> {
    let rest = key.strip_prefix("nodelist.node.")?;
    let (pos, field) = rest.split_once('.')?;
    Some((pos.parse().ok()?, field))
}

fn number(data: &cmap::Data, key: &str) -> Result<u32> {
    let n = match *data {
        cmap::Data::UInt8(v) => Some(u32::from(v)),
        cmap::Data::UInt16(v) => Some(u32::from(v)),
        cmap::Data::UInt32(v) => Some(v),
        cmap::Data::UInt64(v) => u32::try_from(v).ok(),
        cmap::Data::Int8(v) => u32::try_from(v).ok(),
        cmap::Data::Int16(v) => u32::try_from(v).ok(),
        cmap::Data::Int32(v) => u32::try_from(v).ok(),
        cmap::Data::Int64(v) => u32::try_from(v).ok(),
        cmap::Data::String(ref s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| Error::Corosync {
        call: "cmap_get",
        detail: format!("{key} is {data}, not a node number"),
    })
}

/// A ring0 address as corosync.conf(5) allows it: an IP address or a host name.
fn resolve(addr: &str) -> Result<IpAddr> {
    if let Ok(ip) = addr.parse() {
        return Ok(ip);
    }
    (addr, 0)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolving ring0_addr {addr}"), e))?
        .map(|s| s.ip())
        .next()
        .ok_or_else(|| Error::Corosync {
            call: "cmap_get",
            detail: format!("ring0_addr {addr} resolves to no address"),
        })
}

fn corosync_error(call: &'static str, e: CsError) -> Error {
    Error::Corosync {
        call,
        detail: format!("{e} (cs_error_t {})", e as u32),
    }
}

/// Run blocking library work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Corosync {
            call: what,
            detail: format!("the library call did not complete: {e}"),
        })?
}

/// One request on a connection, retried while corosync answers CS_ERR_TRY_AGAIN.
async fn call<L: Library, T: Send + 'static>(
    conn: &Conn<L>,
    name: &'static str,
    request: impl Fn(&L) -> rust_corosync::Result<T> + Send + Sync + 'static,
) -> Result<T> {
    let request = Arc::new(request);
    let give_up = Instant::now() + TRY_AGAIN_LIMIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let lib = conn.clone().lock_owned().await;
        let req = request.clone();
        let answer = blocking(name, move || Ok(req(&lib))).await?;
        match answer {
            Err(CsError::CsErrTryAgain) if Instant::now() < give_up => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            answer => return answer.map_err(|e| corosync_error(name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(nodeid: u32, reason: cpg::Reason) -> cpg::Address {
        cpg::Address {
            nodeid: rust_corosync::NodeId::from(nodeid),
            pid: 100 + nodeid,
            reason,
        }
    }

    #[test]
    fn confchg_sorts_nodes_and_maps_leave_reasons() {
        use cpg::Reason::*;
        let c = confchg(
            "dlm:ls:test",
            &[addr(3, Join), addr(1, Join), addr(3, Join)],
            &[addr(5, ProcDown), addr(2, NodeDown), addr(4, Leave)],
            &[addr(3, NodeUp), addr(1, Join)],
        );
        assert_eq!(
            c,
            Confchg {
                group: "dlm:ls:test".into(),
                members: vec![1, 3],
                joined: vec![1, 3],
                left: vec![
                    (2, LeaveReason::NodeDown),
                    (4, LeaveReason::Leave),
                    (5, LeaveReason::ProcDown),
                ],
            }
        );
    }

    #[test]
    fn an_unexpected_leave_reason_asks_for_fencing() {
        assert!(leave_reason(cpg::Reason::Undefined).needs_fencing());
        assert!(leave_reason(cpg::Reason::Join).needs_fencing());
    }

    #[test]
    fn nodelist_keys() {
        assert_eq!(nodelist_key("nodelist.node.0.nodeid"), Some((0, "nodeid")));
        assert_eq!(
            nodelist_key("nodelist.node.12.ring0_addr"),
            Some((12, "ring0_addr"))
        );
        assert_eq!(nodelist_key("nodelist.local_node_pos"), None);
        assert_eq!(nodelist_key("nodelist.node.x.nodeid"), None);
    }

    #[test]
    fn node_numbers_from_cmap() {
        assert_eq!(number(&cmap::Data::UInt32(7), "k").unwrap(), 7);
        assert_eq!(number(&cmap::Data::String("3".into()), "k").unwrap(), 3);
        assert!(number(&cmap::Data::Int32(-1), "k").is_err());
    }

    #[test]
    fn ring0_addresses() {
        assert_eq!(
            resolve("10.200.1.2").unwrap(),
            "10.200.1.2".parse::<IpAddr>().unwrap()
        );
        assert!(resolve("localhost").unwrap().is_loopback());
    }
}
