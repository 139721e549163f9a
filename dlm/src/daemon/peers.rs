//! Lock traffic between daemons over TCP, as the kernel's lowcomms carries it (dlm.md
//! §2.4): port 21064 by default, one outgoing connection per peer node, opened on the
//! first message for it and opened again after a failure, with messages queued while it
//! connects. Each connection starts with [`PeerFrame::Hello`] naming the sender; the
//! rest are [`PeerFrame::Msg`]s. A connection is used in one direction only: a node
//! writes to a peer on its own outgoing connection and reads what the peer sends on the
//! connection the peer opened, so each direction keeps its order (the core relies on
//! FIFO delivery between two nodes).
//!
//! An accepted connection is kept only if its Hello names a node of corosync's nodelist
//! and comes from that node's address; a newer connection from a node replaces the
//! older. When a node leaves the daemons' group both directions are closed and
//! forgotten, queued messages included, as dlm_controld removes the node's configfs
//! comms entry and the kernel closes its connection ("dlm: closing connection to node
//! N"): a node that comes back starts clean.
//!
//! While a link is connected the event loop writes its messages in place (outbox.rs:
//! one system call, no hand-off to the link's task, which costs a task wake-up at each
//! end of every hop of a remote lock request); while it connects they wait in the
//! link's queue, which the task sends first once connected.
//!
//! Messages in flight when a connection breaks are lost: unlike the kernel's midcomms,
//! the protocol has no sequence numbers or acks. The core expects loss only with a
//! membership change, which is what a broken connection between live members usually
//! precedes.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::membership::NodeId;
use crate::message::Msg;
use crate::outbox::{Outbox, OutboxError};
use crate::wire::{put_frame, PeerFrame, PROTOCOL};

use super::framed::{gather, FrameReader};
use super::log::DebugLog;
use super::Event;

/// Messages queued for one peer (while connecting, or faster than the link carries
/// them) before new ones are dropped with a log line.
pub const PEER_QUEUE: usize = 64 * 1024;
/// One connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Waits between attempts: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long an accepted connection may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the peer tasks report to the event loop.
#[derive(Debug)]
pub enum PeerEvent {
    /// A message from `from`.
    Msg { from: NodeId, msg: Msg },
    /// An attempt of outgoing link `link` to connect to `node` failed (the link keeps
    /// trying).
    ConnectFailed {
        node: NodeId,
        link: u64,
        attempt: u32,
        error: String,
    },
    /// Accepted connection `conn` said Hello as `node` and was found genuine.
    Incoming { conn: u64, node: NodeId },
    /// Accepted connection `conn` ended.
    Closed { conn: u64 },
}

/// A connected link's outbox, shared by the link's task and the event loop.
type Direct = Arc<Mutex<Option<Arc<Outbox<OwnedWriteHalf>>>>>;

/// Bytes waiting on a connected link before messages are dropped (as `PEER_QUEUE`).
const PEER_BYTES: usize = 64 << 20;

struct Link {
    /// Tells this link's reports from those of an earlier link to the same node.
    id: u64,
    tx: mpsc::Sender<Msg>,
    /// Set while connected: messages go straight to the socket.
    direct: Direct,
    task: AbortHandle,
    /// Messages dropped because the queue was full, since the last one that fit.
    dropped: u64,
}

pub struct Peers {
    me: NodeId,
    port: u16,
    nodes: Arc<BTreeMap<NodeId, IpAddr>>,
    listener: TcpListener,
    links: HashMap<NodeId, Link>,
    /// Accepted connections by id (before and after their Hello).
    accepted: HashMap<u64, AbortHandle>,
    /// The accepted connection each node sends on.
    incoming: HashMap<NodeId, u64>,
    /// Ids for accepted connections and outgoing links.
    next_conn: u64,
    /// Connected links written to since the last `flush`: corked, so that the messages
    /// one batch of inputs makes for a node go out in one write.
    corked: Vec<Arc<Outbox<OwnedWriteHalf>>>,
    events: mpsc::Sender<Event>,
    log: DebugLog,
}

impl Peers {
    /// Listen on `bind:port`. `nodes` is corosync's nodelist with ring0 addresses.
    pub async fn bind(
        me: NodeId,
        nodes: &[(NodeId, IpAddr)],
        bind: IpAddr,
        port: u16,
        events: mpsc::Sender<Event>,
        log: DebugLog,
    ) -> Result<Peers> {
        let addr = SocketAddr::new(bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("listening for peers on {addr}"), e))?;
        Ok(Peers {
            me,
            port,
            nodes: Arc::new(nodes.iter().copied().collect()),
            listener,
            links: HashMap::new(),
            corked: Vec::new(),
            accepted: HashMap::new(),
            incoming: HashMap::new(),
            next_conn: 1,
            events,
            log,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The next incoming connection (the event loop waits on this).
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }

    /// Take on an accepted connection: it must say Hello as a nodelist node from that
    /// node's address, then its messages are reported as [`PeerEvent::Msg`].
    pub fn add_incoming(&mut self, stream: TcpStream, from: SocketAddr) {
        let conn = self.next_conn;
        self.next_conn += 1;
        let task = tokio::spawn(incoming(
            conn,
            stream,
            from,
            self.me,
            self.nodes.clone(),
            self.events.clone(),
            self.log.clone(),
        ));
        self.accepted.insert(conn, task.abort_handle());
    }

    /// An accepted connection said a good Hello: it replaces the node's older one.
    pub fn incoming_ready(&mut self, conn: u64, node: NodeId) {
        if !self.accepted.contains_key(&conn) {
            return; // closed meanwhile (the node left)
        }
        if let Some(old) = self.incoming.insert(node, conn) {
            if old != conn {
                if let Some(t) = self.accepted.remove(&old) {
                    self.log
                        .line(format!("peer {node}: new connection replaces the old one"));
                    t.abort();
                }
            }
        }
    }

    /// An accepted connection ended.
    pub fn incoming_closed(&mut self, conn: u64) {
        self.accepted.remove(&conn);
        self.incoming.retain(|_, c| *c != conn);
    }

    /// Write what `send` put on connected links since the last flush.
    pub fn flush(&mut self) {
        for out in self.corked.drain(..) {
            out.uncork();
        }
    }

    /// Send a message to `to` (not this node), connecting first if need be. Never waits;
    /// on a connected link it is written at the next [`flush`](Self::flush).
    pub fn send(&mut self, to: NodeId, msg: Msg) {
        let Some(&ip) = self.nodes.get(&to) else {
            self.log.line(format!(
                "peer {to}: not in the corosync nodelist: message for lockspace {} dropped",
                msg.lockspace()
            ));
            return;
        };
        let next_id = &mut self.next_conn;
        let link = self.links.entry(to).or_insert_with(|| {
            let id = *next_id;
            *next_id += 1;
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let direct = Direct::default();
            let task = tokio::spawn(outgoing(
                self.me,
                (to, id),
                SocketAddr::new(ip, self.port),
                (rx, direct.clone()),
                self.events.clone(),
                self.log.clone(),
            ));
            Link {
                id,
                tx,
                direct,
                task: task.abort_handle(),
                dropped: 0,
            }
        });
        let out = link
            .direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Connected: straight to the socket; else into the queue the link's task sends
        // once connected. Either way `full` names the lockspace and the limit when the
        // message had to be dropped.
        let full = match out {
            Some(out) => {
                let lockspace = msg.lockspace().to_string();
                let mut buf = Vec::new();
                put_frame(&PeerFrame::Msg(msg), &mut buf);
                if out.cork() {
                    self.corked.push(out.clone());
                }
                match out.push(&buf) {
                    Ok(()) => None,
                    Err(OutboxError::Full) => Some((lockspace, format!("{PEER_BYTES} bytes"))),
                    // The link's task sees the connection fail too and connects again;
                    // the message is lost like any in flight on a broken connection.
                    Err(OutboxError::Broken(e)) => {
                        self.log.line(format!(
                            "peer {to}: {e}: message for lockspace {lockspace} lost"
                        ));
                        return;
                    }
                }
            }
            None => match link.tx.try_send(msg) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(msg)) => Some((
                    msg.lockspace().to_string(),
                    format!("{PEER_QUEUE} messages"),
                )),
                Err(mpsc::error::TrySendError::Closed(msg)) => {
                    // The link task ended (it only does when dropped): start a fresh one.
                    self.links.remove(&to);
                    return self.send(to, msg);
                }
            },
        };
        match full {
            None if link.dropped > 0 => {
                self.log.line(format!(
                    "peer {to}: queue has room again after {} messages were dropped",
                    link.dropped
                ));
                link.dropped = 0;
            }
            None => {}
            Some((lockspace, limit)) => {
                if link.dropped == 0 {
                    self.log.line(format!(
                        "peer {to}: {limit} queued and not sent: dropping (first: \
                         lockspace {lockspace}); locks on that node will wait for a \
                         membership change"
                    ));
                }
                link.dropped += 1;
            }
        }
    }

    /// Whether `link` is `node`'s current outgoing link (reports of a closed one are
    /// stale).
    pub fn is_current(&self, node: NodeId, link: u64) -> bool {
        self.links.get(&node).is_some_and(|l| l.id == link)
    }

    /// Close and forget both directions of `node`'s links, and what is queued for it.
    pub fn forget(&mut self, node: NodeId) {
        let mut closed = false;
        if let Some(link) = self.links.remove(&node) {
            link.task.abort();
            closed = true;
        }
        if let Some(conn) = self.incoming.remove(&node) {
            if let Some(t) = self.accepted.remove(&conn) {
                t.abort();
            }
            closed = true;
        }
        if closed {
            self.log
                .line(format!("peer {node}: closing connections to node {node}"));
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for l in self.links.values() {
            l.task.abort();
        }
        for t in self.accepted.values() {
            t.abort();
        }
    }
}

/// The Hello a connection to a peer starts with.
fn hello(me: NodeId) -> Vec<u8> {
    let mut buf = Vec::new();
    put_frame(
        &PeerFrame::Hello {
            node: me,
            protocol: PROTOCOL,
        },
        &mut buf,
    );
    buf
}

/// An outgoing link: connect when there is something to send, send batches, connect
/// again after a failure. Ends when the event loop drops it (its queue closes).
async fn outgoing(
    me: NodeId,
    (node, link): (NodeId, u64),
    addr: SocketAddr,
    (mut rx, direct): (mpsc::Receiver<Msg>, Direct),
    events: mpsc::Sender<Event>,
    log: DebugLog,
) {
    let mut buf = Vec::new();
    // Connect when there is something to send; what is queued meanwhile waits in `rx`.
    while let Some(msg) = rx.recv().await {
        let stream = connect((node, link), addr, &events).await;
        let (mut rd, wr) = stream.into_split();
        log.line(format!("peer {node}: connected to {addr}"));
        let out = Arc::new(Outbox::new(wr, PEER_BYTES));
        buf.clear();
        buf.extend_from_slice(&hello(me));
        // The queue first, then the event loop writes in place: no await between the
        // two, so nothing it sends can overtake what waited.
        let mut frames = gather(PeerFrame::Msg(msg), &mut PeerRx(&mut rx), &mut buf);
        let mut error = out.push(&buf).err();
        if error.is_none() {
            *direct.lock().unwrap_or_else(|p| p.into_inner()) = Some(out.clone());
        }
        let error = loop {
            if let Some(e) = error.take() {
                break format!("{e}, {frames} messages lost");
            }
            // Nothing is ever sent to us on this connection: a read that returns means
            // the peer closed it or it broke.
            let mut byte = [0u8; 1];
            tokio::select! {
                // Only what was queued before the link was published, or by a send
                // that raced with it: pushed behind what is written.
                m = rx.recv() => match m {
                    Some(m) => {
                        buf.clear();
                        frames = gather(PeerFrame::Msg(m), &mut PeerRx(&mut rx), &mut buf);
                        error = out.push(&buf).err();
                    }
                    None => return,
                },
                r = rd.read(&mut byte) => break match r {
                    Ok(0) => "closed by the peer".to_string(),
                    Ok(_) => "the peer sent data on our outgoing connection".to_string(),
                    Err(e) => format!("read failed: {e}"),
                },
            }
        };
        *direct.lock().unwrap_or_else(|p| p.into_inner()) = None;
        log.line(format!("peer {node}: connection to {addr} lost: {error}"));
    }
}

/// `gather` over the link's queue, which carries bare messages.
struct PeerRx<'a>(&'a mut mpsc::Receiver<Msg>);

impl super::framed::Source<PeerFrame> for PeerRx<'_> {
    fn try_next(&mut self) -> Option<PeerFrame> {
        self.0.try_recv().ok().map(PeerFrame::Msg)
    }
}

/// Connect to a peer, retrying with backoff until it works; each failure is reported
/// (the event loop drops the link if the node is no longer wanted).
async fn connect(
    (node, link): (NodeId, u64),
    addr: SocketAddr,
    events: &mpsc::Sender<Event>,
) -> TcpStream {
    let mut pause = BACKOFF_FIRST;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => match s.set_nodelay(true) {
                Ok(()) => return s,
                Err(e) => format!("setting TCP_NODELAY: {e}"),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        let ev = PeerEvent::ConnectFailed {
            node,
            link,
            attempt,
            error: format!("connecting to {addr}: {error}"),
        };
        if events.send(Event::Peer(ev)).await.is_err() {
            std::future::pending::<()>().await; // the daemon is stopping
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}

/// An accepted connection: check its Hello, then pass its messages on.
async fn incoming(
    conn: u64,
    stream: TcpStream,
    from: SocketAddr,
    me: NodeId,
    nodes: Arc<BTreeMap<NodeId, IpAddr>>,
    events: mpsc::Sender<Event>,
    log: DebugLog,
) {
    let result = serve_incoming(conn, stream, from, me, &nodes, &events).await;
    if let Err(e) = result {
        log.line(e);
    }
    let _ = events.send(Event::Peer(PeerEvent::Closed { conn })).await;
}

async fn serve_incoming(
    conn: u64,
    stream: TcpStream,
    from: SocketAddr,
    me: NodeId,
    nodes: &BTreeMap<NodeId, IpAddr>,
    events: &mpsc::Sender<Event>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut rd, _wr) = stream.into_split();
    let mut frames = FrameReader::new();
    let first = tokio::time::timeout(HELLO_TIMEOUT, frames.next::<PeerFrame, _>(&mut rd)).await;
    let node = match first {
        Err(_) => {
            return Err(format!(
                "connection from {from}: no Hello within {HELLO_TIMEOUT:?}: dropped"
            ))
        }
        Ok(Err(e)) => return Err(format!("connection from {from}: {e}: dropped")),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(PeerFrame::Hello { node, protocol }))) if protocol != PROTOCOL => {
            return Err(format!(
                "connection from {from}: node {node} speaks peer protocol {protocol}, \
                 this daemon {PROTOCOL} (different hydra versions): dropped"
            ))
        }
        Ok(Ok(Some(PeerFrame::Hello { node, .. }))) => node,
        Ok(Ok(Some(PeerFrame::Msg(_)))) => {
            return Err(format!(
                "connection from {from}: a message before Hello: dropped"
            ))
        }
    };
    check_hello(node, from.ip(), me, nodes)
        .map_err(|e| format!("connection from {from}: {e}: dropped"))?;
    if events
        .send(Event::Peer(PeerEvent::Incoming { conn, node }))
        .await
        .is_err()
    {
        return Ok(());
    }
    loop {
        match frames.next::<PeerFrame, _>(&mut rd).await {
            Ok(Some(PeerFrame::Msg(msg))) => {
                let ev = Event::Peer(PeerEvent::Msg { from: node, msg });
                if events.send(ev).await.is_err() {
                    return Ok(());
                }
            }
            Ok(Some(PeerFrame::Hello { node: again, .. })) => {
                return Err(format!(
                    "peer {node}: a second Hello (as node {again}): connection dropped"
                ))
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("peer {node}: {e}")),
        }
    }
}

/// A Hello is believed if it names another node of the nodelist and comes from that
/// node's ring0 address (corosync's view of who is who).
fn check_hello(
    node: NodeId,
    from: IpAddr,
    me: NodeId,
    nodes: &BTreeMap<NodeId, IpAddr>,
) -> Result<(), String> {
    let Some(addr) = nodes.get(&node) else {
        return Err(format!(
            "Hello names node {node}, which is not in the corosync nodelist"
        ));
    };
    if node == me {
        return Err(format!("Hello names this node ({node})"));
    }
    if from.to_canonical() != addr.to_canonical() {
        return Err(format!(
            "Hello names node {node}, whose address is {addr}, not {from}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_are_checked_against_the_nodelist() {
        let nodes: BTreeMap<NodeId, IpAddr> = [
            (1, "10.200.1.1".parse().unwrap()),
            (2, "10.200.1.2".parse().unwrap()),
        ]
        .into();
        let two: IpAddr = "10.200.1.2".parse().unwrap();
        assert!(check_hello(2, two, 1, &nodes).is_ok());
        // The same address as an IPv4-mapped IPv6 one (a dual-stack listener).
        assert!(check_hello(2, "::ffff:10.200.1.2".parse().unwrap(), 1, &nodes).is_ok());
        let e = check_hello(3, two, 1, &nodes).unwrap_err();
        assert!(e.contains("not in the corosync nodelist"), "{e}");
        let e = check_hello(2, "10.200.1.9".parse().unwrap(), 1, &nodes).unwrap_err();
        assert!(
            e.contains("whose address is 10.200.1.2, not 10.200.1.9"),
            "{e}"
        );
        assert!(check_hello(1, "10.200.1.1".parse().unwrap(), 1, &nodes).is_err());
    }
}
